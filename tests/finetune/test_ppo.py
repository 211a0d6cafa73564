"""PPO with a KL anchor: GAE, the clipped loss and the KL term against naive references; rewards; a micro run
end to end (ratio 1 on the first minibatch, a loadable bundle), resume, bad input."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.cli.app import main
from aimc.finetune.ppo import VOLATILE
from tests.train.fixtures import demo_store  # noqa: F401


def micro_cfg(bundle: Path, out: Path, *sets: str):
    from aimc.finetune import load_ppo_config

    return load_ppo_config("ppo-micro", list(sets), bundle=str(bundle), out=str(out))


def stable(summary: dict) -> dict:
    """The summary without timings, with paths relative to the run dir (two runs in two dirs compare)."""
    s = json.loads(json.dumps(summary).replace(summary["out"], "<out>"))
    for row in s["iterations"]:
        for key in VOLATILE:
            row.pop(key)
    return s


def capture_first_iteration(monkeypatch) -> dict:
    """Patch the run so the first iteration's `IterationData` lands in the returned dict under "data"."""
    from aimc.finetune import ppo as ppo_mod

    captured: dict = {}
    original = ppo_mod.prepare_iteration

    def spy(policy, trajs, goals, cfg):
        data = original(policy, trajs, goals, cfg)
        captured.setdefault("data", data)
        return data

    monkeypatch.setattr(ppo_mod, "prepare_iteration", spy)
    return captured


TWO_STEP_SUITE = ("name: s\nworld: crafter\ntasks:\n  - name: table_or_wood\n    success: {all: [place_table, collect_wood]}\n"
                  "    prompts: [place a table]\n    max_steps: 10\n")
"""A suite whose one task names no demo_task (the demonstrator has nothing to pursue)."""


def refused_in_one_line(bundle: Path, out: Path, cases, capsys) -> None:
    """Each (sets, message): `aimc train ppo --preset ppo-micro` with those overrides exits 2 with one error line
    holding `message`, and writes nothing."""
    for sets, message in cases:
        args = ["train", "ppo", "--preset", "ppo-micro", "--bundle", str(bundle), "--out", str(out),
                *[a for s in sets for a in ("--set", s)]]
        assert main(args) == 2, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()


# ------------------------------------------------------------------------------------------- the maths
def naive_gae(rewards, values, bootstrap, gamma, lam):
    """Textbook GAE for one episode, one step at a time."""
    adv, last = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_v = values[t + 1] if t + 1 < len(rewards) else bootstrap
        delta = rewards[t] + gamma * next_v - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv, [a + v for a, v in zip(adv, values, strict=True)]


def test_gae_matches_a_naive_loop_with_terminals_and_truncations():
    from aimc.finetune import gae

    rng = np.random.default_rng(0)
    lengths = [5, 1, 3, 7]
    # terminal (bootstrap 0), terminal after one step, truncated (bootstrap the next state's value), truncated
    bootstrap = [0.0, 0.0, 0.7, -0.3]
    t = max(lengths)
    rewards = rng.normal(size=(4, t))
    values = rng.normal(size=(4, t))
    for i, n in enumerate(lengths):  # garbage past the end must not leak in
        rewards[i, n:] = 99.0
        values[i, n:] = -99.0
    for gamma, lam in ((0.99, 0.95), (1.0, 1.0), (0.9, 0.0)):
        adv, ret = gae(rewards, values, np.array(bootstrap), np.array(lengths), gamma, lam)
        for i, n in enumerate(lengths):
            ref_adv, ref_ret = naive_gae(rewards[i, :n].tolist(), values[i, :n].tolist(), bootstrap[i], gamma, lam)
            np.testing.assert_allclose(adv[i, :n], ref_adv, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(ret[i, :n], ref_ret, rtol=1e-12, atol=1e-12)
            assert not adv[i, n:].any() and not ret[i, n:].any()
    # gamma = lambda = 1: the return is the sum of the rewards to go plus the bootstrap
    _, ret = gae(rewards, values, np.array(bootstrap), np.array(lengths), 1.0, 1.0)
    assert ret[2, 0] == pytest.approx(rewards[2, :3].sum() + 0.7)
    assert ret[1, 0] == pytest.approx(rewards[1, 0])  # a one-step terminal episode


def naive_ppo_terms(lp_new, lp_old, adv, vpred, vtarget, ent, kl, mask, clip, vf_coef, ent_coef, kl_coef):
    """The PPO objective per step in plain Python floats, averaged over the masked steps."""
    sums = dict.fromkeys(("loss", "policy_loss", "value_loss", "entropy", "kl_anchor", "approx_kl", "clip_frac"), 0.0)
    count = 0
    for i in range(len(mask)):
        if not mask[i]:
            continue
        count += 1
        r = math.exp(lp_new[i] - lp_old[i])
        pg = -min(r * adv[i], min(max(r, 1 - clip), 1 + clip) * adv[i])
        vf = 0.5 * (vpred[i] - vtarget[i]) ** 2
        sums["policy_loss"] += pg
        sums["value_loss"] += vf
        sums["entropy"] += ent[i]
        sums["kl_anchor"] += kl[i]
        sums["loss"] += pg + vf_coef * vf - ent_coef * ent[i] + kl_coef * kl[i]
        sums["approx_kl"] += (r - 1) - math.log(r)
        sums["clip_frac"] += float(abs(r - 1) > clip)
    return {k: v / count for k, v in sums.items()}


def test_clipped_loss_matches_a_reference_and_chunks_add_up():
    from aimc.finetune import ppo_loss

    g = torch.Generator().manual_seed(1)
    shape = (3, 10)
    lp_old = -torch.rand(shape, generator=g, dtype=torch.float64) * 3
    lp_new = lp_old + torch.randn(shape, generator=g, dtype=torch.float64) * 0.4  # many ratios outside [0.8, 1.2]
    adv, vpred, vtarget = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    ent, kl = torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g, dtype=torch.float64)
    mask = torch.arange(10)[None] < torch.tensor([10, 4, 7])[:, None]
    lp_new[~mask] = float("inf")  # padding must not leak in (inf * 0 would be nan)
    coefs = {"clip": 0.2, "vf_coef": 0.5, "ent_coef": 0.01, "kl_coef": 0.3}
    terms = ppo_loss(lp_new, lp_old, adv, vpred, vtarget, ent, kl, mask, **coefs)
    ref = naive_ppo_terms(*(x.flatten().tolist() for x in (lp_new, lp_old, adv, vpred, vtarget, ent, kl, mask)), **coefs)
    for key, value in ref.items():
        assert float(terms[key]) == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert 0.2 < ref["clip_frac"] < 0.8
    # two chunks with the minibatch's step count as the denominator add up to the whole
    parts = [ppo_loss(*(x[:, sl] for x in (lp_new, lp_old, adv, vpred, vtarget, ent, kl, mask)), **coefs,
                      denom=float(mask.sum())) for sl in (slice(0, 6), slice(6, 10))]
    for key in ref:
        assert float(parts[0][key] + parts[1][key]) == pytest.approx(float(terms[key]), rel=1e-9)
    # the gradient of the clipped surrogate vanishes where the ratio is clipped on the advantage's side
    lp = lp_old.clone().requires_grad_(True)
    shifted = lp + torch.where(adv > 0, 0.5, -0.5)  # ratio e^±0.5, outside the clip range in the advantage's favour
    ppo_loss(shifted, lp_old, adv, vpred, vtarget, ent, kl, mask, **coefs)["policy_loss"].backward()
    assert lp.grad is not None and not lp.grad.any()


