"""`run_methods`: design note 004's fine-tuning methods for a goal-conditioned policy, measured on one footing.

The note's first FAQ is that a goal policy fine-tuned on one task loses general ability. So every method here
is judged by two numbers from the same evaluation of the whole suite (paired worlds, the pretrained agent
evaluated alike): its **gain** on the target task and its **forgetting**, the drop in mean success on the
suite tasks it was not trained on (the target and the second task excluded for every method, so all methods
are averaged over the same tasks).

Methods (`MethodsConfig.methods`), each a fine-tune of the pretrained policy at a low learning rate:

* ``relabel``: continued hindsight relabelling on task data: each step's goal is the text of an event that
  happens later in its demonstration (``event_text``, the relabelling of the instructions ladder's rung 2);
* ``fixed``: one instruction (the target's) on every frame of the task data;
* ``mixed``: task data plus the general ``original`` store (70/30 by default), so the old skills keep being
  rehearsed;
* ``progressive``: the second task's data, then the target's, two fine-tunes in a row;
* ``joint``: both tasks' data in one fine-tune.

Task demonstrations record the task as every step's intention, or, when the study plays a chain planner, the
planner step each action serves (`demo_goal_label`): the sub-instructions the chaining agent is told.

Layout of ``out``::

    methods_config.json          resolved config (the saved one wins on resume)
    demos/<task>/                task demonstrations (episode stores)
    runs/<method>[_<k>]/         each fine-tune's run dir (= its bundle); progressive has two
    evals/<pretrained|method>/   the suite evaluation of each policy
    stages/*.json                finished-stage markers (results, wall time)
    frame_cache/                 decoded frames shared by every fine-tune
    methods.json, methods.md, plots/gain_forgetting.png, report.html

Resume: a stage with a marker is skipped; an interrupted stage resumes inside its own command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimc.core.config import deep_merge, from_dict, load_yaml
from aimc.core.errors import AimcError, ConfigError, UnknownNameError
from aimc.core.rundir import RunDir
from aimc.core.seeding import derive_seed
from aimc.finetune.config import TRAIN_RESERVED, demo_goal_label
from aimc.finetune.methods_config import CONFIG_FILE, RESUMABLE, MethodsConfig
from aimc.finetune.study import begin_study, load_pretrained, run_stage, suite_task_for
from aimc.train.bundle import AgentBundle
from aimc.train.config import TrainConfig

SUMMARY_FILE = "methods.json"
STUDY_SETS = (*TRAIN_RESERVED, "fixed_prompt")
"""TrainConfig fields the study sets for each fine-tune (the `train` section may not)."""


@dataclass
class Plan:
    """What `prepare` resolved: the pretrained bundle and its architecture, the suite and its two tasks."""

    bundle: AgentBundle
    bundle_path: str
    embedder: str
    policy: str
    policy_overrides: dict[str, Any]
    suite: str | None
    target: str
    """The target's suite task name (collect_coal -> collect_coal, collect_wood -> chop_tree)."""
    second: str
    fixed_prompt: str
    planner: str = "none"
    """Prompt chaining of every evaluation (`MethodsConfig.planner`, else the pretrained bundle's)."""
    demo_goals: str = "task"
    """The goal recorded on each demonstration step (`MethodsConfig.demo_goals`, else by the planner)."""


@dataclass
class Stage:
    """One fine-tune of a method: its run name, its data parts and its fixed prompt (a later stage of the same
    method starts from the one before, `train_config`)."""

    name: str
    data: list[dict[str, Any]]
    fixed_prompt: str | None = None


class Paths:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.frame_cache = self.root / "frame_cache"

    def demos(self, task: str) -> Path:
        return self.root / "demos" / task

    def run(self, stage: str) -> Path:
        return self.root / "runs" / stage

    def eval(self, name: str) -> Path:
        return self.root / "evals" / name

    def marker(self, name: str) -> Path:
        return self.root / "stages" / f"{name}.json"


def stages(cfg: MethodsConfig, plan: Plan, method: str) -> list[Stage]:
    """The fine-tunes of one method, in order (each after the first starts from the one before)."""
    paths = Paths(cfg.out)

    def part(task: str, goals: str, weight: float = 1.0) -> dict[str, Any]:
        return {"path": str(paths.demos(task)), "weight": weight, "goal_source": goals}

    if method == "relabel":
        return [Stage(method, [part(cfg.task, "event_text")])]
    if method == "fixed":  # "intention" only chunks the short demonstrations from frame 0; the prompt is the goal
        return [Stage(method, [part(cfg.task, "intention")], plan.fixed_prompt)]
    if method == "mixed":
        share = cfg.original_share
        return [Stage(method, [part(cfg.task, cfg.task_goals, 1.0 - share),
                               {"path": cfg.original, "weight": share, "goal_source": cfg.original_goals}])]
    if method == "progressive":
        return [Stage(f"{method}_1", [part(cfg.second_task, cfg.task_goals)]),
                Stage(f"{method}_2", [part(cfg.task, cfg.task_goals)])]
    if method == "joint":
        return [Stage(method, [part(cfg.task, cfg.task_goals, 0.5), part(cfg.second_task, cfg.task_goals, 0.5)])]
    raise UnknownNameError(f"unknown method {method!r}")


