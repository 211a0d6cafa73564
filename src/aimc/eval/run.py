"""Library side of `aimc eval tasks`: build episode jobs for every condition, run them, aggregate.

A *condition* is one agent factory. Prompted conditions (the text agent at some cond scale, the
demonstrator) run `episodes` episodes per task with that task's instructions; unprompted ones (the
zero-goal policy, random play) run `episodes` episodes once and every task's predicate is scored on
them. Episode i of every task and condition uses world seed `task.seed + i`, so conditions are compared
on the same worlds. The aggregate is a JSON-able dict (schema in docs/evaluation.md). `run_eval(EvalConfig)`
is the whole `aimc eval tasks` recipe, shared with the pipeline's eval stage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.config import save_config
from aimc.core.errors import AimcError
from aimc.core.seeding import derive_seed
from aimc.envs import world_info
from aimc.eval.config import BASELINES, EvalConfig
from aimc.eval.metrics import median_or_nan, rate_summary, specificity
from aimc.eval.rollout import (
    DEFAULT_ENVS_PER_WORKER,
    AgentFactory,
    EnvSpec,
    EpisodeJob,
    EpisodeResult,
    RolloutOutput,
    run_jobs,
)
from aimc.eval.tasks import Suite, check_events, load_suite, world_events

FULL = "full"


@dataclass(frozen=True)
class Condition:
    """`cond_scale` is informational (set for the text agent), used to draw the CFG curve."""

    name: str
    factory: AgentFactory
    prompted: bool = True
    cond_scale: float | None = None
    kind: str = "agent"  # "agent" | "cfg_sweep" | "baseline"


def build_jobs(suite: Suite, conditions: list[Condition], episodes: int, videos: int = 0, seed: int = 0) -> list[EpisodeJob]:
    """Jobs in a stable order; the first `videos` tasks of the first prompted condition record episode 0."""
    jobs: list[EpisodeJob] = []
    first_prompted = next((c.name for c in conditions if c.prompted), None)
    for cond in conditions:
        if cond.prompted:
            for ti, task in enumerate(suite.tasks):
                for ep in range(episodes):
                    world_seed = task.seed + ep
                    jobs.append(EpisodeJob(
                        key=len(jobs), condition=cond.name, task=task.name, prompt=task.prompt(ep), episode=ep,
                        world_seed=world_seed, agent_seed=derive_seed(seed, world_seed, cond.name, task.name, ep),
                        max_steps=task.max_steps, demo_task=task.demo_task,
                        record=cond.name == first_prompted and ti < videos and ep == 0))
        else:
            base = suite.tasks[0].seed
            for ep in range(episodes):
                jobs.append(EpisodeJob(
                    key=len(jobs), condition=cond.name, task="", prompt="", episode=ep, world_seed=base + ep,
                    agent_seed=derive_seed(seed, base + ep, cond.name, ep), max_steps=suite.max_steps))
    return jobs


def _horizons(suite: Suite) -> list[str]:
    return [FULL, *(str(h) for h in suite.horizons)]


def _limit(h: str, task_max: int) -> int:
    return task_max if h == FULL else min(int(h), task_max)


def _death_step(r: EpisodeResult, max_steps: int) -> int | None:
    """The step at which the episode died, if it died within the horizon."""
    if not r.died:
        return None
    death = min(r.occurrences.get("death", [r.steps]))
    return death if death < max_steps else None


def _died_first(r: EpisodeResult, success_step: int | None, max_steps: int) -> bool:
    """Whether the episode died within the horizon before its task succeeded (or without succeeding)."""
    death = _death_step(r, max_steps)
    return death is not None and (success_step is None or death < success_step)


def summarize_task(suite: Suite, task_name: str, results: list[EpisodeResult]) -> dict[str, Any]:
    """Success with a Wilson interval, median steps to success, deaths, and rates at the short horizons."""
    task = suite.task(task_name)
    hits = [task.success.step(r.occurrences, task.max_steps) for r in results]
    out: dict[str, Any] = {"success": rate_summary([h is not None for h in hits])}
    out["median_steps_to_success"] = median_or_nan([h + 1 for h in hits if h is not None])
    out["deaths"] = rate_summary([_death_step(r, task.max_steps) is not None for r in results])
    out["deaths_before_success"] = rate_summary([_died_first(r, h, task.max_steps) for r, h in zip(results, hits, strict=True)])
    out["by_horizon"] = {h: rate_summary([task.success.step(r.occurrences, _limit(h, task.max_steps)) is not None
                                          for r in results])["rate"] for h in _horizons(suite)}
    return out


def specificity_block(suite: Suite, by_task: dict[str, list[EpisodeResult]]) -> dict[str, Any]:
    """Rows = the instructions of each task, columns = each task's success predicate, per horizon."""
    names = [t.name for t in suite.tasks]
    matrices: dict[str, list[list[float]]] = {}
    per_task: dict[str, dict[str, float]] = {}
    for h in _horizons(suite):
        m = np.zeros((len(names), len(names)))
        for i, row in enumerate(names):
            for j, col in enumerate(suite.tasks):
                rs = by_task.get(row, [])
                flags = [col.success.step(r.occurrences, _limit(h, min(col.max_steps, r.job.max_steps))) is not None
                         for r in rs]
                m[i, j] = np.mean(flags) if flags else np.nan
        matrices[h] = m.round(6).tolist()
        spec = specificity(m)
        per_task[h] = {n: float(v) for n, v in zip(names, spec, strict=True)}
    return {"rows": names, "columns": [t.success.label() for t in suite.tasks], "matrix": matrices, "per_task": per_task}


