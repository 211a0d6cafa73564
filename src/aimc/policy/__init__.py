"""aimc.policy: the VPT network (weight-exact with OpenAI VPT and STEVE-1), CFG, loaders, action maps.

from aimc.policy import VPTPolicy, get_config, load_policy
policy = VPTPolicy(get_config("crafter-small", goal_dim=16))
out, state = policy(pov_uint8_BTHW3, goal_BTD, first_BT, policy.initial_state(B))
loss = -policy.log_prob(out, {"action": actions_BT}).mean()
"""

from aimc.policy.agent import Agent, resize_frames
from aimc.policy.base import Policy, PolicyOutput, entropy, log_prob, sample
from aimc.policy.cfg import cfg_forward, cfg_initial_state, guide
from aimc.policy.vpt.config import PRESETS, VPTConfig, get_config, preset_name
from aimc.policy.vpt.load import (
    check_state_dict,
    from_pretrained,
    infer_config,
    load_official,
    load_policy,
    read_model_file,
    save_pretrained,
)
from aimc.policy.vpt.model import VPTPolicy, VPTState

__all__ = [
    "PRESETS",
    "Agent",
    "Policy",
    "PolicyOutput",
    "VPTConfig",
    "VPTPolicy",
    "VPTState",
    "cfg_forward",
    "cfg_initial_state",
    "check_state_dict",
    "entropy",
    "from_pretrained",
    "get_config",
    "guide",
    "infer_config",
    "load_official",
    "load_policy",
    "log_prob",
    "preset_name",
    "read_model_file",
    "resize_frames",
    "sample",
    "save_pretrained",
]
