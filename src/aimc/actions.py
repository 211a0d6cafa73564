"""Short import path for the action maps: ``import aimc.actions`` == ``aimc.envs.actions`` (== ``aimc.policy.actions``)."""

from aimc.envs.actions import *  # noqa: F403
from aimc.envs.actions import __all__  # noqa: F401
