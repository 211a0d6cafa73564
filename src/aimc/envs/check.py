"""`check_world(name)`: does a registered world keep the contract every stage relies on? (As SB3's env_checker.)

It builds the world, resets it, plays seeded random actions twice from the same seed and raises
`WorldCheckError` with one line naming the first thing that is wrong: spaces, observation dtype/shape,
events the class does not declare, info that collection could not write, or episodes that differ for the
same seed and actions. A world declaring `deterministic = False` (a real game) is checked on one run with
frames rendered, without comparing runs. Tests run it over every registered world (tests/envs/test_worlds.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError
from aimc.envs.base import make, world_info


class WorldCheckError(AimcError):
    """A world breaks the contract; the message names the world and the problem."""


def check_world(name: str, steps: int = 50, seed: int = 0, **cfg: Any) -> None:
    """Raise `WorldCheckError` unless world `name` (built with `cfg`) keeps the contract for `steps` random steps."""

    def fail(problem: str) -> WorldCheckError:
        return WorldCheckError(f"world {name!r}: {problem}")

    info = world_info(name)
    env = make(name, **cfg)
    _check_spaces(env, info.action_names, fail)
    actions = [int(a) for a in np.random.default_rng(seed).integers(0, env.action_space.n, steps)]
    if not info.deterministic:
        try:
            _trace(env, seed, actions, set(info.event_names), fail, render=hasattr(env, "render_frame"))
        finally:
            env.close()  # a game world stops its process
        return
    first = _trace(env, seed, actions, set(info.event_names), fail, render=False)
    again = _trace(env, seed, actions, set(info.event_names), fail, render=hasattr(env, "render_frame"))
    fresh = _trace(make(name, **cfg), seed, actions, set(info.event_names), fail, render=False)
    for label, other in (("a second reset of the same instance", again), ("a fresh instance", fresh)):
        if len(other) != len(first):
            raise fail(f"not deterministic: seed {seed} with the same actions ran {len(first)} then {len(other)} steps "
                       f"({label}{', rendering frames' if label.startswith('a second') else ''})")
        for t, ((pov_a, ev_a), (pov_b, ev_b)) in enumerate(zip(first, other, strict=True)):
            if not np.array_equal(pov_a, pov_b) or ev_a != ev_b:
                what = "observation" if not np.array_equal(pov_a, pov_b) else f"events ({ev_a} vs {ev_b})"
                when = "after reset" if t == 0 else f"after action {t - 1}"
                hint = " (render_frame must not change the world)" if label.startswith("a second") else ""
                raise fail(f"not deterministic: seed {seed} with the same actions gives a different {what} {when} "
                           f"on {label}{hint}")


def _check_spaces(env: Any, action_names: Sequence[str], fail: Any) -> None:
    import gymnasium as gym

    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict) or keys.POV not in space.spaces:
        raise fail(f"observation_space must be a Dict with a {keys.POV!r} Box, got {space}")
    pov = space[keys.POV]
    if not isinstance(pov, gym.spaces.Box) or pov.dtype != np.uint8 or len(pov.shape) != 3 or pov.shape[2] != 3:
        raise fail(f"observation_space[{keys.POV!r}] must be a uint8 Box of shape (H, W, 3), got {pov}")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise fail(f"action_space must be Discrete, got {env.action_space}")
    if int(env.action_space.n) != len(action_names):
        raise fail(f"action_space has {env.action_space.n} actions but action_names lists {len(action_names)}")


def _check_obs(obs: Any, env: Any, where: str, fail: Any) -> np.ndarray:
    if not isinstance(obs, dict) or keys.POV not in obs:
        raise fail(f"{where}: obs must be a dict with {keys.POV!r}, got {type(obs).__name__}")
    pov = obs[keys.POV]
    want = env.observation_space[keys.POV].shape
    if not isinstance(pov, np.ndarray) or pov.dtype != np.uint8 or pov.shape != want:
        got = f"{pov.dtype} {pov.shape}" if isinstance(pov, np.ndarray) else type(pov).__name__
        raise fail(f"{where}: obs[{keys.POV!r}] must be uint8 {want} (the observation_space), got {got}")
    return pov


def _check_info(info: Any, where: str, event_names: set[str], fail: Any) -> list[str]:
    if not isinstance(info, dict) or not isinstance(info.get(keys.EVENTS), list):
        raise fail(f"{where}: info[{keys.EVENTS!r}] must be a list of event names")
    events = info[keys.EVENTS]
    unknown = [e for e in events if e not in event_names]
    if unknown:
        raise fail(f"{where}: event(s) {unknown} are not in the class's event_names")
    try:
        json.dumps(info, default=_numpy_to_list)
    except (TypeError, ValueError) as e:
        raise fail(f"{where}: info must be JSON-serialisable (collection writes it to infos.jsonl): {e}") from None
    return list(events)


def _numpy_to_list(x: Any) -> Any:
    """numpy values are fine in infos (the episode store converts them the same way); anything else is not."""
    if isinstance(x, np.generic | np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def _trace(env: Any, seed: int, actions: list[int], event_names: set[str], fail: Any,
           render: bool) -> list[tuple[np.ndarray, list[str]]]:
    """[(pov, events)] of reset(seed) then `actions`, checking every observation and info on the way."""
    out = env.reset(seed=seed)
    if not isinstance(out, tuple) or len(out) != 2:
        raise fail("reset(seed=...) must return (obs, info)")
    obs, info = out
    pov = _check_obs(obs, env, "reset", fail)
    if _check_info(info, "reset", event_names, fail):
        raise fail(f"reset: info[{keys.EVENTS!r}] must be empty after reset, got {info[keys.EVENTS]}")
    trace = [(pov.copy(), [])]
    for t, action in enumerate(actions):
        if render:
            frame = env.render_frame(32)
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (32, 32, 3):
                raise fail(f"render_frame(32) must return uint8 (32, 32, 3), got {getattr(frame, 'shape', frame)}")
        out = env.step(action)
        if not isinstance(out, tuple) or len(out) != 5:
            raise fail("step(action) must return (obs, reward, terminated, truncated, info)")
        obs, reward, terminated, truncated, info = out
        if not isinstance(terminated, bool | np.bool_) or not isinstance(truncated, bool | np.bool_):
            raise fail(f"step {t}: terminated and truncated must be bools, got {terminated!r}, {truncated!r}")
        trace.append((_check_obs(obs, env, f"step {t}", fail).copy(), _check_info(info, f"step {t}", event_names, fail)))
        if terminated or truncated:
            break
    return trace
