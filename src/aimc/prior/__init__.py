"""aimc.prior: the STEVE-1 CVAE text->goal prior (`load_prior(path).sample(text_emb, seed)`) and its training.

Names are imported on first use, so `aimc.prior.config` (checked when a pipeline config loads) needs no torch.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("CVAEPrior", "PriorConfig", "load_prior"), "aimc.prior.cvae"),
    "PriorTrainConfig": "aimc.prior.config",
    **dict.fromkeys(("build_pairs", "train_prior"), "aimc.prior.train"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
