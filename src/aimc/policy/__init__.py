"""aimc.policy: the VPT network (weight-exact with OpenAI VPT and STEVE-1), CFG, loaders, action maps.

from aimc.policy import VPTPolicy, get_config, load_policy
policy = VPTPolicy(get_config("crafter-small", goal_dim=16))
out, state = policy(pov_uint8_BTHW3, goal_BTD, first_BT, policy.initial_state(B))
loss = -policy.log_prob(out, {"action": actions_BT}).mean()
"""

from aimc.core.lazy import lazy_exports

# Imported on first use, so `aimc.policy.vpt.config` (checked when a training config loads) needs no torch.
_EXPORTS = {
    **dict.fromkeys(("Agent", "resize_frames"), "aimc.policy.agent"),
    **dict.fromkeys(("Policy", "PolicyOutput", "entropy", "log_prob", "sample"), "aimc.policy.base"),
    **dict.fromkeys(("cfg_forward", "cfg_initial_state", "guide"), "aimc.policy.cfg"),
    **dict.fromkeys(("PRESETS", "VPTConfig", "get_config", "preset_name"), "aimc.policy.vpt.config"),
    **dict.fromkeys(("check_state_dict", "from_pretrained", "infer_config", "load_official", "load_policy",
                     "read_model_file", "save_pretrained"), "aimc.policy.vpt.load"),
    **dict.fromkeys(("VPTPolicy", "VPTState"), "aimc.policy.vpt.model"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
