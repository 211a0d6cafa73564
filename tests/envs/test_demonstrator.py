"""Scripted Crafter demonstrator: task success, free-play diversity, determinism, survival, safety, errors."""

from __future__ import annotations

import numpy as np
import pytest
from crafter import constants

from aimc.core.errors import ConfigError, UnknownNameError
from aimc.envs import make
from aimc.envs.demo import TASKS, CrafterDemonstrator, DemonstratorConfig
from aimc.envs.demo.memory import VIEW_HALF_X, VIEW_HALF_Y
from aimc.envs.demo.planner import next_step

SURVIVAL_GOALS = {"drink", "eat", "sleep", "shelter", "arm", "fight_zombie", "fight_skeleton", "flee"}


def _run_task(task: str, seed: int, max_steps: int, **cfg) -> int | None:
    """Steps until `task`'s event fires, or None."""
    env = make("crafter")
    env.reset(seed=seed)
    demo = CrafterDemonstrator(DemonstratorConfig(mode="task", task=task, **cfg), seed=seed)
    demo.reset(env)
    for t in range(max_steps):
        _, _, terminated, _, info = env.step(demo.act(env))
        if task in info["events"]:
            return t + 1
        if terminated:
            return None
    return None


@pytest.mark.parametrize(
    ("task", "budget"),
    [("collect_wood", 60), ("place_table", 80), ("make_wood_pickaxe", 100), ("collect_stone", 150),
     ("collect_sapling", 150), ("place_plant", 150), ("make_wood_sword", 100)],
)
def test_task_mode_reaches_early_tasks(task, budget):
    reached = [_run_task(task, seed, budget) for seed in (0, 1, 2)]
    assert all(r is not None for r in reached), f"{task}: {reached}"


def test_task_mode_reaches_stone_pickaxe_through_the_chain():
    # make_stone_pickaxe => wood, table, wood pickaxe, stone, then the craft itself.
    assert _run_task("make_stone_pickaxe", 0, 250) is not None


def test_planner_resolves_prerequisites_in_order():
    def no_stations(stations):
        return list(stations)

    def all_stations(stations):
        return []

    inv = {name: info["initial"] for name, info in constants.items.items()}
    assert next_step("make_stone_pickaxe", inv, no_stations).task == "collect_wood"
    # Wood for the whole tree (stone pickaxe 1 + wood pickaxe 1 + table 2) is cut before the table goes down.
    inv["wood"] = 3
    assert next_step("make_stone_pickaxe", inv, no_stations).task == "collect_wood"
    inv["wood"] = 4
    assert next_step("make_stone_pickaxe", inv, no_stations).task == "place_table"
    inv["wood"] = 2
    assert next_step("make_stone_pickaxe", inv, all_stations).task == "make_wood_pickaxe"
    inv["wood_pickaxe"] = 1
    assert next_step("make_stone_pickaxe", inv, all_stations).task == "collect_stone"
    inv["stone"] = 1
    step = next_step("make_stone_pickaxe", inv, all_stations)
    assert (step.kind, step.target) == ("make", "stone_pickaxe")
    assert next_step("collect_iron", inv, all_stations).task == "make_stone_pickaxe"
    # Iron tools: coal (wood pickaxe held) first, then iron, which recurses into the stone pickaxe.
    assert next_step("make_iron_pickaxe", inv, all_stations).task == "collect_coal"
    inv["coal"] = 1
    assert next_step("make_iron_pickaxe", inv, all_stations).task == "make_stone_pickaxe"


def test_free_play_produces_diverse_events_and_valid_actions():
    env = make("crafter")
    env.reset(seed=4)
    # Survival (shelter, nights sealed in, cow searches) takes most of the first 400 steps, so goals rotate
    # on a short budget here to show that several are drawn.
    demo = CrafterDemonstrator(DemonstratorConfig(max_goal_steps=30), seed=4)
    demo.reset(env)
    events, goals = set(), set()
    for _ in range(400):
        action = demo.act(env)
        assert isinstance(action, int) and 0 <= action < len(constants.actions)
        goals.add(demo.current_goal)
        _, _, terminated, truncated, info = env.step(action)
        events.update(info["events"])
        if terminated or truncated:
            break
    achievements = events & set(TASKS)
    assert len(achievements) >= 4, events
    assert goals <= set(demo.config.catalogue) | SURVIVAL_GOALS
    assert len(goals - SURVIVAL_GOALS) >= 2


def _actions(seed: int, steps: int = 150) -> list[int]:
    env = make("crafter")
    env.reset(seed=seed)
    demo = CrafterDemonstrator(seed=seed)
    demo.reset(env)
    out = []
    for _ in range(steps):
        out.append(demo.act(env))
        env.step(out[-1])
    return out


