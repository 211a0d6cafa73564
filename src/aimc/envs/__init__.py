"""World layer: Gymnasium environments with `obs["pov"]` and `info["events"]`, selected by name.

    >>> from aimc.envs import make
    >>> env = make("crafter", size=64)
"""

from aimc.envs.base import ENVS, make, register_env

__all__ = ["ENVS", "make", "register_env"]
