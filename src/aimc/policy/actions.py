"""The action maps, by their older import path: ``aimc.policy.actions`` re-exports `aimc.envs.actions`.

The maps moved to the world layer so the Minecraft world and the contractor converter, which sit below the
policy, can use them too; this module keeps every existing import working (the same objects, not copies).
"""

from aimc.envs.actions import *  # noqa: F403
from aimc.envs.actions import __all__  # noqa: F401
