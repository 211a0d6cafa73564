"""`run_study`: the task fine-tuning study (issue 14, design note 002): how many demonstrations each route needs.

For every study seed s, the demonstrator in task mode records a pool of task demonstrations (``demos/seed<s>``,
each ending at the task's success). For every cell (N, init, s):

* **bc**: a BC fine-tune on the pool's first N demonstrations (their recorded intention is the goal: the task,
  or under a chain planner the planner step each action serves, `demo_goal_label`; survival steps serve it),
  from the pretrained policy or from a fresh network of the same architecture;
* **bc_dagger**: that BC policy improved by `run_dagger` on the task, the N demonstrations aggregated every
  iteration;
* **ppo**: that BC policy as the warm start and KL anchor of `run_ppo` on the suite task's success event;

and each resulting bundle is evaluated with `run_eval` on the suite task's worlds (disjoint from every training
world), as a user would (`aimc eval tasks --tasks T`). The pretrained agent as it is (N = 0) is evaluated once
per seed as the line the routes start from.

Layout of ``out``::

    study_config.json                      resolved config (the saved one wins on resume; see RESUMABLE)
    demos/seed<s>/                         the demonstration pool (an episode store)
    cells/s<s>/<init>/n<N>/bc/             the BC run dir (= its bundle)
    cells/s<s>/<init>/n<N>/dagger/         the DAgger run dir (bundle/ inside)
    cells/s<s>/<init>/n<N>/ppo/            the PPO run dir (bundle/ inside)
    cells/s<s>/<init>/n<N>/eval_<route>/   the evaluation report of that route's bundle
    cells/s<s>/baseline_eval/              the pretrained agent, no demonstrations
    stages/*.json                          finished-stage markers (results, wall time)
    frame_cache/                           decoded frames shared by every fine-tune
    study.json, study.md, plots/*.png, report.html   the table and plots (rewritten after every cell)

Resume: a stage with a marker is skipped; an interrupted stage resumes inside its own command (collection,
training, DAgger and PPO are all resumable), so a killed study continues where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimc.core.config import build_config, deep_merge, from_dict, load_yaml
from aimc.core.errors import AimcError, ConfigError, UnknownNameError
from aimc.core.io import atomic_write_json, check_writable_dir
from aimc.core.rundir import RunDir
from aimc.core.seeding import derive_seed
from aimc.finetune.config import TRAIN_RESERVED, demo_goal_label
from aimc.finetune.study_config import CONFIG_FILE, INTERRUPTS, RESUMABLE, StudyConfig
from aimc.train.bundle import AgentBundle
from aimc.train.config import TrainConfig

SUMMARY_FILE = "study.json"


class Paths:
    """Where each stage of the study writes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.frame_cache = self.root / "frame_cache"

    def demos(self, seed: int) -> Path:
        return self.root / "demos" / f"seed{seed}"

    def cell(self, seed: int, init: str, n: int) -> Path:
        return self.root / "cells" / f"s{seed}" / init / f"n{n}"

    def run(self, seed: int, init: str, n: int, route: str) -> Path:
        return self.cell(seed, init, n) / {"bc": "bc", "bc_dagger": "dagger", "ppo": "ppo"}[route]

    def eval(self, seed: int, init: str, n: int, route: str) -> Path:
        return self.cell(seed, init, n) / f"eval_{route}"

    def baseline_eval(self, seed: int) -> Path:
        return self.root / "cells" / f"s{seed}" / "baseline_eval"

    def marker(self, name: str) -> Path:
        return self.root / "stages" / f"{name}.json"


@dataclass
class Plan:
    """What `prepare` resolved: the pretrained bundle, its architecture and embedder, the suite task."""

    bundle: AgentBundle
    bundle_path: str
    embedder: str
    policy: str
    policy_overrides: dict[str, Any]
    suite_task: str
    horizon: int
    suite: str | None
    planner: str = "none"
    """Prompt chaining of every rollout in the study (`StudyConfig.planner`, else the pretrained bundle's)."""
    demo_goals: str = "task"
    """The goal recorded on each demonstration step (`StudyConfig.demo_goals`, else by the planner)."""


def suite_task_for(task: str, suite: str | None) -> tuple[str, int]:
    """(name, horizon) of the suite task whose demonstrator task is `task` (collect_wood -> chop_tree)."""
    from aimc.eval.tasks import load_suite

    s = load_suite(suite)
    names = [(t.name, t.max_steps) for t in s.tasks if t.demo_task == task]
    if not names:
        have = ", ".join(f"{t.name} ({t.demo_task})" for t in s.tasks if t.demo_task)
        raise UnknownNameError(f"task {task!r}: the suite has no task the demonstrator plays as {task!r}; "
                               f"suite tasks (demonstrator task): {have}")
    return names[0]