def test_kl_term_is_zero_for_identical_policies_and_positive_otherwise():
    from aimc.finetune import kl_categorical

    g = torch.Generator().manual_seed(2)
    p = {h: torch.log_softmax(torch.randn(4, 5, n, generator=g), -1) for h, n in (("action", 17), ("camera", 11))}
    q = {h: torch.log_softmax(torch.randn(4, 5, v.shape[-1], generator=g), -1) for h, v in p.items()}
    assert float(kl_categorical(p, p).abs().max()) < 1e-6
    kl = kl_categorical(p, q)
    assert kl.shape == (4, 5) and bool((kl > 0).all())
    ref = sum(torch.distributions.kl_divergence(torch.distributions.Categorical(logits=p[h]),
                                                torch.distributions.Categorical(logits=q[h])) for h in p)
    torch.testing.assert_close(kl, ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- config
def test_config_checks_in_one_line_without_torch():
    import subprocess
    import sys

    code = ("import sys, aimc.finetune.ppo_config as c; cfg = c.load_ppo_config('ppo-crafter', ['reward.death=-1']); "
            "print('torch' in sys.modules, len(cfg.tasks), cfg.reward.death, c.kl_coef_at(cfg, 3))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "12", "-1.0", str(0.2 * 0.97**2)]
    from aimc.core.errors import ConfigError
    from aimc.finetune import load_ppo_config

    for sets, message in ((["tasks=[]"], "tasks: give at least one task; valid tasks: chop_tree"),
                          (["tasks=[eat_cow,eat_cow]"], "listed twice"), (["clip=1.5"], "clip must be in (0, 1)"),
                          (["reward.bonus=1"], "unknown key(s) ['bonus']"), (["envs=0"], "envs must be >= 1"),
                          (["mixed_precision=fp16"], "mixed_precision: expected 'no' or 'bf16', got 'fp16'"),
                          (["rollout_precision=no"], "rollout_precision: expected 'fp32' or 'bf16', got 'no'"),
                          (["rollout_workers=3"], "rollout_workers (3) must be <= envs (2)"),
                          (["lr_final=1e-4"], "lr_final needs a rate > 0 and lr_anneal_iterations >= 2"),
                          (["lr_final=0", "lr_anneal_iterations=5"], "lr_final needs a rate > 0")):
        with pytest.raises(ConfigError) as e:
            load_ppo_config("ppo-micro", sets)
        assert message in str(e.value) and "\n" not in str(e.value)


def test_the_learning_rate_anneals_linearly_then_holds():
    from aimc.finetune import load_ppo_config
    from aimc.finetune.ppo_config import lr_at

    flat = load_ppo_config("ppo-micro", ["lr=2e-3"])
    assert [lr_at(flat, k) for k in (1, 50)] == [2e-3, 2e-3]
    cfg = load_ppo_config("ppo-micro", ["lr=3e-3", "lr_final=1e-3", "lr_anneal_iterations=5"])
    assert np.allclose([lr_at(cfg, k) for k in range(1, 8)], [3e-3, 2.5e-3, 2e-3, 1.5e-3, 1e-3, 1e-3, 1e-3])


def test_a_run_trains_each_iteration_at_its_annealed_rate(tiny_bundle, tmp_path):
    """The optimiser's policy group runs at lr_at(k) in iteration k (what the summary row reports); the value
    head's group keeps value_lr."""
    from aimc.finetune import run_ppo

    s = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run", "iterations=3", "lr_final=1e-4", "lr_anneal_iterations=2"),
                progress=False, log=lambda _: None)
    assert [r["lr"] for r in s["iterations"]] == pytest.approx([1e-3, 1e-4, 1e-4])
    groups = torch.load(tmp_path / "run" / "checkpoints" / "step_0003" / "train_state" / "optimizer.pt",
                        weights_only=True)["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-2])


# ------------------------------------------------------------------------------------------- tasks and rewards
def test_tasks_train_on_catalogue_prompts_with_the_planners_prerequisites():
    from aimc.embed.captions import CAPTIONS
    from aimc.eval.tasks import load_suite
    from aimc.finetune.ppo_rollout import prerequisites, task_specs

    assert prerequisites("collect_wood") == () and prerequisites("eat_cow") == ()
    assert prerequisites("make_wood_pickaxe") == ("collect_wood", "place_table")
    assert prerequisites("place_stone") == ("collect_wood", "place_table", "make_wood_pickaxe", "collect_stone")
    assert prerequisites("place_plant") == ("collect_sapling",)
    specs = {s.name: s for s in task_specs(load_suite(), ["chop_tree", "mine_stone", "place_sapling"], "crafter")}
    assert specs["chop_tree"].prompts == CAPTIONS["collect_wood"] and specs["chop_tree"].shaping == ()
    assert specs["mine_stone"].shaping == ("collect_wood", "place_table", "make_wood_pickaxe")
    assert specs["place_sapling"].prompts == CAPTIONS["place_plant"]


def test_ppo_worlds_are_disjoint_from_the_eval_suites_and_jobs_are_seeded():
    from aimc.eval.tasks import load_suite
    from aimc.finetune.ppo_rollout import PPO_SEED_BASE, make_jobs, task_specs

    suites = Path(__import__("aimc.eval", fromlist=["x"]).__file__).parent / "suites"
    for path in suites.glob("*.yaml"):
        assert all(t.seed + 100_000 < PPO_SEED_BASE for t in load_suite(path).tasks), path
    specs = task_specs(load_suite(), ["chop_tree", "place_table", "eat_cow"], "crafter")
    jobs = [j for k in (1, 2) for j in make_jobs(specs, 4, k, 0)]
    assert [j.task for j in jobs] == ["chop_tree", "place_table", "eat_cow"] * 2 + ["chop_tree", "place_table"]
    seeds = [j.world_seed for j in jobs]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= PPO_SEED_BASE and max(seeds) < 2**32
    prompts = {s.name: s.prompts for s in specs}
    assert all(j.prompt in prompts[j.task] for j in jobs)
    assert make_jobs(specs, 4, 2, 0) == jobs[4:] and make_jobs(specs, 4, 2, 1) != jobs[4:]


def test_task_weights_repeat_tasks_in_the_schedule_and_are_checked():
    from aimc.core.errors import ConfigError, UnknownNameError
    from aimc.eval.tasks import load_suite
    from aimc.finetune import load_ppo_config
    from aimc.finetune.ppo_rollout import make_jobs, task_specs, weighted_schedule

    specs = task_specs(load_suite(), ["chop_tree", "collect_coal", "eat_cow"], "crafter")
    order = weighted_schedule(specs, {"collect_coal": 3})
    assert [s.name for s in order] == ["chop_tree", "collect_coal", "collect_coal", "collect_coal", "eat_cow"]
    tasks = [j.task for j in make_jobs(order, 50, 1, 0)]
    assert tasks.count("collect_coal") == 30 and tasks.count("chop_tree") == tasks.count("eat_cow") == 10
    cfg = load_ppo_config("ppo-crafter", ["task_weights.collect_coal=4"])
    assert cfg.task_weights == {"collect_coal": 4}
    for sets, error, message in ((["task_weights.fly=2"], UnknownNameError, "task_weights: 'fly' is not one of"),
                                 (["task_weights.collect_coal=0"], ConfigError, "expected a whole number >= 1")):
        with pytest.raises(error, match=message):
            load_ppo_config("ppo-crafter", sets)


def test_reward_hook_pays_success_once_shaping_at_first_occurrences_and_death():
    from aimc.envs import Step
    from aimc.eval.tasks import Success
    from aimc.finetune import RewardConfig
    from aimc.finetune.ppo_rollout import RewardHook, TaskSpec, _Buffer

    spec = TaskSpec("mine_stone", Success("any", ("collect_stone",)), ("mine stone",), ("collect_wood", "place_table"))
    buf = _Buffer(np.zeros(2, np.float32))
    hook = RewardHook(spec, RewardConfig(success=1.0, death=-2.0, shaping=0.1), buf)
    events = [[], ["collect_wood"], ["collect_wood"], ["place_table", "collect_sapling"], ["collect_stone"],
              ["collect_stone"], []]
    for t, evs in enumerate(events):
        dead = t == len(events) - 1
        hook.on_step(None, Step(t, {}, 0, {"pov": t}, 0.0, dead, False, {"events": evs}))
    assert buf.rewards == pytest.approx([0.0, 0.1, 0.0, 0.1, 1.0, 0.0, -2.0])
    assert hook.success_step == 4 and hook.died and hook.last_obs == {"pov": 6}


class _ApproachWorld:
    """What `approach_potential` reads of a world: the player's cell and inventory, and visible cells."""

    def __init__(self, cells: dict[str, list[tuple[int, int]]]) -> None:
        self.cells = cells
        self.player = type("P", (), {"pos": np.array([10, 10]), "inventory": {"wood_pickaxe": 0}})()

    def visible_cells(self, material: str) -> list[tuple[int, int]]:
        return self.cells.get(material, [])


def test_approach_shaping_pays_the_discounted_potential_change_toward_held_tools_targets():
    from aimc.core.errors import ConfigError
    from aimc.envs import Step
    from aimc.eval.tasks import Success, load_suite
    from aimc.finetune import RewardConfig, load_ppo_config
    from aimc.finetune.ppo_rollout import RewardHook, TaskSpec, _Buffer, approach_targets, task_specs

    # Read off Crafter's collect table: the source material and the tools it needs; nothing for grass or places.
    assert approach_targets(("collect_coal",)) == (("coal", ("wood_pickaxe",)),)
    assert approach_targets(("collect_wood",)) == (("tree", ()),)
    assert approach_targets(("collect_sapling",)) == approach_targets(("place_stone",)) == ()
    specs = {s.name: s for s in task_specs(load_suite(), ["collect_coal", "eat_cow"], "crafter")}
    assert specs["collect_coal"].targets == (("coal", ("wood_pickaxe",)),) and specs["eat_cow"].targets == ()

    spec = TaskSpec("collect_coal", Success("any", ("collect_coal",)), ("mine coal",), (),
                    targets=(("coal", ("wood_pickaxe",)),))
    world = _ApproachWorld({"coal": [(14, 12), (10, 13)]})  # nearest at distance 3 from (10, 10)
    buf = _Buffer(np.zeros(2, np.float32))
    hook = RewardHook(spec, RewardConfig(approach=0.5), buf, gamma=0.9)
    hook.on_reset(world, {}, {})
    assert hook.potential == 0.0  # no pickaxe: coal is not a target yet

    def step(t, events=(), dead=False, cut=False):
        hook.on_step(world, Step(t, {}, 0, {}, 0.0, dead, cut, {"events": list(events)}))

    world.player.inventory["wood_pickaxe"] = 1
    step(0)  # 0 -> 1 - 3/8
    world.player.pos = np.array([10, 11])
    step(1)  # -> 1 - 2/8
    world.cells = {}
    step(2)  # out of view -> 0
    world.cells = {"coal": [(10, 12)]}
    step(3)  # back in view, adjacent -> 1 - 1/8
    step(4, ["collect_coal"], cut=True)  # success stop: the potential after the end is 0
    phi = [0.0, 5 / 8, 6 / 8, 0.0, 7 / 8]
    want = [0.5 * (0.9 * b - a) for a, b in itertools.pairwise(phi)] + [1.0 + 0.5 * (0.0 - 7 / 8)]
    assert buf.rewards == pytest.approx(want)
    assert hook.success_step == 4
    # Off by default: the same steps pay nothing but the success.
    buf2 = _Buffer(np.zeros(2, np.float32))
    plain = RewardHook(spec, RewardConfig(), buf2, gamma=0.9)
    plain.on_reset(world, {}, {})
    plain.on_step(world, Step(0, {}, 0, {}, 0.0, False, False, {"events": []}))
    assert buf2.rewards == [0.0]
    with pytest.raises(ConfigError, match="reward.approach must be >= 0"):
        load_ppo_config("ppo-crafter", ["reward.approach=-0.1"])


def test_shelter_reward_pays_each_dark_step_walled_in():
    """`reward.shelter` pays per step the player is walled into at most a 2x2 room while the light is below the
    demonstrator's night_daylight: nothing by day walled in, nothing at night in the open, nothing on the step
    it dies; off by default; negative or non-Crafter values refused."""
    from aimc.core.errors import ConfigError
    from aimc.envs import Step, make
    from aimc.envs.demo import DemonstratorConfig
    from aimc.eval.tasks import Success
    from aimc.finetune import RewardConfig, load_ppo_config
    from aimc.finetune.ppo_rollout import RewardHook, TaskSpec, _Buffer

    env = make("crafter", size=64)
    env.reset(seed=5)
    x, y = (int(v) for v in env.player.pos)
    ring = [(i, j) for i in range(x - 1, x + 3) for j in range(y - 1, y + 3)]

    def wall_in(walls: bool) -> None:
        for i, j in ring:
            inside = i in (x, x + 1) and j in (y, y + 1)
            env.world[(i, j)] = "grass" if inside else ("stone" if walls else "grass")

    spec = TaskSpec("collect_coal", Success("any", ("collect_coal",)), ("mine coal",), ())
    buf = _Buffer(np.zeros(2, np.float32))
    hook = RewardHook(spec, RewardConfig(shelter=0.05), buf)
    hook.on_reset(env, {}, {})
    night = DemonstratorConfig().night_daylight
    rows = []
    for light, walls, dead in [(0.9, True, False), (night - 0.1, True, False), (night - 0.1, False, False),
                               (0.05, True, False), (0.05, True, True)]:
        env.world.daylight = light
        wall_in(walls)
        hook.on_step(env, Step(len(rows), {}, 0, {}, 0.0, dead, False, {"events": []}))
        rows.append(buf.rewards[-1])
    assert rows == pytest.approx([0.0, 0.05, 0.0, 0.05, 0.0])
    plain = _Buffer(np.zeros(2, np.float32))
    off = RewardHook(spec, RewardConfig(), plain)
    off.on_step(env, Step(0, {}, 0, {}, 0.0, False, False, {"events": []}))
    assert plain.rewards == [0.0]
    with pytest.raises(ConfigError, match="reward.shelter must be >= 0"):
        load_ppo_config("ppo-crafter", ["reward.shelter=-1"])


def test_health_reward_pays_each_steps_change_of_the_players_health():
    from aimc.core.errors import ConfigError
    from aimc.envs import Step
    from aimc.eval.tasks import Success
    from aimc.finetune import RewardConfig, load_ppo_config
    from aimc.finetune.ppo_rollout import RewardHook, TaskSpec, _Buffer

    class World:
        player = type("P", (), {"health": 9})()

    spec = TaskSpec("collect_coal", Success("any", ("collect_coal",)), ("mine coal",), ())
    buf = _Buffer(np.zeros(2, np.float32))
    hook = RewardHook(spec, RewardConfig(health=0.1, death=-0.3), buf, gamma=0.9)
    world = World()
    hook.on_reset(world, {}, {})
    for t, (health, dead) in enumerate([(9, False), (7, False), (8, False), (8, False), (0, True)]):
        world.player.health = health
        hook.on_step(world, Step(t, {}, 0, {}, 0.0, dead, False, {"events": []}))
    # the same health pays nothing, a hit of 2 costs 0.2, regeneration pays, dying costs the rest plus `death`
    assert buf.rewards == pytest.approx([0.0, -0.2, 0.1, 0.0, -0.8 - 0.3])
    # a success stop at full health costs nothing (the undiscounted difference, not a potential)
    buf2 = _Buffer(np.zeros(2, np.float32))
    hook2 = RewardHook(spec, RewardConfig(health=0.1), buf2, gamma=0.9)
    world.player.health = 9
    hook2.on_reset(world, {}, {})
    hook2.on_step(world, Step(0, {}, 0, {}, 0.0, False, True, {"events": ["collect_coal"]}))
    assert buf2.rewards == pytest.approx([1.0])
    # off by default: health changes pay nothing
    buf3 = _Buffer(np.zeros(2, np.float32))
    hook3 = RewardHook(spec, RewardConfig(), buf3, gamma=0.9)
    hook3.on_reset(world, {}, {})
    world.player.health = 3
    hook3.on_step(world, Step(0, {}, 0, {}, 0.0, False, False, {"events": []}))
    assert buf3.rewards == [0.0]
    with pytest.raises(ConfigError, match="reward.health must be >= 0"):
        load_ppo_config("ppo-crafter", ["reward.health=-0.1"])


# ------------------------------------------------------------------------------------------- micro runs
@pytest.fixture(scope="module")
def micro_run(tiny_bundle, tmp_path_factory):
    """One uninterrupted micro run: iteration 1 trains the value head only, iteration 2 the policy (guided,
    the tiny bundle's cond_scale)."""
    from aimc.finetune import run_ppo

    out = tmp_path_factory.mktemp("ppo") / "run"
    lines: list[str] = []
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests (conftest): thread count changes float sums, hence weights
    try:
        summary = run_ppo(micro_cfg(tiny_bundle, out), progress=False, log=lines.append)
    finally:
        torch.set_num_threads(n)
    return out, summary, lines


def test_micro_run_updates_against_the_anchor_and_writes_a_loadable_bundle(micro_run, tiny_bundle):
    from safetensors.torch import load_file

    from aimc.eval.agent import TextAgent
    from aimc.train.bundle import AgentBundle

    out, s, lines = micro_run
    rows = s["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2] and [r["warmup"] for r in rows] == [True, False]
    assert [r["kl_coef"] for r in rows] == [0.2, 0.1]  # kl_decay 0.5
    for r in rows:
        assert r["episodes"] == 4 and 4 <= r["env_steps"] <= 4 * 24 and r["optimizer_steps"] == 4
        assert r["ratio_dev_first"] < 1e-4  # the replay recomputes the rollout's log-probabilities
        assert set(r["success_per_task"]) == {"chop_tree", "place_table"} and 0 <= r["success"] <= 1
        assert r["value_loss"] > 0 and r["entropy"] > 0 and np.isfinite(r["grad_norm"])
    assert rows[0]["kl_anchor"] == 0.0 and rows[0]["clip_frac"] == 0.0  # warm-up: the policy does not move
    assert rows[1]["kl_anchor"] > 0 and rows[1]["approx_kl"] > 0
    assert lines[0].startswith("iter 1/2 (value warm-up): success") and lines[1].startswith("iter 2/2: success")
    assert json.loads((out / "ppo_summary.json").read_text()) == s and s["cond_scale"] == 6.0

    start = load_file(str(AgentBundle.read(tiny_bundle).policy_dir() / "model.safetensors"))
    ckpt = out / "checkpoints" / (out / "checkpoints" / "last").read_text().strip()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last", "step_0001", "step_0002"]
    final = load_file(str(ckpt / "policy" / "model.safetensors"))
    assert not torch.equal(final["pi_head.action.linear_layer.weight"], start["pi_head.action.linear_layer.weight"])
    assert float(start["value_head.normalizer.debiasing_term"]) == 0  # BC never trained the value head
    assert float(final["value_head.normalizer.debiasing_term"]) > 0  # PPO's returns reached the normaliser
    iter1 = load_file(str(out / "checkpoints" / "step_0001" / "policy" / "model.safetensors"))
    trunk = [k for k in start if not k.startswith("value_head.")]
    assert all(torch.equal(iter1[k], start[k]) for k in trunk)  # the warm-up trained only the value head
    assert not torch.equal(iter1["value_head.linear.weight"], start["value_head.linear.weight"])

    bundle = AgentBundle.read(out / "bundle")
    assert bundle.policy == "policy" and bundle.embedder == "embedder" and bundle.world == "crafter"
    assert load_file(str(bundle.policy_dir() / "model.safetensors")).keys() == final.keys()
    assert all(torch.equal(load_file(str(bundle.policy_dir() / "model.safetensors"))[k], v) for k, v in final.items())
    agent = TextAgent.from_bundle(out / "bundle")
    agent.start(agent.goal_from_text(["chop a tree"]), seed=0)
    assert agent.act(np.zeros((1, 64, 64, 3), np.uint8), np.array([True])).shape == (1,)
    assert any((out / "tensorboard").iterdir())

    from aimc.finetune import format_ppo_table

    table = format_ppo_table(s).splitlines()
    assert table[0].split()[:3] == ["iter", "kl_coef", "success"] and [t.split()[0] for t in table[1:]] == ["1", "2"]


def test_unguided_update_recomputes_the_rollout_log_probs(tiny_bundle, tmp_path):
    """Without guidance (the shipped agent's cond_scale 0) and without a warm-up: ratio 1 on the first
    minibatch, and the policy leaves the anchor."""
    from aimc.finetune import run_ppo

    s = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run", "iterations=1", "value_warmup_iterations=0", "cond_scale=0",
                          "max_steps=12"), progress=False, log=lambda _: None)
    (row,) = s["iterations"]
    assert row["ratio_dev_first"] < 1e-4 and row["kl_anchor"] > 0 and s["cond_scale"] == 0.0


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("setting", ["mixed_precision=bf16", "rollout_precision=bf16"])
def test_bf16_runs_under_autocast_only_where_the_cpu_computes_it(tiny_bundle, tmp_path, monkeypatch, native, setting):
    """`mixed_precision=bf16` (the update's forwards) or `rollout_precision=bf16` (the acting forward): on a CPU
    with native bf16 (forced here) that forward runs in bf16 and the other in fp32, so the first minibatch's ratio
    is 1 only up to bf16 rounding (the recorded log-probabilities are fp32 either way) and the update still moves
    the policy; on a CPU without, the run is the fp32 one exactly."""
    from aimc.finetune import run_ppo
    from aimc.finetune.ppo import autocast_for

    monkeypatch.setenv("AIMC_CPU_BF16", native)
    cfg = micro_cfg(tiny_bundle, tmp_path / "run", "iterations=1", "value_warmup_iterations=0", "cond_scale=0",
                    "max_steps=12", setting)
    with autocast_for(cfg)():
        assert torch.is_autocast_enabled("cpu") == (native == "1" and setting.startswith("mixed"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (row,) = run_ppo(cfg, progress=False, log=lambda _: None)["iterations"]
    finally:
        torch.set_num_threads(n)
    assert row["kl_anchor"] > 0 and np.isfinite(row["loss"]) and np.isfinite(row["grad_norm"])
    if native == "1":
        assert 1e-4 < row["ratio_dev_first"] < 0.5
    else:
        assert row["ratio_dev_first"] < 1e-4


def _pool_inputs(bundle: Path, out: Path, *sets: str):
    from aimc.finetune.ppo import prepare
    from aimc.finetune.ppo_rollout import make_jobs, weighted_schedule

    cfg, plan = prepare(micro_cfg(bundle, out, *sets))
    jobs = make_jobs(weighted_schedule(plan.specs, cfg.task_weights), cfg.episodes_per_iteration, 1, cfg.seed)
    return cfg, plan, {s.name: s for s in plan.specs}, jobs


def _pool(cfg, plan, world_config=None):
    from aimc.finetune.ppo_workers import RolloutPool

    return RolloutPool(2, str(plan.bundle.policy_dir()), plan.world, plan.world_config if world_config is None
                       else world_config, cfg.envs, cfg.stop_on_success, cond_scale=plan.cond_scale, device="cpu",
                       planner=cfg.planner, make_labeller=None, demo_tasks={s.name: s.demo_task for s in plan.specs},
                       skip_explore=False, tied_moves=False)


def test_rollout_workers_play_the_jobs_of_one_process_in_job_order(tiny_bundle, tmp_path):
    """Two worker processes play the iteration's jobs round-robin and return them in job order, each episode as
    the trainer's own engine plays it (same world, same first frame; log-probabilities up to batch rounding),
    acting with the weights the trainer holds at that moment."""
    from aimc.finetune.ppo_rollout import PolicyActor, RolloutEngine

    cfg, plan, specs, jobs = _pool_inputs(tiny_bundle, tmp_path / "run", "episodes_per_iteration=6", "envs=4")
    actor = PolicyActor(plan.policy, cfg.envs, plan.cond_scale, "cpu", None, plan.goals.__getitem__)
    ref = RolloutEngine(plan.world, plan.world_config, cfg.envs, True).play(actor, specs, plan.goals, jobs,
                                                                            cfg.max_steps, cfg.reward)
    seen: list[int] = []
    with _pool(cfg, plan) as pool:
        got = pool.play(plan.policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward,
                        lambda t: seen.append(t.job.index))
        assert [t.job for t in got] == jobs and sorted(seen) == list(range(6))
        for a, b in zip(ref, got, strict=True):
            assert np.array_equal(a.frames[0], b.frames[0]) and a.actions[0] == b.actions[0]
            assert abs(a.logp[0] - b.logp[0]) < 1e-4 and abs(a.values[0] - b.values[0]) < 1e-4
        with torch.no_grad():  # the workers act with the weights passed to each play
            for p in plan.policy.parameters():
                p.add_(torch.randn_like(p))
        moved = pool.play(plan.policy, specs, plan.goals, jobs[:2], cfg.max_steps, cfg.reward)
    assert all(abs(a.logp[0] - b.logp[0]) > 1e-4 for a, b in zip(got[:2], moved, strict=True))


def test_rollout_worker_failures_raise_one_line(tiny_bundle, tmp_path):
    """A world that fails in a worker raises `EpisodeError` naming the episode (traceback as a note); a worker
    that died raises one line naming it; neither leaves processes behind."""
    from aimc.core.errors import AimcError, EpisodeError

    cfg, plan, specs, jobs = _pool_inputs(tiny_bundle, tmp_path / "run")
    pool = _pool(cfg, plan, world_config={"no_such_option": 1})
    with pytest.raises(EpisodeError) as e:
        pool.play(plan.policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward)
    assert re.fullmatch(r"PPO rollout worker [01] failed: aimc\.core\.errors\.ConfigError: crafter got unknown "
                        r"options \['no_such_option'\]", str(e.value))  # whichever worker reported first
    assert "Traceback" in "".join(e.value.__notes__)
    procs = list(pool.procs)
    pool.close()
    assert not any(p.is_alive() for p in procs)
    pool = _pool(cfg, plan)
    pool.procs[1].kill()
    pool.procs[1].join()
    procs = list(pool.procs)
    with pytest.raises(AimcError, match=r"PPO rollout worker 1 died \(exit code -9\); rerun the command"):
        pool.play(plan.policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward)
    assert not any(p.is_alive() for p in procs)


def test_a_run_with_rollout_workers_trains_and_resumes_with_another_count(tiny_bundle, tmp_path):
    """`rollout_workers=2` end to end: the update replays what the workers played (ratio 1 on the first
    minibatch), and the count may change on resume (float rounding only)."""
    from aimc.finetune import run_ppo

    out = tmp_path / "run"
    s = run_ppo(micro_cfg(tiny_bundle, out, "iterations=1", "rollout_workers=2"), progress=False, log=lambda _: None)
    assert [r["episodes"] for r in s["iterations"]] == [4] and s["iterations"][0]["ratio_dev_first"] < 1e-4
    s = run_ppo(micro_cfg(tiny_bundle, out, "iterations=2", "rollout_workers=1"), progress=False, log=lambda _: None)
    rows = s["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2] and rows[1]["ratio_dev_first"] < 1e-4 and rows[1]["kl_anchor"] > 0


def test_resume_after_an_interruption_gives_the_uninterrupted_run(micro_run, tiny_bundle, tmp_path, capsys):
    """One iteration, then the same command with two (through the CLI): the summary and the final weights
    equal those of the run that did both at once."""
    from aimc.finetune import run_ppo

    out = tmp_path / "run"
    run_ppo(micro_cfg(tiny_bundle, out, "iterations=1"), progress=False, log=lambda _: None)
    assert (out / "checkpoints" / "last").read_text().strip() == "step_0001"
    assert main(["train", "ppo", "--preset", "ppo-micro", "--bundle", str(tiny_bundle), "--out", str(out), "--quiet",
                 "--iterations", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["iter", "kl_coef", "success"] and "PPO finished 2 iteration(s)" in printed
    summary = json.loads((out / "ppo_summary.json").read_text())
    ref_out, ref, _ = micro_run
    assert stable(summary) == stable(ref)
    for name in ("checkpoints/step_0002/policy/model.safetensors", "bundle/policy/model.safetensors"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes()


def test_a_copied_run_dir_resumes_from_its_new_place(micro_run, tiny_bundle, tmp_path):
    """`out` is not part of a run's identity: a copy of a finished run continues under the new path (a branch),
    to the same numbers as the uninterrupted run, and the original is left as it was."""
    from aimc.finetune import run_ppo

    _, ref, _ = micro_run
    one = tmp_path / "one"
    run_ppo(micro_cfg(tiny_bundle, one, "iterations=1"), progress=False, log=lambda _: None)
    branch = tmp_path / "branch"
    shutil.copytree(one, branch)
    summary = run_ppo(micro_cfg(tiny_bundle, branch, "iterations=2"), progress=False, log=lambda _: None)
    assert stable(summary) == stable(ref)
    assert json.loads((branch / "ppo_config.json").read_text())["out"] == str(branch)
    assert (one / "checkpoints" / "last").read_text().strip() == "step_0001"  # the original did not move on
    assert json.loads((one / "ppo_config.json").read_text())["out"] == str(one)


def test_resume_refuses_a_start_bundle_whose_weights_changed(tiny_bundle, tmp_path, capsys):
    """The start policy is also the KL anchor: a bundle replaced in place under the same path (a shipped bundle
    updated) must not silently become another run's anchor on resume."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from aimc.finetune import run_ppo
    from aimc.train.bundle import AgentBundle

    start = tmp_path / "start"
    shutil.copytree(tiny_bundle, start)
    out = tmp_path / "run"
    run_ppo(micro_cfg(start, out, "iterations=1"), progress=False, log=lambda _: None)
    assert "start policy model.safetensors" in json.loads((out / "inputs.json").read_text())
    weights = AgentBundle.read(start).policy_dir() / "model.safetensors"
    original = weights.read_bytes()
    with safe_open(weights, "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01  # another policy, same architecture and metadata
    save_file(tensors, weights, metadata=meta)
    assert weights.read_bytes() != original
    saved = {name: (out / name).read_bytes() for name in ("ppo_config.json", "inputs.json")}
    args = ["train", "ppo", "--preset", "ppo-micro", "--bundle", str(start), "--out", str(out), "--quiet",
            "--iterations", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot resume: start policy model.safetensors" in err and "changed since this run started" in err, err
    assert err.count("\n") == 1
    assert (out / "checkpoints" / "last").read_text().strip() == "step_0001"  # nothing trained from the wrong anchor
    assert {name: (out / name).read_bytes() for name in saved} == saved  # refused before anything was written


def test_bad_input_fails_in_one_line_and_writes_nothing(micro_run, tiny_bundle, tmp_path, capsys):
    from aimc.policy import VPTPolicy, get_config, save_pretrained
    from aimc.train.bundle import AgentBundle

    out = tmp_path / "new"
    common = ["train", "ppo", "--preset", "ppo-micro", "--out", str(out)]
    cases = [
        ([*common, "--bundle", str(tiny_bundle), "--task", "chop_tree", "--task", "fly"],
         "error: unknown task 'fly'; valid tasks: chop_tree, collect_sapling"),
        ([*common, "--bundle", str(tiny_bundle), "--set", "klcoef=1"], "error: config: unknown key(s) ['klcoef']"),
        (["train", "ppo", "--preset", "nope", "--out", str(out)], "error: unknown PPO preset 'nope'; available: ppo-crafter"),
        ([*common, "--bundle", str(tmp_path)], "is not an agent bundle"),
        ([*common, "--bundle", str(tiny_bundle), "--set", "world=minecraft", "--set", "reward.approach=0.3"],
         "error: reward.approach needs a world whose collect table and view the shaping reads (crafter), not 'minecraft'"),
        ([*common, "--bundle", str(tiny_bundle), "--set", "reward.approach=-1"], "error: reward.approach must be >= 0"),
        ([*common, "--bundle", str(tiny_bundle), "--set", "world=minecraft", "--set", "reward.health=0.1"],
         "error: reward.health needs a world whose player's health it can read (crafter), not 'minecraft'"),
        ([*common, "--bundle", str(tiny_bundle), "--set", "world=minecraft", "--set", "reward.shelter=0.05"],
         "error: reward.shelter needs Crafter's daylight and walls, not world 'minecraft'; use reward.shelter=0"),
    ]
    nob = tmp_path / "unconditional"
    shutil.copytree(AgentBundle.read(tiny_bundle).policy_dir(), nob / "policy")
    AgentBundle(policy="policy", embedder=None, embed_name=None, prior=None, cond_scale=None, world="crafter",
                world_config={"size": 64}).write(nob)
    cases.append(([*common, "--bundle", str(nob)], "has no embedder, so its policy cannot read text prompts"))
    five = tmp_path / "five_actions"
    shutil.copytree(tiny_bundle / "embedder", five / "embedder")
    save_pretrained(VPTPolicy(get_config("test-tiny", img_shape=(64, 64), action_head="categorical", n_actions=5,
                                         goal_dim=8)), five / "policy")
    AgentBundle(policy="policy", embedder="embedder", embed_name=None, prior=None, cond_scale=0.0, world="crafter",
                world_config={"size": 64}).write(five)
    cases.append(([*common, "--bundle", str(five)], "has action head(s) {'action': 5}, which do not fit world 'crafter' (17"))
    for args, message in cases:
        assert main(args) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not out.exists()

    run_out, _, _ = micro_run  # an existing run refuses a changed setting before touching anything
    saved = (run_out / "ppo_config.json").read_text()
    assert main(["train", "ppo", "--preset", "ppo-micro", "--bundle", str(tiny_bundle), "--out", str(run_out),
                 "--set", "clip=0.3"]) == 2
    assert "different clip (saved 0.2, now 0.3)" in capsys.readouterr().err
    assert (run_out / "ppo_config.json").read_text() == saved


def test_planner_in_the_rollouts_is_replayed_step_by_step(tiny_bundle, tmp_path):
    """`planner=chain`: the policy acts on each step's sub-instruction ("chop a tree" before "place a crafting
    table"), and the update replays those goals, not the prompt's: the first minibatch's ratio is still 1."""
    from aimc.finetune import run_ppo
    from aimc.finetune.ppo_rollout import PolicyActor

    seen: list[int] = []
    original = PolicyActor._replan

    def spy(self, slots, envs):
        original(self, slots, envs)
        seen.extend(len(b.goals) for b in self.buffers if b is not None)

    PolicyActor._replan = spy
    try:
        s = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run", "iterations=1", "value_warmup_iterations=0",
                              "tasks=[place_table]", "planner=chain", "max_steps=12"), progress=False, log=lambda _: None)
    finally:
        PolicyActor._replan = original
    (row,) = s["iterations"]
    assert max(seen) > 1  # goals were recorded per step
    assert row["ratio_dev_first"] < 1e-4 and row["kl_anchor"] > 0
    # the fine-tuned agent plays the way it was trained: its bundle chains by default (the start did not)
    assert json.loads((tmp_path / "run" / "bundle" / "bundle.json").read_text()).get("planner") == "chain"
    assert json.loads((tiny_bundle / "bundle.json").read_text()).get("planner") in (None, "none")
    assert s["planner"] == "chain"
    from aimc.core.errors import ConfigError
    from aimc.finetune import load_ppo_config

    with pytest.raises(ConfigError, match="planner: expected one of none, chain, chain-event, chain-night, chain-rest"):
        load_ppo_config("ppo-micro", ["planner=fancy"])
    with pytest.raises(ConfigError, match="bundle_planner: expected one of none, chain, chain-event,"):
        load_ppo_config("ppo-micro", ["bundle_planner=fancy"])
    # how the trained agent is played may change after training: the finished run writes its bundle again with
    # that default, trains nothing more, and its policy stays byte for byte the same
    weights = (tmp_path / "run" / "bundle" / "policy" / "model.safetensors").read_bytes()
    again = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run", "iterations=1", "value_warmup_iterations=0",
                              "tasks=[place_table]", "planner=chain", "max_steps=12", "bundle_planner=chain-event"),
                    progress=False, log=lambda _: None)
    assert again["iterations"] == s["iterations"] and again["planner"] == "chain-event"
    assert json.loads((tmp_path / "run" / "bundle" / "bundle.json").read_text())["planner"] == "chain-event"
    assert (tmp_path / "run" / "bundle" / "policy" / "model.safetensors").read_bytes() == weights


BC_SETS = ("bc.preset=test", "bc.overrides=[segment.goal_source=intention,segment.embed_name=null]", "bc.segments=2")


def test_aux_bc_loss_is_the_training_loss_and_moves_the_update(tiny_bundle, demo_store, tmp_path):  # noqa: F811
    """The auxiliary term is the BC trainer's validation NLL of the same segments; a run with it ends at other
    weights than the same run without it, and reports the term; it draws the same segments on a rerun."""
    from safetensors.torch import load_file

    from aimc.data.dataset import val_keys
    from aimc.finetune import load_ppo_config, run_ppo
    from aimc.finetune.ppo_bc import BCStream
    from aimc.policy import from_pretrained
    from aimc.train.bundle import AgentBundle
    from aimc.train.loop import evaluate

    bundle = AgentBundle.read(tiny_bundle)
    policy = from_pretrained(bundle.policy_dir())
    cfg = load_ppo_config("ppo-micro", [*BC_SETS, "bc.coef=1", f"bc.data=[{demo_store}]"])
    stream = BCStream(cfg.bc, bundle.embedder_ref(), policy.config.goal_dim, policy.config.img_shape, seed=0)
    keys = val_keys(stream.index, 0, 4)
    from aimc.data.dataset import collate_segments

    batch = collate_segments([stream.dataset[k] for k in keys])
    with torch.no_grad():
        ours = float(stream.loss(policy, batch, "cpu"))
    ref = evaluate(policy, stream.dataset, keys, stream.tc, torch.device("cpu"))["loss"]
    assert ours == pytest.approx(ref, rel=1e-4)
    a, b = stream.batch(3, 5), stream.batch(3, 5)
    assert torch.equal(a["goal"], b["goal"]) and torch.equal(a["pov"], b["pov"])
    assert not torch.equal(stream.batch(3, 6)["pov"], a["pov"])

    common = ["iterations=1", "value_warmup_iterations=0", "max_steps=12", "tasks=[chop_tree]", *BC_SETS]
    runs = {}
    for coef in (0, 1):
        out = tmp_path / f"coef{coef}"
        s = run_ppo(micro_cfg(tiny_bundle, out, *common, f"bc.coef={coef}", f"bc.data=[{demo_store}]"),
                    progress=False, log=lambda _: None)
        runs[coef] = (s["iterations"][0], load_file(str(out / "bundle" / "policy" / "model.safetensors")))
    assert "bc_nll" not in runs[0][0] and runs[1][0]["bc_nll"] > 0
    key = "pi_head.action.linear_layer.weight"
    assert not torch.equal(runs[0][1][key], runs[1][1][key])


def test_aux_bc_bad_input_in_one_line_nothing_written(tiny_bundle, tmp_path, capsys):
    from aimc.core.errors import ConfigError
    from aimc.finetune import load_ppo_config

    with pytest.raises(ConfigError, match="bc.coef > 0 needs demonstrations"):
        load_ppo_config("ppo-micro", ["bc.coef=0.5"])
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    args = ["train", "ppo", "--preset", "ppo-micro", "--bundle", str(tiny_bundle), "--out", str(out),
            *[a for s in (*BC_SETS, "bc.coef=1", f"bc.data=[{empty}]") for a in ("--set", s)]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no valid episodes" in err
    assert not out.exists()


# ------------------------------------------------------------------------------------------- expert labels
def test_expert_labels_are_the_demonstrators_and_their_nll_moves_the_update(tiny_bundle, tmp_path, monkeypatch):
    """`expert.coef`: every step of a rollout carries the task-mode demonstrator's label for that state (replayed
    here with a fresh demonstrator on the same world and executed actions), the executed actions stay the
    learner's, the update's expert NLL is -mean log pi(label) under the acting policy, and the term changes the
    weights the run ends with."""
    from safetensors.torch import load_file

    from aimc.core.seeding import derive_seed
    from aimc.envs import make
    from aimc.envs.demo import CrafterDemonstrator, DemonstratorConfig
    from aimc.finetune import run_ppo
    from aimc.finetune.ppo import acting_logp, make_optimizer, policy_step, ppo_update
    from aimc.policy import from_pretrained
    from aimc.train.bundle import AgentBundle

    captured = capture_first_iteration(monkeypatch)
    common = ["iterations=1", "value_warmup_iterations=0", "max_steps=16", "tasks=[chop_tree,drink_water]"]
    runs = {}
    for coef in (0, 1):
        out = tmp_path / f"coef{coef}"
        s = run_ppo(micro_cfg(tiny_bundle, out, *common, f"expert.coef={coef}"), progress=False, log=lambda _: None)
        runs[coef] = (s["iterations"][0], load_file(str(out / "bundle" / "policy" / "model.safetensors")))
        if coef == 0:
            assert all(tr.labels is None for tr in captured.pop("data").trajs)
    row = runs[1][0]
    assert "expert_nll" not in runs[0][0] and row["expert_nll"] > 0 and 0 <= row["expert_agreement"] <= 1
    key = "pi_head.action.linear_layer.weight"
    assert not torch.equal(runs[0][1][key], runs[1][1][key])

    data = captured["data"]
    bundle = AgentBundle.read(tiny_bundle)
    for tr in data.trajs:  # replay: the same world, the learner's actions, a fresh labeller with the slot's seed
        assert tr.labels is not None and tr.labels.shape == tr.actions.shape
        env = make("crafter", **bundle.world_config)
        env.reset(seed=tr.job.world_seed)
        demo = CrafterDemonstrator(DemonstratorConfig(mode="task", noise_prob=0.0, explore_follow_facing=True,
                                                      explore_turn_prob=0.0))
        demo.reset(env, seed=derive_seed(tr.job.actor_seed, "labeller"))
        labels = []
        for a in tr.actions:
            label = demo.act(env, {"chop_tree": "collect_wood", "drink_water": "collect_drink"}[tr.job.task])
            assert demo.label_set[0] == label
            # skip_explore (default): exploring steps are left out (empty set); tied_moves: equally short moves too
            labels.append(0 if demo.explored else sum(1 << x for x in set(demo.label_set)))
            env.step(int(a))
        assert labels == tr.labels.tolist()
    every = np.concatenate([tr.labels for tr in data.trajs])
    assert (every > 0).any() and (every == 0).any()  # a micro world run both explores and targets trees
    assert any(bin(m).count("1") > 1 for m in every)  # some labels hold two equally short moves
    assert any(not (m >> a) & 1 for tr in data.trajs for m, a in zip(tr.labels, tr.actions, strict=True) if m)

    cfg = micro_cfg(tiny_bundle, tmp_path / "x", *common, "expert.coef=1", "epochs=1", "minibatch_episodes=4")
    policy = from_pretrained(bundle.policy_dir())
    scale = float(bundle.cond_scale or 0.0)
    with torch.no_grad():  # independent: each episode in one piece, -log pi(label) summed over all steps
        total = 0.0
        for tr, goal in zip(data.trajs, data.goals, strict=True):
            pov = torch.from_numpy(tr.frames)[None]
            g = torch.from_numpy(np.broadcast_to(goal, (tr.steps, goal.shape[-1])).copy())[None]
            first = torch.zeros(1, tr.steps, dtype=torch.bool)
            first[0, 0] = True
            out, _ = policy_step(policy, pov, g, first, None, scale)
            (lp,) = acting_logp(out, bool(scale)).values()
            for t, m in enumerate(tr.labels.tolist()):
                if m:
                    total -= float(torch.logsumexp(lp[0, t, [a for a in range(lp.shape[-1]) if (m >> a) & 1]], 0))
    ref = total / int((every > 0).sum())
    data.anchor = None
    stats = ppo_update(policy, make_optimizer(policy, cfg), data, cfg, 1, scale, warmup=False)
    assert stats["optimizer_steps"] == 1 and stats["expert_nll"] == pytest.approx(ref, rel=1e-4)


def test_expert_labels_bad_input_in_one_line_nothing_written(tiny_bundle, tmp_path, capsys):
    from aimc.core.errors import ConfigError
    from aimc.finetune import load_ppo_config

    with pytest.raises(ConfigError, match="expert.coef must be >= 0"):
        load_ppo_config("ppo-micro", ["expert.coef=-1"])
    suite = tmp_path / "suite.yaml"
    suite.write_text(TWO_STEP_SUITE)
    refused_in_one_line(tiny_bundle, tmp_path / "run", (
        (["expert.coef=1", f"suite={suite}", "tasks=[table_or_wood]"], "name no demo_task in the suite"),
        (["expert.coef=1", "expert.demonstrator={speed: 3}"], "speed"),
    ), capsys)


# ------------------------------------------------------------------------------------------- distillation
def test_pg_coef_scales_only_the_surrogate():
    from aimc.finetune import ppo_loss

    g = torch.Generator().manual_seed(3)
    shape = (2, 6)
    lp_old = -torch.rand(shape, generator=g, dtype=torch.float64)
    lp_new, adv, vpred, vtarget, ent, kl = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(6))
    mask = torch.ones(shape, dtype=torch.bool)
    coefs = {"clip": 0.2, "vf_coef": 0.5, "ent_coef": 0.01, "kl_coef": 0.3}
    full = ppo_loss(lp_new, lp_old, adv, vpred, vtarget, ent, kl, mask, **coefs)
    off = ppo_loss(lp_new, lp_old, adv, vpred, vtarget, ent, kl, mask, **coefs, pg_coef=0.0)
    no_adv = ppo_loss(lp_new, lp_old, torch.zeros_like(adv), vpred, vtarget, ent, kl, mask, **coefs)
    assert float(off["loss"]) == pytest.approx(float(no_adv["loss"]), rel=1e-12)
    assert float(off["loss"]) == pytest.approx(float(full["loss"] - full["policy_loss"]), rel=1e-9)


def test_a_teacher_steps_beside_the_policy_on_the_same_states(tiny_bundle, tmp_path):
    """With the start policy as its own teacher (no frame_size) and before any update, the teacher's recorded
    distribution at every step is the one the policy acted with (same frames, goals and memory, step for step),
    in one process and in the worker processes alike; so KL(teacher ‖ policy) starts at 0 and the first update
    does not move the policy when the surrogate is off."""
    from aimc.finetune.ppo_rollout import PolicyActor, RolloutEngine

    cfg, plan, specs, jobs = _pool_inputs(tiny_bundle, tmp_path / "run", "episodes_per_iteration=4", "envs=2",
                                          "teacher_coef=1", "cond_scale=0")
    assert plan.teacher is not None and plan.teacher is not plan.policy
    assert not any(p.requires_grad for p in plan.teacher.parameters()) and any(p.requires_grad for p in plan.policy.parameters())
    actor = PolicyActor(plan.policy, cfg.envs, plan.cond_scale, "cpu", None, plan.goals.__getitem__,
                        teacher=plan.teacher, teacher_scale=0.0)
    trajs = RolloutEngine(plan.world, plan.world_config, cfg.envs, True).play(actor, specs, plan.goals, jobs,
                                                                              cfg.max_steps, cfg.reward)
    from aimc.finetune.ppo_workers import RolloutPool

    with RolloutPool(2, str(plan.bundle.policy_dir()), plan.world, plan.world_config, cfg.envs, True, cond_scale=0.0,
                     device="cpu", planner=cfg.planner, make_labeller=None, demo_tasks={}, skip_explore=False,
                     tied_moves=False, teacher=str(plan.bundle.policy_dir())) as pool:
        pooled = pool.play(plan.policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward)
    for got in (trajs, pooled):
        assert sum(tr.steps for tr in got) > 8
        for tr in got:
            assert tr.teacher_logp is not None and tr.teacher_logp.shape == (tr.steps, 17)
            at_action = tr.teacher_logp[np.arange(tr.steps), tr.actions]
            np.testing.assert_allclose(at_action, tr.logp, atol=1e-4)
            np.testing.assert_allclose(np.exp(tr.teacher_logp).sum(1), 1.0, atol=1e-4)
    for a, b in zip(trajs, pooled, strict=True):
        np.testing.assert_allclose(a.teacher_logp[0], b.teacher_logp[0], atol=1e-4)


def test_a_student_at_half_the_frame_size_is_distilled_by_workers_and_written_as_a_bundle(tiny_bundle, tmp_path):
    """frame_size 32 with the start policy as teacher, the surrogate off, in two rollout workers: the student's
    frames are 32x32, the teacher's KL is measured and falls over the iterations of the micro run, and the bundle
    holds the 32x32 policy with the start bundle's embedder; the teacher term moves the policy, the anchor replay
    is skipped (kl_coef 0)."""
    from aimc.eval.agent import TextAgent
    from aimc.finetune import run_ppo

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run", "iterations=3", "value_warmup_iterations=0", "cond_scale=0",
                              "frame_size=32", "teacher_coef=1", "pg_coef=0", "kl_coef=0", "rollout_workers=2",
                              "lr=3e-3"), progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(n)
    rows = s["iterations"]
    kls = [r["kl_teacher"] for r in rows]
    assert all(np.isfinite(k) and k > 0 for k in kls) and kls[-1] < kls[0]
    assert all(r["kl_anchor"] == 0 for r in rows)
    agent = TextAgent.from_bundle(tmp_path / "run" / "bundle")
    assert tuple(agent.policy.config.img_shape) == (32, 32)
    agent.start(agent.goal_from_text(["chop a tree"]), seed=0)
    assert agent.act(np.zeros((1, 64, 64, 3), np.uint8), np.array([True])).shape == (1,)  # world frames are resized


def test_distillation_settings_fail_in_one_line(tiny_bundle, tmp_path, capsys):
    from aimc.core.errors import ConfigError
    from aimc.finetune import load_ppo_config

    for sets, message in ((["frame_size=32"], "frame_size makes a student that no longer acts as the bundle's policy"),
                          (["frame_size=0", "teacher_coef=1"], "frame_size: expected a whole number of pixels >= 1"),
                          (["teacher_coef=-1"], "teacher_coef must be >= 0"), (["pg_coef=-0.5"], "pg_coef must be >= 0")):
        with pytest.raises(ConfigError) as e:
            load_ppo_config("ppo-micro", sets)
        assert message in str(e.value) and "\n" not in str(e.value)
    out = tmp_path / "new"
    assert main(["train", "ppo", "--preset", "ppo-micro", "--bundle", str(tiny_bundle), "--out", str(out),
                 "--set", "frame_size=80", "--set", "teacher_coef=1"]) == 2
    err = capsys.readouterr().err
    assert "must be smaller than the policy's [64, 64]" in err and err.count("\n") == 1
    assert not out.exists()


def test_a_teacher_from_another_bundle_must_share_the_goal_space(tiny_bundle, tmp_path, capsys):
    """`teacher` names another bundle: it teaches when it reads goals from the same embedder (byte for byte) and
    acts over the same actions; a bundle whose embedder differs, or a path that is no bundle, fails in one line
    before anything is written."""
    from aimc.finetune.ppo import prepare
    from aimc.train.bundle import AgentBundle

    copy_dir = tmp_path / "teacher"
    shutil.copytree(tiny_bundle, copy_dir, symlinks=True)
    src = AgentBundle.read(tiny_bundle)
    if not (copy_dir / "bundle.json").is_file():  # the run dir's bundle names members by path: assemble a copy
        src.copy_into(copy_dir)
    _, plan = prepare(micro_cfg(tiny_bundle, tmp_path / "ok", "teacher_coef=1", f"teacher={copy_dir}"))
    assert plan.teacher is not None and plan.teacher_dir == AgentBundle.read(copy_dir).policy_dir()
    other = tmp_path / "other_embedder"
    src.copy_into(other)
    emb = AgentBundle.read(other).embedder_ref()
    cfg_file = emb / "config.json"
    cfg_file.write_text(cfg_file.read_text() + "\n")
    out = tmp_path / "new"
    for teacher, message in ((other, "reads goals from another embedder than bundle"),
                             (tmp_path, "is not an agent bundle")):
        assert main(["train", "ppo", "--preset", "ppo-micro", "--bundle", str(tiny_bundle), "--out", str(out),
                     "--set", "teacher_coef=1", "--set", f"teacher={teacher}"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()


def test_resume_refuses_a_teacher_whose_weights_changed(tiny_bundle, tmp_path, capsys):
    """Another bundle's teacher is fingerprinted with the start policy: a resume after its weights changed is
    refused in one line, and the run is left as it was."""
    from safetensors.torch import load_file, save_file

    from aimc.finetune import run_ppo
    from aimc.train.bundle import AgentBundle

    teacher = tmp_path / "teacher"
    AgentBundle.read(tiny_bundle).copy_into(teacher)
    out = tmp_path / "run"
    sets = ["value_warmup_iterations=0", "teacher_coef=1", f"teacher={teacher}", "max_steps=12"]
    run_ppo(micro_cfg(tiny_bundle, out, "iterations=1", *sets), progress=False, log=lambda _: None)
    assert "teacher model.safetensors" in json.loads((out / "inputs.json").read_text())
    weights = teacher / "policy" / "model.safetensors"
    sd = load_file(str(weights))
    key = next(k for k in sd if k.startswith("pi_head"))
    sd[key] = sd[key] + 1.0
    save_file(sd, str(weights))
    before = (out / "ppo_summary.json").read_text()
    args = ["train", "ppo", "--preset", "ppo-micro", "--bundle", str(tiny_bundle), "--out", str(out), "--iterations", "2"]
    assert main([*args, *itertools.chain.from_iterable(("--set", s) for s in sets)]) == 2
    err = capsys.readouterr().err
    assert "cannot resume: teacher model.safetensors" in err and err.count("\n") == 1, err
    assert (out / "ppo_summary.json").read_text() == before


@pytest.mark.skipif(not list(Path("/proc/self/task").glob("*/children")),
                    reason="finds the child process through /proc/PID/task/PID/children (Linux)")
def test_the_command_reruns_itself_after_a_native_crash(micro_run, tiny_bundle, tmp_path):
    """`aimc train ppo` as a user runs it (a supervising parent, aimc.core.supervise): its worker process is
    killed by SIGSEGV once the run has started, and the command goes on by itself to the finished run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    env = dict(os.environ, AIMC_CRASH_RETRIES="2")
    parent = subprocess.Popen([sys.executable, "-m", "aimc", "train", "ppo", "--preset", "ppo-micro", "--bundle",
                               str(tiny_bundle), "--out", str(out), "--quiet", "--iterations", "2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    deadline = time.monotonic() + 300
    while not (out / "ppo_config.json").exists():  # the run has started in the child (before iteration 1)
        assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()
        time.sleep(0.02)
    child = int(children.read_text().split()[0])
    os.kill(child, signal.SIGSEGV)
    stdout, stderr = parent.communicate(timeout=600)
    assert parent.returncode == 0, stderr
    assert "aimc train ppo died of SIGSEGV" in stderr and "rerun 1 of 2" in stderr
    assert "PPO finished 2 iteration(s)" in stdout
    summary = json.loads((out / "ppo_summary.json").read_text())
    _, ref, _ = micro_run
    assert [r["iteration"] for r in summary["iterations"]] == [1, 2]
    assert [r["success"] for r in summary["iterations"]] == pytest.approx([r["success"] for r in ref["iterations"]])
    assert (out / "bundle" / "policy" / "model.safetensors").exists()
