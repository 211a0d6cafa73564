"""OpenAI's contractor recordings (VPT's `*.mp4` + `*.jsonl` per trajectory) as aimc episodes.

`loader` holds the official data loader's semantics on jsonl lines (null actions, attack stuck, hotbar keys,
camera scale, the quirks behind a flag); `convert` turns trajectories into an episode store (`aimc convert
contractor`), with Minecraft events from the recorded inventory and statistics.

    >>> from aimc.data.contractor import ContractorConfig, convert_contractor
    >>> cfg = ContractorConfig(source="raw/8.x", out="data/contractor", workers=2)
    >>> convert_contractor(cfg, action_code=my_encoder)  # doctest: +SKIP
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("CAMERA_SCALE", "KEY_TO_BUTTON", "OFFICIAL_QUIRKS", "QUIRKS", "LoaderStep", "env_action",
                     "loader_steps", "read_jsonl"), "aimc.data.contractor.loader"),
    **dict.fromkeys(("ContractorConfig", "SkippedTrajectories", "Trajectory", "convert_contractor", "convert_trajectory",
                     "find_trajectories"), "aimc.data.contractor.convert"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