def aggregate(suite: Suite, conditions: list[Condition], episodes: int, out: RolloutOutput) -> dict[str, Any]:
    """The JSON report: per condition and task, specificity for prompted conditions, the CFG curve."""
    report: dict[str, Any] = {
        "suite": suite.name, "suite_path": suite.path, "world": suite.world, "episodes": episodes,
        "horizons": _horizons(suite), "tasks": [t.name for t in suite.tasks],
        "prompts": {t.name: list(t.prompts) for t in suite.tasks}, "conditions": {},
        "retries": out.retries, "lost_episodes": len(out.lost),
        "failures": out.failures[:50], "lost": [f"{x.job.condition}/{x.job.task}#{x.job.episode}: {x.error}" for x in out.lost],
    }
    for cond in conditions:
        rs = [r for r in out.results if r.job.condition == cond.name]
        entry: dict[str, Any] = {"prompted": cond.prompted, "cond_scale": cond.cond_scale, "kind": cond.kind,
                                 "episodes_run": len(rs), "tasks": {}}
        by_task = {t.name: [r for r in rs if r.job.task == t.name] for t in suite.tasks}
        for t in suite.tasks:
            entry["tasks"][t.name] = summarize_task(suite, t.name, by_task[t.name] if cond.prompted else rs)
        rates = [entry["tasks"][t.name]["success"]["rate"] for t in suite.tasks]
        entry["mean_success"] = float(np.nanmean(rates)) if rates else float("nan")
        entry["death_rate"] = rate_summary([r.died for r in rs])
        # per task and episode: died before that task's success (every episode of an unprompted condition
        # counts once per task, as its success does)
        firsts = [entry["tasks"][t.name]["deaths_before_success"]["rate"] for t in suite.tasks]
        entry["mean_deaths_before_success"] = float(np.nanmean(firsts)) if firsts else float("nan")
        if cond.prompted and len(suite.tasks) >= 2:
            entry["specificity"] = specificity_block(suite, by_task)
            entry["mean_specificity"] = {h: float(np.nanmean(list(v.values())))
                                         for h, v in entry["specificity"]["per_task"].items()}
        report["conditions"][cond.name] = entry
    curve = sorted((c.cond_scale, c.name) for c in conditions if c.cond_scale is not None and c.kind in ("agent", "cfg_sweep"))
    if curve:
        report["cfg_sweep"] = {
            "scales": [s for s, _ in curve], "conditions": [n for _, n in curve],
            "mean_success": [report["conditions"][n]["mean_success"] for _, n in curve],
            "per_task": {t.name: [report["conditions"][n]["tasks"][t.name]["success"]["rate"] for _, n in curve]
                         for t in suite.tasks},
        }
    return report


