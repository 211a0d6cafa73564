"""Short import path for the action maps: ``import aimc.actions`` == ``aimc.policy.actions``."""

from aimc.policy.actions import *  # noqa: F403
from aimc.policy.actions import __all__  # noqa: F401
