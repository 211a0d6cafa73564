"""aimc.train: STEVE-1-style behaviour cloning (unconditional or goal-conditioned) and the agent bundle it writes.

    >>> from aimc.train import load_train_config, run
    >>> summary = run(load_train_config("goal", data=[{"path": "data/crafter"}], out="runs/goal"))

Names are imported on first use, so `aimc.train.config` (checked when a pipeline config loads) needs no torch.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("DataPart", "TrainConfig", "load_train_config", "preset_names"), "aimc.train.config"),
    **dict.fromkeys(("read_metrics", "run"), "aimc.train.loop"),
    "bc_loss": "aimc.train.objectives",
    "AgentBundle": "aimc.train.bundle",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