def evaluate_suite(
    suite: Suite, conditions: list[Condition], episodes: int | None = None, workers: int = 2,
    backend: str = "process", videos: int = 3, seed: int = 0, episode_timeout: float | None = 600.0,
    max_attempts: int = 3, progress: bool = True, env_config: dict[str, Any] | None = None,
    envs_per_worker: int = DEFAULT_ENVS_PER_WORKER,
) -> tuple[dict[str, Any], list[tuple[EpisodeJob, bytes]]]:
    """Run all conditions on the suite; returns (report dict, [(job, mp4 bytes)] of recorded episodes)."""
    if not conditions:
        raise AimcError("nothing to evaluate: give a checkpoint and/or baselines")
    names = [c.name for c in conditions]
    if len(set(names)) != len(names):
        raise AimcError(f"condition names must be unique, got {names}")
    episodes = episodes or suite.episodes
    jobs = build_jobs(suite, conditions, episodes, videos, seed)
    env = EnvSpec(suite.world, {**suite.world_config, **(env_config or {})})
    out = run_jobs(jobs, {c.name: c.factory for c in conditions}, env, workers=workers, backend=backend,
                   max_attempts=max_attempts, episode_timeout=episode_timeout, progress=progress,
                   envs_per_worker=envs_per_worker)
    if not out.results:
        raise AimcError(f"every episode failed; first error: {out.failures[0] if out.failures else 'unknown'}")
    report = aggregate(suite, conditions, episodes, out)
    report.update({"workers": workers, "backend": backend, "seed": seed, "env": {"world": env.world, **env.config}})
    recorded = [(r.job, r.video) for r in out.results if r.video is not None]
    return report, recorded


# ---------------------------------------------------------------------------- the `aimc eval tasks` recipe


def build_conditions(
    checkpoint: str | None, cfg_scales: list[float], baselines: list[str], use_prior: bool | None = None,
    device: str = "cpu", goal_source: str | None = None, planner: str | None = None,
    temperature: float | None = None, precision: str = "fp32",
) -> tuple[list[Condition], dict[str, Any]]:
    """Conditions for one run: the agent at the bundle's scale, the sweep scales, then the baselines (every
    condition of the agent, the unconditional baseline included, samples at `temperature`, None = the bundle's).

    Returns (conditions, env overrides from the bundle's world_config).
    """
    from aimc.eval.baselines import DemonstratorFactory, RandomFactory, TextAgentFactory

    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise AimcError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    conds: list[Condition] = []
    env_cfg: dict[str, Any] = {}
    if checkpoint is not None:
        from aimc.eval.agent import read_bundle

        meta = read_bundle(checkpoint)
        env_cfg = dict(meta.get("world_config") or {})
        main = float(meta.get("cond_scale", 6.0))
        conds.append(Condition("agent", TextAgentFactory(checkpoint, main, use_prior=use_prior, device=device,
                                                         goal_source=goal_source, planner=planner,
                                                         temperature=temperature, precision=precision),
                               True, main, "agent"))
        for s in sorted(set(cfg_scales) - {main}):
            conds.append(Condition(f"agent@{s:g}", TextAgentFactory(checkpoint, s, use_prior=use_prior, device=device,
                                                                    goal_source=goal_source, planner=planner,
                                                                    temperature=temperature, precision=precision),
                                   True, s, "cfg_sweep"))
        if "unconditional" in baselines:
            conds.append(Condition("unconditional", TextAgentFactory(checkpoint, zero_goal=True, device=device,
                                                                     temperature=temperature, precision=precision),
                                   False, None, "baseline"))
    elif "unconditional" in baselines or cfg_scales:
        raise AimcError("the unconditional baseline and --cfg-scales need --checkpoint (an agent bundle)")
    if "demonstrator" in baselines:
        conds.append(Condition("demonstrator", DemonstratorFactory(), True, None, "baseline"))
    if "random" in baselines:
        conds.append(Condition("random", RandomFactory(), False, None, "baseline"))
    return conds, env_cfg