def test_same_seed_gives_identical_actions():
    first = _actions(7)
    assert first == _actions(7)
    assert first != _actions(8)


def test_drinks_when_thirsty_and_water_in_view(crafter_env):
    env = crafter_env
    env.reset(seed=0)
    x, y = env.player.pos
    env.world[(x + 2, y)] = "water"
    env.player.inventory["drink"] = 2
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    drank = 0
    for _ in range(12):
        action = demo.act(env)
        goal = demo.current_goal
        _, _, _, _, info = env.step(action)
        if "collect_drink" in info["events"]:
            assert goal == "drink"
            drank += 1
    assert drank >= 5  # keeps drinking until full, not just one sip


def test_fights_adjacent_zombie(crafter_env):
    from crafter import objects

    env = crafter_env
    env.reset(seed=1)
    x, y = env.player.pos
    env.world[(x + 1, y)] = "grass"
    for obj in env.world.objects:
        if tuple(obj.pos) == (x + 1, y):
            env.world.remove(obj)
    zombie = objects.Zombie(env.world, (x + 1, y), env.player)
    env.world.add(zombie)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert demo.act(env) in (2, 5)  # turn right to face it, or hit it
    assert demo.current_goal == "fight_zombie"


def test_noise_never_steps_into_lava(crafter_env):
    env = crafter_env
    env.reset(seed=2)
    x, y = env.player.pos
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        env.world[(x + dx, y + dy)] = "lava"
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=1.0), seed=0)
    demo.reset(env)
    actions = {demo.act(env) for _ in range(60)}
    assert actions <= {0, 5}, actions  # only noop / do: every move would be into lava
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert all(demo.act(env) not in (1, 2, 3, 4) for _ in range(20))


def test_no_noise_near_a_threat_and_the_same_random_stream(crafter_env):
    """With `noise_radius` (3 by default), a zombie that close (or a skeleton in view) suppresses the random action, but the
    random numbers are drawn as before, so the steps after the threat get the same noise as without it."""
    from crafter import objects

    env = crafter_env
    env.reset(seed=3)
    x, y = (int(v) for v in env.player.pos)
    for obj in list(env.world.objects):
        if obj is not env.player and abs(obj.pos[0] - x) <= 6 and abs(obj.pos[1] - y) <= 6:
            env.world.remove(obj)
    for i in range(x - 5, x + 6):
        for j in range(y - 5, y + 6):
            env.world[(i, j)] = "grass"
    calm = CrafterDemonstrator(DemonstratorConfig(noise_prob=1.0), seed=0)  # noise_radius 3 by default
    plain = CrafterDemonstrator(DemonstratorConfig(noise_prob=1.0, noise_radius=0), seed=0)
    for demo in (calm, plain):
        demo.reset(env)
    assert [calm.act(env) for _ in range(30)] == [plain.act(env) for _ in range(30)]  # no threat: all noise
    env.world[(x + 3, y)] = "grass"
    env.world.add(objects.Zombie(env.world, (x + 3, y), env.player))
    for _ in range(20):
        assert calm.act(env) == calm.expert_action  # the zombie 3 cells away: the expert's own action
        plain.act(env)
    assert calm.rng.bit_generator.state == plain.rng.bit_generator.state


def test_memory_holds_only_what_was_in_view():
    """Imitable from pixels: every remembered cell was inside the 9x7 view at some visited position."""
    env = make("crafter")
    env.reset(seed=5)
    demo = CrafterDemonstrator(seed=5)
    demo.reset(env)
    seen = np.zeros(env.world.area, bool)
    for _ in range(150):
        x, y = env.player.pos
        seen[max(0, x - VIEW_HALF_X): x + VIEW_HALF_X + 1, max(0, y - VIEW_HALF_Y): y + VIEW_HALF_Y + 1] = True
        env.step(demo.act(env))
    assert not (demo.memory.known[~seen]).any()
    assert demo.memory.known[seen].all()


