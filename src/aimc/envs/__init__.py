"""World layer: Gymnasium environments with `obs["pov"]` and `info["events"]`, selected by name, and the one
agent shape (`Actor`) and episode loop (`run_episode` + hooks) that every later stage drives them with.

    >>> from aimc.envs import make, world_info
    >>> env = make("crafter", size=64)
    >>> world_info("crafter").event_names[:2]
    ('collect_coal', 'collect_diamond')
"""

from aimc.envs.actor import Actor, DemonstratorActor, RandomActor
from aimc.envs.base import (
    DEFAULT_WORLD,
    ENVS,
    World,
    WorldInfo,
    available_worlds,
    make,
    register_env,
    video_frame,
    world_info,
)
from aimc.envs.check import WorldCheckError, check_world
from aimc.envs.episode import (
    BatchActor,
    EpisodeHook,
    EpisodeRecord,
    Lockstep,
    SlotOutcome,
    Step,
    StopAtEvent,
    run_episode,
)

__all__ = [
    "DEFAULT_WORLD", "ENVS", "Actor", "BatchActor", "CrafterDemonstrator", "DemonstratorActor", "DemonstratorConfig",
    "EpisodeHook", "EpisodeRecord", "Lockstep", "RandomActor", "SlotOutcome", "Step", "StopAtEvent", "World", "WorldCheckError",
    "WorldInfo", "available_worlds", "check_world", "make", "register_env", "run_episode", "video_frame", "world_info",
]

# The demonstrator imports crafter, so it is exported lazily like the backends themselves.
_DEMO_EXPORTS = {"CrafterDemonstrator", "DemonstratorConfig"}


def __getattr__(name: str):
    if name in _DEMO_EXPORTS:
        from aimc.envs import demo

        return getattr(demo, name)
    raise AttributeError(f"module 'aimc.envs' has no attribute {name!r}")