def write_outputs(out_dir: str, report: dict[str, Any], recorded: list[tuple[EpisodeJob, bytes]]) -> dict[str, str]:
    """report.json, report.html (plots + embedded videos) and videos/*.mp4, all written atomically."""
    from aimc.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable_dir
    from aimc.eval.report import tasks_report_html

    out = check_writable_dir(out_dir)
    videos, captions = [], []
    for job, mp4 in recorded:
        name = f"videos/{job.condition}-{job.task}-ep{job.episode}.mp4".replace("@", "_")
        atomic_write_bytes(out / name, mp4)
        caption = f"{job.condition} · {job.task} · “{job.prompt}” (seed {job.world_seed})"
        videos.append((caption, mp4))
        captions.append({"file": name, "condition": job.condition, "task": job.task, "prompt": job.prompt})
    report = {**report, "videos": captions}
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.html", tasks_report_html(report, videos))
    return {"json": str(Path(out) / "report.json"), "html": str(Path(out) / "report.html")}


def run_eval(cfg: EvalConfig, progress: bool = True) -> dict[str, Any]:
    """`aimc eval tasks` and the pipeline's eval stage: suite, conditions, rollouts, report files.

    Returns {"mean_success": {condition: rate}, "retries", "lost_episodes", "json", "html", "config"} (paths).
    """
    suite = load_suite(cfg.suite)
    check_events(suite, world_events(suite.world))
    if cfg.tasks:
        suite = suite.select(list(cfg.tasks))
    if cfg.max_steps is not None:
        suite = replace(suite, tasks=tuple(replace(t, max_steps=cfg.max_steps) for t in suite.tasks))
    baselines = list(cfg.baselines)
    if cfg.checkpoint is None:  # the zero-goal baseline needs a policy; baselines-only runs keep the rest
        baselines = [b for b in baselines if b != "unconditional"] or ["demonstrator"]
    if not world_info(suite.world).has_demonstrator:  # e.g. Minecraft: no scripted player to compare with
        baselines = [b for b in baselines if b != "demonstrator"]
    if cfg.goal_source not in (None, "text"):
        if cfg.checkpoint is None:
            raise AimcError("--goal-source needs an agent (--checkpoint or the shipped one), not --baselines-only")
        from aimc.eval.agent import TextAgent

        TextAgent.from_bundle(cfg.checkpoint, goal_source=cfg.goal_source)  # a bad predictor fails here, once
    if cfg.checkpoint is not None:
        from aimc.eval.agent import read_bundle
        from aimc.eval.planner import check_planner

        meta = read_bundle(cfg.checkpoint)  # a planner the bundle's world lacks fails here, before any rollout
        planner = cfg.planner or meta.get("planner") or "none"
        check_planner(planner, meta["world"])
    conds, env_cfg = build_conditions(cfg.checkpoint, list(cfg.cfg_scales), baselines, cfg.use_prior, cfg.device,
                                      cfg.goal_source, cfg.planner, cfg.temperature, cfg.precision)
    report, recorded = evaluate_suite(suite, conds, cfg.episodes, cfg.workers, cfg.backend, cfg.videos, cfg.seed,
                                      cfg.episode_timeout, progress=progress, env_config=env_cfg,
                                      envs_per_worker=cfg.envs_per_worker)
    if cfg.checkpoint is not None:
        report["planner"] = planner  # how the agent's prompts became goals over an episode (docs/evaluation.md)
        report["temperature"] = cfg.temperature if cfg.temperature is not None else (meta.get("temperature") or 1.0)
        from aimc.core.precision import resolve_acting_precision

        report["precision"] = resolve_acting_precision(cfg.precision, cfg.device.split(":")[0])
    paths = write_outputs(cfg.out, report, recorded)
    config_path = str(Path(cfg.out) / "eval_config.json")
    save_config(cfg, config_path)
    return {"mean_success": {n: c["mean_success"] for n, c in report["conditions"].items()},
            "retries": report["retries"], "lost_episodes": report["lost_episodes"], **paths, "config": config_path}