def load_pretrained(path: str) -> tuple[str, AgentBundle, str, dict[str, Any]]:
    """(path, bundle, policy preset, overrides) of the bundle to fine-tune (empty path = the shipped agent),
    checked: readable, goal-conditioned (an embedder reads the instruction) and with a policy over the actions
    of a world the scripted demonstrator plays (task demonstrations are recorded there)."""
    from aimc.envs import world_info
    from aimc.eval.play import shipped_bundle
    from aimc.finetune.dagger import policy_spec
    from aimc.policy.vpt.load import read_pretrained_meta

    bundle_path = path or str(shipped_bundle())
    bundle = AgentBundle.read(bundle_path)
    if bundle.embedder is None:
        raise AimcError(f"bundle {bundle_path} has no embedder, so no policy of the study could read the task's "
                        "instruction; the pretrained bundle must be goal-conditioned (trained with an embedder)")
    info = world_info(bundle.world)
    if not info.has_demonstrator:
        raise AimcError(f"bundle {bundle_path} plays {bundle.world!r}, which has no scripted demonstrator to record "
                        "task demonstrations")
    saved = read_pretrained_meta(bundle.policy_dir())["config"]
    heads = {"action": int(saved.get("n_actions", 0))} if saved.get("action_head") == "categorical" else None
    if heads != {"action": len(info.action_names)}:
        raise AimcError(f"the policy of bundle {bundle_path} ({saved.get('action_head')} head, "
                        f"{saved.get('n_actions')} actions) does not fit world {bundle.world!r} "
                        f"({len(info.action_names)} actions); the study needs a policy over the world's actions")
    policy, overrides = policy_spec(bundle)
    return bundle_path, bundle, policy, overrides


def prepare(cfg: StudyConfig) -> tuple[StudyConfig, Plan]:
    """Every check that needs the disk, before anything is written: the study dir (a saved config wins; a
    changed one fails), the pretrained bundle (readable, an embedder, a policy whose action head fits the
    world the demonstrator plays), the suite task, and the first cell's training and route configs."""
    root = Path(cfg.out)
    if root.is_file() or (root.is_dir() and any(root.iterdir()) and not (root / CONFIG_FILE).is_file()):
        raise AimcError(f"--out {root} is not empty and holds no study; choose a new directory")
    cfg = RunDir(root, RESUMABLE, CONFIG_FILE).resolve(cfg)
    bundle_path, bundle, policy, overrides = load_pretrained(cfg.pretrained)
    suite = cfg.suite or None
    from aimc.eval.planner import resolve_planner

    plan = Plan(bundle, bundle_path, str(bundle.embedder_ref()), policy, overrides, *suite_task_for(cfg.task, suite),
                suite, resolve_planner(cfg.planner, bundle))
    plan.demo_goals = demo_goal_label(cfg.demo_goals, plan.planner)
    for section in (cfg.bc, cfg.bc_scratch):
        reserved = sorted(set(section) & set(TRAIN_RESERVED))
        if reserved:
            raise ConfigError(f"bc: the study sets {reserved} itself; remove them from the bc section")
    # Build every route's config for the first cell now, so a typo fails before the first demonstration.
    seed, init, n = cfg.seeds[0], cfg.inits[0], min(cfg.demos)
    bc_config(cfg, plan, seed, init, n, n_frames=cfg.bc_min_frames)
    if "bc_dagger" in cfg.routes:
        dagger_config(cfg, plan, seed, init, n)
    if "ppo" in cfg.routes:
        ppo_config(cfg, plan, seed, init, n)
    return cfg, plan


# ------------------------------------------------------------------------------------------- configs
def _demo_part(cfg: StudyConfig, seed: int, n: int) -> dict[str, Any]:
    return {"path": str(Paths(cfg.out).demos(seed)), "weight": 1.0, "goal_source": "intention", "max_episodes": n}