def train_config(cfg: MethodsConfig, plan: Plan, method: str, k: int) -> TrainConfig:
    """The k-th fine-tune of `method`: preset <- bundle defaults <- `train` <- what the study fixes."""
    from aimc.train.config import PRESET_DIR as TRAIN_PRESETS
    from aimc.train.config import preset_names

    path = TRAIN_PRESETS / f"{cfg.train_preset}.yaml"
    if not path.is_file():
        raise UnknownNameError(f"train_preset: unknown training preset {cfg.train_preset!r}; "
                               f"available: {', '.join(preset_names())}")
    defaults: dict[str, Any] = {"segment": {"embed_name": plan.bundle.embed_name},
                                "frame_cache": str(Paths(cfg.out).frame_cache), "val_fraction": 0.0, "val_every": 0}
    if plan.bundle.cond_scale is not None:
        defaults["cond_scale"] = plan.bundle.cond_scale
    if cfg.threads:
        defaults["num_workers"] = 0
    merged = deep_merge(deep_merge(load_yaml(path), defaults), cfg.train)
    chain = stages(cfg, plan, method)
    stage = chain[k]
    merged.update({
        "out": str(Paths(cfg.out).run(stage.name)), "data": stage.data, "embedder": plan.embedder,
        "init_from": plan.bundle_path if k == 0 else str(Paths(cfg.out).run(chain[k - 1].name)),
        "policy": plan.policy, "policy_overrides": plan.policy_overrides, "fixed_prompt": stage.fixed_prompt,
        "seed": derive_seed(cfg.seed, "methods", stage.name),
    })
    return from_dict(TrainConfig, merged, where="train")


def prepare(cfg: MethodsConfig) -> tuple[MethodsConfig, Plan]:
    """Every check that needs the disk, before anything is written: the study dir (a saved config wins), the
    pretrained bundle, both tasks in the suite, the original store, and every fine-tune's config."""
    from aimc.eval.tasks import load_suite

    root = Path(cfg.out)
    if root.is_file() or (root.is_dir() and any(root.iterdir()) and not (root / CONFIG_FILE).is_file()):
        raise AimcError(f"--out {root} is not empty and holds no methods study; choose a new directory")
    cfg = RunDir(root, RESUMABLE, CONFIG_FILE).resolve(cfg)
    bundle_path, bundle, policy, overrides = load_pretrained(cfg.pretrained)
    suite = cfg.suite or None
    target, _ = suite_task_for(cfg.task, suite)
    second, _ = suite_task_for(cfg.second_task, suite)
    from aimc.eval.planner import resolve_planner

    plan = Plan(bundle, bundle_path, str(bundle.embedder_ref()), policy, overrides, suite, target, second,
                cfg.fixed_prompt or load_suite(suite).task(target).prompts[0], resolve_planner(cfg.planner, bundle))
    plan.demo_goals = demo_goal_label(cfg.demo_goals, plan.planner)
    taken = sorted(set(cfg.train) & set(STUDY_SETS) - {"n_frames"})
    if taken:
        raise ConfigError(f"train: the study sets {taken} itself; remove them from the train section")
    if "mixed" in cfg.methods:
        from aimc.data.store import list_episodes

        if not Path(cfg.original).is_dir() or not list_episodes(cfg.original):
            raise AimcError(f"original: {cfg.original} holds no episodes; give the episode store of general data "
                            "the mixed method rehearses (e.g. the pretrained agent's training data)")
    for method in cfg.methods:
        for k in range(len(stages(cfg, plan, method))):
            train_config(cfg, plan, method, k)
    return cfg, plan


