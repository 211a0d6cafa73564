"""The VPT architecture (OpenAI Video-Pre-Training), its presets and loaders."""

from aimc.core.lazy import lazy_exports

# The model imports torch; the config does not, so it can be checked without it.
_EXPORTS = {
    **dict.fromkeys(("PRESETS", "VPTConfig", "get_config", "preset_name"), "aimc.policy.vpt.config"),
    **dict.fromkeys(("VPTPolicy", "VPTState"), "aimc.policy.vpt.model"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