def bc_section(cfg: StudyConfig, plan: Plan, init: str) -> dict[str, Any]:
    """TrainConfig fields of a BC fine-tune (preset <- bundle defaults <- `bc` <- `bc_scratch`), without the
    fields the study fixes; also DAgger's `train` section, so its fine-tunes read the demos the same way."""
    defaults: dict[str, Any] = {
        "segment": {"embed_name": plan.bundle.embed_name, "intention_interrupts": INTERRUPTS},
        "frame_cache": str(Paths(cfg.out).frame_cache), "val_fraction": 0.0, "val_every": 0,
    }
    if plan.bundle.cond_scale is not None:
        defaults["cond_scale"] = plan.bundle.cond_scale
    if cfg.threads:
        defaults["num_workers"] = 0
    section = deep_merge(defaults, cfg.bc)
    if init == "scratch":
        # a fresh network has nothing to stay near: the KL anchor is for the pretrained init only
        return {**deep_merge(section, cfg.bc_scratch), "anchor_kl": 0.0, "anchor_from": None}
    if section.get("anchor_kl") and not section.get("anchor_from"):
        # the pretrained agent, for BC and for every DAgger iteration (else each would anchor to the last one)
        section["anchor_from"] = plan.bundle_path
    return section


def bc_config(cfg: StudyConfig, plan: Plan, seed: int, init: str, n: int, n_frames: int) -> TrainConfig:
    from aimc.train.config import PRESET_DIR as TRAIN_PRESETS

    path = TRAIN_PRESETS / f"{cfg.bc_preset}.yaml"
    if not path.is_file():
        from aimc.train.config import preset_names

        raise UnknownNameError(f"bc_preset: unknown training preset {cfg.bc_preset!r}; available: {', '.join(preset_names())}")
    merged = deep_merge(load_yaml(path), bc_section(cfg, plan, init))
    merged.update({
        "out": str(Paths(cfg.out).run(seed, init, n, "bc")), "data": [_demo_part(cfg, seed, n)],
        "init_from": plan.bundle_path if init == "pretrained" else None, "embedder": plan.embedder,
        "policy": plan.policy, "policy_overrides": plan.policy_overrides, "seed": derive_seed(seed, "bc", init, n),
        "n_frames": n_frames,
    })
    # N demonstrations give at least N segments: a batch never asks for more (N = 1 still trains).
    merged["batch_size"] = min(int(merged.get("batch_size", 1)), n)
    return from_dict(TrainConfig, merged, where="bc")


def dagger_config(cfg: StudyConfig, plan: Plan, seed: int, init: str, n: int) -> Any:
    from aimc.finetune.config import PRESET_DIR as DAGGER_PRESETS
    from aimc.finetune.config import DaggerConfig, preset_names

    path = DAGGER_PRESETS / f"{cfg.dagger_preset}.yaml"
    if cfg.dagger_preset not in preset_names():
        raise UnknownNameError(f"dagger_preset: unknown DAgger preset {cfg.dagger_preset!r}; available: {', '.join(preset_names())}")
    # rollouts as long as the evaluation's episodes unless the dagger section says otherwise
    defaults = {"train_preset": cfg.bc_preset, "train": bc_section(cfg, plan, init),
                "max_steps": cfg.eval_max_steps or plan.horizon}
    fixed = {"out": str(Paths(cfg.out).run(seed, init, n, "bc_dagger")),
             "bundle": str(Paths(cfg.out).run(seed, init, n, "bc")), "data": [_demo_part(cfg, seed, n)],
             "tasks": [cfg.task], "seed": derive_seed(seed, "dagger", init, n), "device": cfg.device,
             "planner": plan.planner}
    clash = sorted(set(cfg.dagger) & set(fixed))
    if clash:
        raise ConfigError(f"dagger: the study sets {clash} itself; remove them from the dagger section")
    return build_config(DaggerConfig, path, defaults, cfg.dagger, fixed)


def ppo_config(cfg: StudyConfig, plan: Plan, seed: int, init: str, n: int) -> Any:
    from aimc.finetune.ppo_config import PRESET_DIR as PPO_PRESETS
    from aimc.finetune.ppo_config import PPOConfig, preset_names

    if cfg.ppo_preset not in preset_names():
        raise UnknownNameError(f"ppo_preset: unknown PPO preset {cfg.ppo_preset!r}; available: {', '.join(preset_names())}")
    fixed = {"out": str(Paths(cfg.out).run(seed, init, n, "ppo")),
             "bundle": str(Paths(cfg.out).run(seed, init, n, "bc")), "suite": cfg.suite, "tasks": [plan.suite_task],
             "seed": derive_seed(seed, "ppo", init, n), "device": cfg.device, "planner": plan.planner}
    clash = sorted(set(cfg.ppo) & set(fixed))
    if clash:
        raise ConfigError(f"ppo: the study sets {clash} itself; remove them from the ppo section")
    defaults = {"max_steps": cfg.eval_max_steps or plan.horizon}
    return build_config(PPOConfig, PPO_PRESETS / f"{cfg.ppo_preset}.yaml", defaults, cfg.ppo, fixed)