# ------------------------------------------------------------------------------------------- stages
def _collect(cfg: MethodsConfig, plan: Plan, task: str, progress: bool) -> dict[str, Any]:
    from aimc.data.collect import CollectConfig, collect
    from aimc.data.store import Episode, list_episodes

    start = time.perf_counter()
    out = Paths(cfg.out).demos(task)
    collect(CollectConfig(out=str(out), agent="demonstrator", episodes=cfg.demos, max_steps=cfg.demo_max_steps,
                          seed=derive_seed(cfg.seed, "demos", task), workers=cfg.collect_workers, task=task,
                          agent_config={**cfg.demonstrator, "goal_label": plan.demo_goals}),
            progress=progress)
    eps = [Episode(p, check_video=False) for p in list_episodes(out)]
    if len(eps) < cfg.demos:
        raise AimcError(f"{out} holds {len(eps)} of {cfg.demos} demonstrations; rerun the study to finish collecting")
    return {"episodes": len(eps), "frames": int(sum(e.length for e in eps)),
            "successes": int(sum(any(task in s for s in e.events) for e in eps)), "wall_s": time.perf_counter() - start}


def _train(cfg: MethodsConfig, plan: Plan, method: str, k: int, progress: bool) -> dict[str, Any]:
    from aimc.train.loop import run

    tc = train_config(cfg, plan, method, k)
    start = time.perf_counter()
    s = run(tc, progress=progress)
    if s["interrupted"]:
        raise AimcError(f"the fine-tune in {tc.out} stopped early; rerun the study to resume it")
    return {"bundle": tc.out, "train_frames": s["frames"], "train_steps": s["step"],
            "skipped_episodes": s["skipped_episodes"], "wall_s": time.perf_counter() - start}


def _evaluate(cfg: MethodsConfig, plan: Plan, bundle: str, out: Path) -> dict[str, Any]:
    from aimc.eval.config import EvalConfig
    from aimc.eval.run import run_eval

    ec = EvalConfig(checkpoint=bundle, suite=plan.suite, tasks=[], episodes=cfg.eval_episodes,
                    max_steps=cfg.eval_max_steps, cfg_scales=[], baselines=[], videos=0, workers=cfg.eval_workers,
                    seed=derive_seed(cfg.seed, "eval"), device=cfg.device, out=str(out), planner=plan.planner)
    start = time.perf_counter()
    r = run_eval(ec, progress=False)
    report = json.loads(Path(r["json"]).read_text())
    tasks = {name: {"successes": int(t["success"]["successes"]), "episodes": int(t["success"]["n"]),
                    "deaths_before_success": int(t["deaths_before_success"]["successes"])}
             for name, t in report["conditions"]["agent"]["tasks"].items()}
    return {"tasks": tasks, "wall_s": time.perf_counter() - start}


def run_methods(cfg: MethodsConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every method; returns the summary written to ``<out>/methods.json``."""
    from aimc.finetune.methods_report import summarize, write_outputs

    cfg, plan = prepare(cfg)
    begin_study(cfg, RESUMABLE, CONFIG_FILE)
    paths = Paths(cfg.out)
    for task in cfg.tasks:
        d = run_stage(paths, f"demos_{task}", lambda task=task: _collect(cfg, plan, task, progress))
        log(f"{task}: {d['episodes']} demonstrations, {d['successes']} successful, {d['frames']} frames")
    evals: dict[str, dict[str, Any]] = {}
    training: dict[str, dict[str, Any]] = {}

    def publish() -> dict[str, Any]:
        summary = summarize(cfg, plan.target, plan.second, plan.fixed_prompt, evals, training)
        write_outputs(paths.root, summary)
        return summary

    evals["pretrained"] = run_stage(paths, "eval_pretrained",
                                 lambda: _evaluate(cfg, plan, plan.bundle_path, paths.eval("pretrained")))
    log(f"pretrained agent: {plan.target} {_rate(evals['pretrained'], plan.target):.2f}")
    for method in cfg.methods:
        runs = []
        for k, stage in enumerate(stages(cfg, plan, method)):
            runs.append(run_stage(paths, f"train_{stage.name}",
                               lambda method=method, k=k: _train(cfg, plan, method, k, progress)))
        training[method] = {"wall_s": sum(r["wall_s"] for r in runs), "train_frames": sum(r["train_frames"] for r in runs),
                            "stages": len(runs)}
        evals[method] = run_stage(paths, f"eval_{method}",
                               lambda bundle=runs[-1]["bundle"], method=method:
                               _evaluate(cfg, plan, bundle, paths.eval(method)))
        log(f"{method:12s}: {plan.target} {_rate(evals[method], plan.target):.2f}, "
            f"{training[method]['wall_s'] / 60:.1f} min training")
        publish()
    summary = publish()
    summary["out"] = str(paths.root)
    return summary


def _rate(ev: dict[str, Any], task: str) -> float:
    t = ev["tasks"][task]
    return t["successes"] / max(t["episodes"], 1)
