"""A second world plugs in by registering it: collect -> video -> eval run through it with no code change
outside the test. Also: what `check_world` catches, and the episode loop's hook order."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from aimc.core.errors import AimcError
from aimc.core.seeding import derive_seed
from aimc.envs import ENVS, EpisodeHook, RandomActor, WorldCheckError, check_world, register_env, run_episode


class ToyWorld(gym.Env):
    """A 6x6 grid walked with 5 actions; 'bump' when walking into the edge, 'corner' on reaching (5, 5)."""

    action_names = ["noop", "left", "right", "up", "down"]
    event_names = ["bump", "corner"]
    MOVES = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]

    def __init__(self, length: int = 40) -> None:
        self.length = length
        self.observation_space = gym.spaces.Dict({"pov": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8)})
        self.action_space = gym.spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = tuple(int(v) for v in self.np_random.integers(0, 6, 2)), 0
        return self._obs(), {"events": [], "pos": list(self.pos)}

    def step(self, action):
        dx, dy = self.MOVES[int(action)]
        x, y = self.pos[0] + dx, self.pos[1] + dy
        events = [] if 0 <= x < 6 and 0 <= y < 6 else ["bump"]
        self.pos, self.t = ((x, y) if not events else self.pos), self.t + 1
        events += ["corner"] if self.pos == (5, 5) else []
        return self._obs(), 0.0, False, self.t >= self.length, {"events": events, "pos": list(self.pos)}

    def _obs(self):
        grid = np.zeros((6, 6, 3), np.uint8)
        grid[self.pos[1], self.pos[0]] = 255
        return {"pov": np.repeat(np.repeat(grid, 4, axis=0), 4, axis=1)}


@pytest.fixture
def toy():
    """Register the toy world for one test only (registrations must not leak into other tests)."""
    register_env("toy")(ToyWorld)
    yield "toy"
    ENVS.unregister("toy")


def _by_hand(world_seed: int, actor_seed: int, steps: int, length: int = 40) -> tuple[list[int], list[list[str]]]:
    """The reference loop, written out: uniform random actions from the actor's seed."""
    env, rng = ToyWorld(length), np.random.default_rng(actor_seed)
    env.reset(seed=world_seed)
    actions, events = [], []
    for _ in range(steps):
        actions.append(int(rng.integers(5)))
        _, _, term, trunc, info = env.step(actions[-1])
        events.append(info["events"])
        if term or trunc:
            break
    return actions, events


def test_toy_world_passes_check_world(toy):
    check_world(toy, steps=80)


def test_collect_video_and_eval_through_a_registered_toy_world(toy, tmp_path):
    from aimc.data import Episode
    from aimc.data.collect import CollectConfig, collect
    from aimc.data.video import render_episode_video
    from aimc.eval.baselines import RandomFactory
    from aimc.eval.run import Condition, evaluate_suite
    from aimc.eval.tasks import check_events, parse_suite, world_events

    # collect: the random agent's episodes land in the store, byte-for-byte what the hand-written loop does
    s = collect(CollectConfig(out=str(tmp_path / "data"), world=toy, world_config={"length": 30}, agent="random",
                              episodes=3, max_steps=25, seed=1), progress=False)
    assert s["collected"] == 3 and s["frames"] == 75
    for i in range(3):
        ep = Episode(tmp_path / "data" / f"ep{i:06d}_s1")
        actions, events = _by_hand(derive_seed(1, i), derive_seed(1, i, "agent"), 25, length=30)
        assert ep.actions.tolist() == actions and ep.events == events
        assert ep.metadata["world"] == "toy" and ep.metadata["action_names"] == ToyWorld.action_names
        assert ep.metadata["truncated"] and not ep.metadata["terminated"]
        first = ToyWorld(30).reset(seed=derive_seed(1, i))[0]["pov"]
        assert np.array_equal(ep.frames(0, 1)[0], first)
    # video: the toy world declares no replay, so `aimc video` upscales the stored frames
    r = render_episode_video(tmp_path / "data" / "ep000000_s1", tmp_path / "ep.mp4", size=48)
    assert r["source"] == "upscaled" and r["frames"] == 25

    # eval: a suite whose world is the toy world, scored from the events the toy world declares
    suite = parse_suite("""
name: toy
world: toy
max_steps: 30
horizons: [10]
seed: 5
tasks:
  - {name: bump, success: {any: [bump]}, prompts: [walk into a wall]}
  - {name: corner, success: {any: [corner]}, prompts: [go to the far corner]}
""", "toy.yaml")
    check_events(suite, world_events(toy))
    with pytest.raises(AimcError, match="unknown event"):
        check_events(parse_suite("world: toy\ntasks: [{name: x, success: {any: [fly]}, prompts: [fly]}]"),
                     world_events(toy))
    report, videos = evaluate_suite(suite, [Condition("random", RandomFactory(), False, None, "baseline")],
                                    episodes=6, workers=0, videos=0, progress=False)
    expected = {"bump": [], "corner": []}
    for ep in range(6):
        _, events = _by_hand(5 + ep, derive_seed(0, 5 + ep, "random", ep), 30)
        for task in expected:
            expected[task].append(any(task in evs for evs in events))
    tasks = report["conditions"]["random"]["tasks"]
    assert report["world"] == "toy" and report["lost_episodes"] == 0 and videos == []
    for task, hits in expected.items():
        assert tasks[task]["success"]["rate"] == pytest.approx(np.mean(hits))
    assert tasks["bump"]["success"]["rate"] > 0  # 30 random steps on a 6x6 grid hit an edge


