"""Minecraft pieces of the world layer: the event vocabulary and how it is read from what the recordings and the
simulators report (`events`), its caption catalogue (`captions`), the frame operations the contractor loader and
a live game share (`frames`: cursor overlay, bilinear resize), and the live game itself (`world`: the world
`make("minecraft", backend=...)` builds over the simulator adapters in `backends`; imported on first use, so this
package needs no game).

    >>> from aimc.envs.minecraft import EVENT_NAMES, GameState, events_between
    >>> before = GameState.from_report(inventory=[{"type": "oak_log", "quantity": 1}])
    >>> after = GameState.from_report(inventory=[{"type": "oak_log", "quantity": 3}])
    >>> events_between(before, after)
    ['obtain_log', 'obtain_log']
"""

from aimc.envs.minecraft.events import (
    EVENT_NAMES,
    EVENT_RULES,
    EventRule,
    GameState,
    StateChange,
    events_between,
    events_of,
    state_change,
)

__all__ = ["EVENT_NAMES", "EVENT_RULES", "EventRule", "GameState", "StateChange", "events_between", "events_of",
           "state_change"]
