"""World layer: Gymnasium environments with `obs["pov"]` and `info["events"]`, selected by name.

    >>> from aimc.envs import make
    >>> env = make("crafter", size=64)
"""

from aimc.envs.base import ENVS, make, register_env

__all__ = ["ENVS", "make", "register_env", "CrafterDemonstrator", "DemonstratorConfig"]

# The demonstrator imports crafter, so it is exported lazily like the backends themselves.
_DEMO_EXPORTS = {"CrafterDemonstrator", "DemonstratorConfig"}


def __getattr__(name: str):
    if name in _DEMO_EXPORTS:
        from aimc.envs import demo

        return getattr(demo, name)
    raise AttributeError(f"module 'aimc.envs' has no attribute {name!r}")
