"""The VPT architecture (OpenAI Video-Pre-Training), its presets and loaders."""

from aimc.policy.vpt.config import PRESETS, VPTConfig, get_config, preset_name
from aimc.policy.vpt.model import VPTPolicy, VPTState

__all__ = ["PRESETS", "VPTConfig", "VPTPolicy", "VPTState", "get_config", "preset_name"]