def test_act_from_arbitrary_states_labels_dagger_style():
    """The labeller must work from states another policy reached (random actions here)."""
    env = make("crafter")
    env.reset(seed=6)
    demo = CrafterDemonstrator(DemonstratorConfig(mode="task", task="make_wood_pickaxe", noise_prob=0.0), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(120):
        label = demo.act(env)
        assert 0 <= label < len(constants.actions)
        env.step(int(rng.integers(len(constants.actions))))


def test_new_episode_clears_memory_without_reset(crafter_env):
    env = crafter_env
    env.reset(seed=0)
    demo = CrafterDemonstrator(seed=0)
    for _ in range(30):
        env.step(demo.act(env))
    before = demo.memory
    env.reset(seed=1)
    demo.act(env)
    assert demo.memory is not before
    assert demo.memory.known.astype(bool).sum() <= 9 * 7


def test_unknown_task_is_one_clear_error(crafter_env):
    crafter_env.reset(seed=0)
    demo = CrafterDemonstrator()
    with pytest.raises(UnknownNameError) as err:
        demo.act(crafter_env, "collect_wod")
    message = str(err.value)
    assert "collect_wod" in message and "collect_wood" in message and "\n" not in message
    with pytest.raises(UnknownNameError):
        DemonstratorConfig(mode="task", task="fly")


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "play"}, {"catalogue": {"collect_wood": 1.0, "fly": 1.0}}, {"catalogue": {"collect_wood": 0.0}},
     {"noise_prob": 1.5}, {"nav_radius": 2}, {"max_goal_steps": 0}, {"morning_zombie_radius": -1},
     {"noise_radius": -1},
     {"goal_label": "subgoal"}],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ConfigError):
        DemonstratorConfig(**kwargs)


def test_task_mode_without_task_is_an_error(crafter_env):
    crafter_env.reset(seed=0)
    with pytest.raises(ConfigError, match="task"):
        CrafterDemonstrator(DemonstratorConfig(mode="task")).act(crafter_env)


def test_default_catalogue_covers_15_achievements():
    assert len(set(DemonstratorConfig().catalogue) & set(TASKS)) >= 15


def test_chain_mode_pursues_drawn_tasks_in_turn_from_a_fresh_world():
    # Chain mode draws tasks like free play but pursues each as task mode does: the first task starts from
    # nothing, and the next is drawn as soon as the current one's achievement fires.
    env = make("crafter")
    env.reset(seed=3)
    cfg = DemonstratorConfig(mode="chain", catalogue={"collect_wood": 1.0, "place_table": 1.0, "collect_sapling": 1.0})
    demo = CrafterDemonstrator(cfg, seed=3)
    demo.reset(env)
    tasks: list[str] = []  # the chain task of each step (survival steps excluded)
    switches = 0
    for _ in range(300):
        action = demo.act(env)
        goal = demo.current_goal
        if goal not in SURVIVAL_GOALS:
            assert goal in cfg.catalogue, goal
            if tasks and goal != tasks[-1]:
                switches += 1
            tasks.append(goal)
        _, _, terminated, _, info = env.step(action)
        if tasks and tasks[-1] in info["events"]:
            achieved = tasks[-1]
            nxt = demo.act(env)  # the achievement ends the task: a different one is drawn (never twice in a row)
            assert demo.current_goal != achieved or demo.current_goal in SURVIVAL_GOALS
            env.step(nxt)
        if terminated:
            break
    assert switches >= 3, tasks[:50]
    assert len(set(tasks)) == 3


def test_chain_mode_survives_as_task_mode_does():
    # No restocking in calm daylight (a free-play habit): a fed, watered player at the start goes for its task.
    env = make("crafter")
    env.reset(seed=0)
    demo = CrafterDemonstrator(DemonstratorConfig(mode="chain", catalogue={"collect_wood": 1.0}), seed=0)
    demo.reset(env)
    demo.act(env)
    assert demo.current_goal == "collect_wood"


def _explore_agreement(follow: bool) -> tuple[int, int]:
    """Among exploring steps right after a random 'learner' move: how often the label continues that move."""
    from aimc.envs.demo.state import MOVES

    env = make("crafter")
    env.reset(seed=5)
    cfg = DemonstratorConfig(mode="chain", catalogue={"explore": 1.0}, explore_steps=1000, noise_prob=0.0,
                             explore_turn_prob=0.0, survival_in_task_mode=False, explore_follow_facing=follow)
    demo = CrafterDemonstrator(cfg, seed=5)
    demo.reset(env)
    agree = checked = 0
    rng = np.random.default_rng(0)
    for _ in range(120):
        label = demo.act(env)
        if demo.current_step == "explore" and label in MOVES:
            move = MOVES[int(rng.integers(4))]  # the learner goes its own way instead of the label
            _, _, terminated, _, _ = env.step(move)
            next_label = demo.act(env)
            if demo.current_step == "explore" and next_label in MOVES:
                checked += 1
                agree += next_label == move
            env.step(next_label)
        else:
            _, _, terminated, _, _ = env.step(label)
        if terminated:
            break
    return agree, checked