# ------------------------------------------------------------------------------------------- stages
def run_stage(paths: Any, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A finished stage's marker, or run `work` and write its marker (``paths.marker(name)``; the methods study
    uses this too)."""
    marker = paths.marker(name)
    if marker.is_file():
        return json.loads(marker.read_text())
    result = work()
    atomic_write_json(marker, result)
    return result


def _collect(cfg: StudyConfig, plan: Plan, seed: int, progress: bool) -> dict[str, Any]:
    from aimc.data.collect import CollectConfig, collect
    from aimc.data.store import Episode, list_episodes

    start = time.perf_counter()
    out = Paths(cfg.out).demos(seed)
    collect(CollectConfig(out=str(out), agent="demonstrator", episodes=cfg.max_demos, max_steps=cfg.demo_max_steps,
                          seed=derive_seed(seed, "demos"), workers=cfg.collect_workers, task=cfg.task,
                          agent_config={"goal_label": plan.demo_goals}), progress=progress)
    lengths, successes = [], []
    for p in list_episodes(out):
        ep = Episode(p, check_video=False)
        lengths.append(ep.length)
        successes.append(any(cfg.task in step for step in ep.events))
    return {"lengths": lengths, "successes": successes, "wall_s": time.perf_counter() - start}


def _bc(cfg: StudyConfig, plan: Plan, seed: int, init: str, n: int, demos: dict[str, Any], progress: bool) -> dict[str, Any]:
    from aimc.train.loop import run

    frames = int(sum(demos["lengths"][:n]))
    n_frames = max(cfg.bc_min_frames, round(cfg.bc_epochs * frames))
    tc = bc_config(cfg, plan, seed, init, n, n_frames)
    start = time.perf_counter()
    s = run(tc, progress=progress)
    if s["interrupted"]:
        raise AimcError(f"the BC fine-tune in {tc.out} stopped early; rerun the study to resume it")
    return {"bundle": tc.out, "demo_frames": frames, "train_frames": s["frames"], "train_steps": s["step"],
            "skipped_episodes": s["skipped_episodes"], "wall_s": time.perf_counter() - start}


def _dagger(cfg: StudyConfig, plan: Plan, seed: int, init: str, n: int, progress: bool) -> dict[str, Any]:
    from aimc.finetune.dagger import run_dagger

    dc = dagger_config(cfg, plan, seed, init, n)
    start = time.perf_counter()
    s = run_dagger(dc, progress=progress, log=lambda _: None)
    rows = s["iterations"]
    return {"bundle": s["bundle"], "env_steps": int(sum(r["frames"] for r in rows)),
            "iterations": [{"success_rate": r["success_rate"], "death_rate": r["death_rate"], "frames": r["frames"]}
                           for r in rows],
            "wall_s": time.perf_counter() - start}


def _ppo(cfg: StudyConfig, plan: Plan, seed: int, init: str, n: int, progress: bool) -> dict[str, Any]:
    from aimc.finetune.ppo import run_ppo

    pc = ppo_config(cfg, plan, seed, init, n)
    start = time.perf_counter()
    s = run_ppo(pc, progress=progress, log=lambda _: None)
    rows = s["iterations"]
    return {"bundle": s["bundle"], "env_steps": int(sum(r["env_steps"] for r in rows)),
            "iterations": [{"success_rate": r["success"], "death_rate": r["death_rate"],
                            "kl_anchor": r["kl_anchor"], "env_steps": r["env_steps"]} for r in rows],
            "wall_s": time.perf_counter() - start}


def _evaluate(cfg: StudyConfig, plan: Plan, bundle: str, out: Path, seed: int) -> dict[str, Any]:
    from aimc.eval.config import EvalConfig
    from aimc.eval.run import run_eval

    ec = EvalConfig(checkpoint=bundle, suite=plan.suite, tasks=[plan.suite_task], episodes=cfg.eval_episodes,
                    max_steps=cfg.eval_max_steps, cfg_scales=[], baselines=[], videos=0, workers=cfg.eval_workers,
                    seed=derive_seed(seed, "eval"), device=cfg.device, out=str(out), planner=plan.planner)
    start = time.perf_counter()
    r = run_eval(ec, progress=False)
    report = json.loads(Path(r["json"]).read_text())
    task = report["conditions"]["agent"]["tasks"][plan.suite_task]
    return {"successes": int(task["success"]["successes"]), "episodes": int(task["success"]["n"]),
            "deaths_before_success": int(task["deaths_before_success"]["successes"]),
            "median_steps_to_success": task.get("median_steps_to_success"), "wall_s": time.perf_counter() - start}


def begin_study(cfg: Any, resumable: tuple[str, ...], config_file: str) -> None:
    """After `prepare`: the study dir is writable, its resolved config saved, torch on `cfg.threads` threads."""
    check_writable_dir(cfg.out)
    RunDir(cfg.out, resumable, config_file).save_config(cfg)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)


def run_study(cfg: StudyConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the whole grid; returns the summary written to ``<out>/study.json``."""
    from aimc.finetune.study_report import summarize, write_outputs

    cfg, plan = prepare(cfg)
    begin_study(cfg, RESUMABLE, CONFIG_FILE)
    paths = Paths(cfg.out)
    cells: list[dict[str, Any]] = []

    def publish() -> dict[str, Any]:
        summary = summarize(cfg, plan.suite_task, cells)
        write_outputs(paths.root, summary)
        return summary

    for seed in cfg.seeds:
        demos = run_stage(paths, f"s{seed}_demos", lambda seed=seed: _collect(cfg, plan, seed, progress))
        if len(demos["lengths"]) < cfg.max_demos:  # the grid grew: the pool grows, its first episodes unchanged
            paths.marker(f"s{seed}_demos").unlink()
            demos = run_stage(paths, f"s{seed}_demos", lambda seed=seed: _collect(cfg, plan, seed, progress))
        got = len(demos["lengths"])
        if got < cfg.max_demos:
            raise AimcError(f"the pool {paths.demos(seed)} holds {got} demonstration(s), fewer than the largest N "
                            f"({cfg.max_demos}); rerun the study to finish collecting")
        log(f"seed {seed}: {got} demonstrations of {cfg.task}, {sum(demos['successes'])} successful, "
            f"mean length {sum(demos['lengths']) / got:.0f} steps")
        if cfg.eval_baseline:
            ev = run_stage(paths, f"s{seed}_baseline_eval",
                        lambda seed=seed: _evaluate(cfg, plan, plan.bundle_path, paths.baseline_eval(seed), seed))
            cells.append({"seed": seed, "init": "pretrained", "n": 0, "route": "none", "eval": ev,
                          "wall_s": 0.0, "env_steps": 0})
            log(f"  pretrained agent as it is: success {ev['successes']}/{ev['episodes']}")
        for init in cfg.inits:
            for n in sorted(cfg.demos):
                tag = f"s{seed}_{init}_n{n}"
                bc = run_stage(paths, f"{tag}_bc", lambda init=init, n=n, seed=seed, demos=demos:
                            _bc(cfg, plan, seed, init, n, demos, progress))
                routes = {"bc": {"bundle": bc["bundle"], "wall_s": 0.0, "env_steps": 0}}
                if "bc_dagger" in cfg.routes:
                    routes["bc_dagger"] = run_stage(paths, f"{tag}_dagger",
                                                 lambda init=init, n=n, seed=seed: _dagger(cfg, plan, seed, init, n, progress))
                if "ppo" in cfg.routes:
                    routes["ppo"] = run_stage(paths, f"{tag}_ppo",
                                           lambda init=init, n=n, seed=seed: _ppo(cfg, plan, seed, init, n, progress))
                for route in cfg.routes:
                    r = routes[route]
                    ev = run_stage(paths, f"{tag}_eval_{route}", lambda r=r, init=init, n=n, seed=seed, route=route:
                                _evaluate(cfg, plan, r["bundle"], paths.eval(seed, init, n, route), seed))
                    cells.append({"seed": seed, "init": init, "n": n, "route": route, "eval": ev,
                                  "wall_s": bc["wall_s"] + r["wall_s"], "env_steps": bc["demo_frames"] + r["env_steps"],
                                  "route_detail": {k: v for k, v in r.items() if k in ("iterations",)}})
                    log(f"  {init:10s} N={n:<4d} {route:9s}: success {ev['successes']}/{ev['episodes']}, "
                        f"{(bc['wall_s'] + r['wall_s']) / 60:.1f} min training")
                publish()
    summary = publish()
    summary["out"] = str(paths.root)
    return summary