def test_demonstrator_refuses_a_world_it_cannot_play(toy, tmp_path):
    from aimc.data.collect import CollectConfig, collect

    with pytest.raises(AimcError, match="demonstrator cannot play ToyWorld"):
        collect(CollectConfig(out=str(tmp_path / "d"), world=toy, agent="demonstrator", episodes=1, max_steps=5),
                progress=False)
    assert not list((tmp_path / "d").glob("ep*"))  # nothing half-written


class _FloatPov(ToyWorld):
    def _obs(self):
        return {"pov": super()._obs()["pov"].astype(np.float32)}


class _UndeclaredEvent(ToyWorld):
    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        return obs, r, term, trunc, {**info, "events": [*info["events"], "teleport"]}


class _Unseeded(ToyWorld):
    def _obs(self):
        pov = super()._obs()["pov"]
        pov[0, 0] = np.random.default_rng().integers(0, 256, 3)  # noise from outside the seeded state
        return {"pov": pov}


class _Unstorable(ToyWorld):
    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        return obs, r, term, trunc, {**info, "where": {self.pos}}


class _WrongActionCount(ToyWorld):
    def __init__(self) -> None:
        super().__init__()
        self.action_space = gym.spaces.Discrete(6)


@pytest.mark.parametrize(("cls", "message"), [
    (_FloatPov, r"reset: obs\['pov'\] must be uint8 \(24, 24, 3\) \(the observation_space\), got float32"),
    (_UndeclaredEvent, r"step \d+: event\(s\) \['teleport'\] are not in the class's event_names"),
    (_Unseeded, "not deterministic: seed 0 with the same actions gives a different observation after"),
    (_Unstorable, r"step 0: info must be JSON-serialisable \(collection writes it to infos.jsonl\): set is not"),
    (_WrongActionCount, "action_space has 6 actions but action_names lists 5"),
])
def test_check_world_names_what_is_wrong(cls, message):
    register_env("broken")(cls)
    try:
        with pytest.raises(WorldCheckError, match=f"^world 'broken': {message}"):
            check_world("broken", steps=40)
    finally:
        ENVS.unregister("broken")


def test_a_world_must_declare_its_names_when_registered():
    class Nameless(gym.Env):
        action_names = ["a"]

    with pytest.raises(TypeError, match="must declare the class attribute 'event_names'"):
        register_env("nameless")(Nameless)
    assert "nameless" not in ENVS


class _Log(EpisodeHook):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_reset(self, env, obs, info):
        self.calls.append(("reset", obs["pov"].sum()))

    def before_action(self, env, t, obs):
        self.calls.append(("before", t, obs["pov"].sum()))

    def on_step(self, env, step):
        self.calls.append(("step", step.t, step.action, tuple(step.events), step.goal))

    def on_end(self, env, record):
        self.calls.append(("end", record.steps, env._obs()["pov"].sum()))  # the final state is still there


def test_episode_loop_calls_hooks_in_order_and_records_events():
    log = _Log()
    record = run_episode(ToyWorld(length=4), RandomActor(), world_seed=2, max_steps=10, actor_seed=9, hooks=[log])
    actions, events = _by_hand(2, 9, 10, length=4)
    assert record.steps == 4 and record.truncated and not record.terminated and record.events == events
    lit = 16 * 255 * 3  # one 4x4 cell of white
    assert log.calls[0] == ("reset", lit) and log.calls[-1] == ("end", 4, lit)
    assert [c[:2] for c in log.calls[1:-1]] == [("before", 0), ("step", 0), ("before", 1), ("step", 1),
                                               ("before", 2), ("step", 2), ("before", 3), ("step", 3)]
    assert [c[2] for c in log.calls[1:-1] if c[0] == "step"] == actions
    assert all(c[4] is None for c in log.calls if c[0] == "step")  # the random actor has no goal
    occ = record.occurrences()
    assert sorted(occ) == sorted({e for evs in events for e in evs})
    assert record.event_counts() == {e: len(ts) for e, ts in occ.items()}
    # max_steps stops first: truncated although the world would go on
    short = run_episode(ToyWorld(length=40), RandomActor(), world_seed=2, max_steps=3, actor_seed=9)
    assert short.steps == 3 and short.truncated and short.events == events[:3]