def test_explore_follow_facing_continues_the_executed_motion():
    # DAgger labels in a learner's states: with explore_follow_facing the exploring demonstrator keeps to the
    # direction the player last moved (whoever moved it), which the learner can see in its frames; its own
    # remembered heading (the default) ignores the learner's motion.
    agree, checked = _explore_agreement(follow=True)
    base_agree, base_checked = _explore_agreement(follow=False)
    assert checked >= 10 and base_checked >= 10
    assert agree / checked >= 0.6, (agree, checked)
    assert base_agree / base_checked <= agree / checked - 0.2, (base_agree, base_checked, agree, checked)


def test_first_move_reports_every_direction_that_starts_a_shortest_path():
    """`ties`: a target diagonal from the player has two shortest first moves (the faced one first); a wall
    leaves one; the returned move is always the first tie."""
    import numpy as np

    from aimc.envs.demo.navigation import first_move

    walk = np.ones((5, 5), bool)
    goal = np.zeros((5, 5), bool)
    goal[4, 4] = True  # player at (2, 2): right (1) and down (3) both start a 4-step path
    ties: list[int] = []
    assert first_move(walk, goal, (2, 2), (3, 0, 1, 2), ties=ties) == 3 and ties == [3, 1]
    assert first_move(walk, goal, (2, 2), (0, 1, 2, 3), ties=ties) == 1 and ties == [1, 3]
    walk[3, 2] = False  # the cell to the right is blocked: only down stays shortest
    assert first_move(walk, goal, (2, 2), (1, 3, 0, 2), ties=ties) == 3 and ties == [3]
    assert first_move(walk, goal, (2, 2), (1, 3, 0, 2)) == 3  # without `ties`, the same answer
    length: list[int] = []
    assert first_move(walk, goal, (2, 2), (1, 3, 0, 2), length=length) == 3 and length == [4]
    assert first_move(walk, goal, (4, 4), (1, 3, 0, 2), length=length) == -1 and length == [4]  # at the goal: untouched


def test_label_set_holds_the_action_and_the_equally_short_moves():
    """The demonstrator's `label_set` starts with the action it returns (without noise); over an episode some
    steps have two equally short moves, and every extra member is a move."""
    from aimc.envs import make
    from aimc.envs.demo import CrafterDemonstrator, DemonstratorConfig
    from aimc.envs.demo.state import MOVES

    env = make("crafter")
    env.reset(seed=3)
    demo = CrafterDemonstrator(DemonstratorConfig(mode="task", noise_prob=0.0), seed=0)
    demo.reset(env)
    sizes = []
    for _ in range(60):
        a = demo.act(env, "collect_stone")
        assert demo.label_set[0] == a and all(m in MOVES for m in demo.label_set[1:])
        sizes.append(len(demo.label_set))
        env.step(a)
    assert max(sizes) == 2 and min(sizes) == 1


@pytest.mark.parametrize(("task", "seed"), [("collect_stone", 0), ("collect_coal", 1)])
def test_step_goal_labels_are_the_chain_planners_sub_goals(task, seed):
    """goal_label "step" records the planner step each action serves, which is what the chain planner tells a
    chaining agent in the same states (so task demonstrations can train it in the regime it plays); "task"
    keeps the task on every non-survival step. Same seed, same actions either way: only the label differs."""
    from aimc.eval.planner import ChainPlanner, Plan

    runs = {}
    for label in ("task", "step"):
        env = make("crafter")
        env.reset(seed=seed)
        demo = CrafterDemonstrator(DemonstratorConfig(mode="task", task=task, goal_label=label), seed=seed)
        demo.reset(env)
        planner = ChainPlanner("crafter", encoder=lambda texts: np.eye(len(texts), 8, dtype=np.float32))
        plan = Plan(task, task, 1.0)
        goals, subs, actions = [], [], []
        for _ in range(300):
            planner.prompt(plan, env)
            actions.append(demo.act(env))
            goals.append(demo.current_goal)
            subs.append(plan.current)
            _, _, terminated, _, info = env.step(actions[-1])
            if task in info["events"] or terminated:
                break
        assert task in info["events"], f"{task} not reached on seed {seed}"
        runs[label] = goals, subs, actions
    assert runs["task"][2] == runs["step"][2]
    task_goals = [g for g in runs["task"][0] if g not in SURVIVAL_GOALS]
    assert set(task_goals) == {task}
    steps = [(g, s) for g, s in zip(runs["step"][0], runs["step"][1], strict=True) if g not in SURVIVAL_GOALS]
    assert all(g == s for g, s in steps), [p for p in steps if p[0] != p[1]][:5]
    names = [g for g, _ in steps]
    assert names[0] == "collect_wood" and names[-1] == task
    assert {"place_table", "make_wood_pickaxe"} <= set(names)
