"""Run the recipe stage by stage; a finished stage leaves a marker and is skipped on the next run.

Each stage's fingerprint hashes its own config section plus the fingerprints of the stages it reads, so
changing e.g. the embedder settings reruns embedder, embed, goal, prior, bundle and eval but not collect.
Stages themselves resume mid-way (collection skips finished episodes, training restarts from its last
atomic checkpoint), so a killed pipeline continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aimc.core.config import to_dict
from aimc.core.errors import AimcError
from aimc.core.io import atomic_write_json, check_writable_dir
from aimc.pipeline.config import (
    ALL_STAGES,
    RECIPES,
    Paths,
    PipelineConfig,
    collect_config,
    distill_config,
    embedder_config,
    eval_config,
    finish_config,
    polish_config,
    ppo_config,
    prior_config,
    recipe_stages,
    train_config,
)

STAGES = list(RECIPES["steve1"])
"""The default recipe's stages; `RECIPES[cfg.recipe]` are a run's."""
# Which earlier stages each stage reads (their fingerprints feed into its own), per recipe.
DEPENDS = {
    "collect": [], "embedder": ["collect"], "embed": ["collect", "embedder"], "pretrain": ["collect"],
    "goal": ["embed", "pretrain"], "prior": ["embedder", "collect"], "bundle": ["goal", "prior"], "eval": ["bundle"],
}
_INSTRUCT = {**DEPENDS, "goal": ["collect", "embedder"], "bundle": ["goal"]}
RECIPE_DEPENDS = {"steve1": DEPENDS, "instruct": _INSTRUCT,
                  "instruct-ppo": {**_INSTRUCT, "ppo": ["bundle"], "polish": ["ppo"], "finish": ["polish"],
                                   "distill": ["ppo"], "eval": ["ppo"]}}
PPO_CONFIGS = {"ppo": ppo_config, "polish": polish_config, "finish": finish_config, "distill": distill_config}
"""The PPO stages (each continues in place when only fields a PPO run may change on resume changed: more
iterations, threads, rollout workers, the bundle's planner)."""
PPO_STAGES = tuple(PPO_CONFIGS)
SECTION = {"collect": "collect", "embedder": "embedder", "embed": None, "pretrain": "pretrain", "goal": "goal",
           "prior": "prior", "bundle": None, "ppo": "ppo", "polish": "polish", "finish": "finish",
           "distill": "distill", "eval": "eval"}


def _depends(cfg: PipelineConfig, stage: str) -> list[str]:
    """The stages `stage` reads in this config: eval reads the last agent-making stage that runs, distill the last
    one before it."""
    readable = {"eval": ("distill", "finish", "polish"), "distill": ("finish", "polish")}.get(stage, ())
    for last in readable:
        if last in recipe_stages(cfg):
            return [last]
    return RECIPE_DEPENDS[cfg.recipe][stage]


def _fingerprint(cfg: PipelineConfig, stage: str, prints: dict[str, str]) -> str:
    section = SECTION[stage]
    payload = {
        "stage": stage, "seed": cfg.seed, "embed_name": cfg.embed_name,
        "section": getattr(cfg, section) if section else None,
        "upstream": [prints[d] for d in _depends(cfg, stage)],
    }
    if stage in PPO_STAGES:
        payload["preset"] = "ppo-distill" if stage == "distill" else cfg.ppo_preset
    if cfg.recipe != "steve1":  # the default recipe's fingerprints stay what earlier runs wrote
        payload["recipe"] = cfg.recipe
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ the stages
def _collect(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.data.collect import collect

    s = collect(collect_config(cfg, p), progress=progress)
    return {k: s[k] for k in ("collected", "skipped_existing", "frames", "frames_per_s")}


def _embedder(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.embed.train import train_embedder

    s = train_embedder(embedder_config(cfg, p), progress=progress)
    return {k: v for k, v in s.items() if isinstance(v, int | float | str)}


def _embed(cfg: PipelineConfig, p: Paths, progress: bool, stale: bool = False) -> dict[str, Any]:
    from aimc.embed.base import make_embedder
    from aimc.embed.run import embed_dataset

    # After an embedder change every stored embedding is stale; otherwise finished episodes are skipped.
    return embed_dataset(make_embedder(str(p.embedder), device=cfg.device), p.data, cfg.embed_name,
                         overwrite=stale, progress=progress)


def _train(cfg: PipelineConfig, p: Paths, progress: bool, preset: str) -> dict[str, Any]:
    from aimc.train.loop import run

    s = run(train_config(cfg, p, preset), progress=progress)
    return {k: v for k, v in s.items() if isinstance(v, int | float | str)}


def _prior(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.prior.train import train_prior

    s = train_prior(prior_config(cfg, p), progress=progress)
    return {k: v for k, v in s.items() if isinstance(v, int | float | str)}


def _bundle(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    """A self-contained agent bundle: the goal policy's best weights + embedder + prior."""
    from aimc.train.bundle import AgentBundle

    AgentBundle.read(p.goal).copy_into(p.bundle, embedder=p.embedder, prior=p.prior if cfg.recipe == "steve1" else None)
    size = sum(f.stat().st_size for f in p.bundle.rglob("*") if f.is_file())
    return {"bundle": str(p.bundle), "megabytes": round(size / 2**20, 2)}


def _ppo_stage(pcfg: Any, progress: bool) -> dict[str, Any]:
    """Run a PPO stage (ppo, polish, finish or distill) to its config's iterations; the marker's summary of its rows."""
    from aimc.finetune.ppo import run_ppo

    s = run_ppo(pcfg, progress=progress, log=lambda _: None)
    rows = s["iterations"]
    return {"bundle": s["bundle"], "iterations": len(rows), "env_steps": int(sum(r["env_steps"] for r in rows)),
            "success_first": rows[0]["success"], "success_last": rows[-1]["success"],
            "kl_anchor_last": rows[-1]["kl_anchor"], "bc_nll_last": rows[-1].get("bc_nll"),
            "kl_teacher_last": rows[-1].get("kl_teacher")}


def _ppo_continues(cfg: PipelineConfig, p: Paths, stage: str = "ppo") -> int | None:
    """Iterations done by a PPO stage (ppo, polish or finish) whose settings changed only where a PPO run resumes (more
    iterations, threads, rollout workers, `bundle_planner`) and whose start policy is unchanged, or None: then its output continues
    in place instead of being set aside, and only the stages after it rerun (a longer preset extends a finished
    shorter one)."""
    from aimc.finetune.ppo import continues

    return continues(PPO_CONFIGS[stage](cfg, p))


def _eval(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.eval.run import run_eval

    return run_eval(eval_config(cfg, p), progress=progress)


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "collect": _collect, "embedder": _embedder, "embed": _embed,
    "pretrain": lambda c, p, g: _train(c, p, g, "pretrain"), "goal": lambda c, p, g: _train(c, p, g, "goal"),
    "prior": _prior, "bundle": _bundle, "eval": _eval,
    **{stage: (lambda c, p, g, make=make: _ppo_stage(make(c, p), g)) for stage, make in PPO_CONFIGS.items()},
}


# Output each stage owns; when its settings change, the old output is moved aside, never deleted.
def _outputs(p: Paths) -> dict[str, Path | None]:
    return {"collect": p.data, "embedder": p.embedder_run, "embed": None, "pretrain": p.pretrain, "goal": p.goal,
            "prior": p.prior_run, "bundle": p.bundle, "ppo": p.ppo, "polish": p.polish, "finish": p.finish,
            "distill": p.distill, "eval": p.eval}


def _set_aside(path: Path | None, old_fp: str) -> Path | None:
    if path is None or not path.exists():
        return None
    dest = path.with_name(f"{path.name}.old-{old_fp}")
    n = 1
    while dest.exists():
        dest, n = path.with_name(f"{path.name}.old-{old_fp}-{n}"), n + 1
    path.rename(dest)
    return dest


# ------------------------------------------------------------------------------------------ the driver
def _check_run_dir(cfg: PipelineConfig, p: Paths) -> None:
    """Refuse a directory that holds something else or a run with another `out`-independent identity."""
    if p.root.is_dir() and any(p.root.iterdir()) and not (p.root / "pipeline_config.json").is_file():
        raise AimcError(f"--out {p.root} is not empty and holds no pipeline run; choose a new directory")
    check_writable_dir(p.root)


def run_pipeline(cfg: PipelineConfig, progress: bool = True, until: str | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage (or up to `until`), skipping stages whose marker matches; returns the summary."""
    if until is not None and until not in ALL_STAGES:
        raise AimcError(f"unknown stage {until!r}; stages: {', '.join(ALL_STAGES)}")
    stages = recipe_stages(cfg)
    if until is not None and until not in RECIPES[cfg.recipe]:
        raise AimcError(f"stage {until!r} is not part of the {cfg.recipe} recipe; its stages: {', '.join(stages)}")
    if until is not None and until not in stages:
        raise AimcError(f"stage {until!r} is not part of this {cfg.recipe} run: it runs only with a {until}: section; "
                        f"this run's stages: {', '.join(stages)}")
    p = Paths(cfg.out)
    _check_run_dir(cfg, p)
    atomic_write_json(p.root / "pipeline_config.json", to_dict(cfg))
    prints: dict[str, str] = {}
    summary: dict[str, Any] = {"out": str(p.root), "recipe": cfg.recipe, "stages": {}}
    for i, stage in enumerate(stages, 1):
        fp = prints[stage] = _fingerprint(cfg, stage, prints)
        marker = p.stages / f"{stage}.json"
        done = json.loads(marker.read_text()) if marker.is_file() else None
        if done is not None and done.get("fingerprint") == fp:
            log(f"[{i}/{len(stages)}] {stage}: done earlier ({done['seconds']:.0f} s), skipped")
            summary["stages"][stage] = done
        else:
            stale = done is not None  # finished earlier with other settings
            extend = _ppo_continues(cfg, p, stage) if stale and stage in PPO_STAGES else None
            earlier = float(done.get("seconds", 0.0)) if extend is not None and done is not None else 0.0
            if extend is not None:
                log(f"[{i}/{len(stages)}] {stage}: settings changed only where a PPO run resumes ({extend} "
                    "iteration(s) done); the run continues in place")
                marker.unlink()
            elif stale:
                moved = _set_aside(_outputs(p)[stage], done["fingerprint"])
                log(f"[{i}/{len(stages)}] {stage}: settings changed" + (f"; old output kept at {moved}" if moved else ""))
                marker.unlink()
            log(f"[{i}/{len(stages)}] {stage} ...")
            t0 = time.perf_counter()
            result = RUNNERS[stage](cfg, p, progress, stale=True) if stage == "embed" else RUNNERS[stage](cfg, p, progress)
            spent = time.perf_counter() - t0
            # a run continued in place keeps the time of its earlier pieces: `seconds` is the stage's whole cost
            record = {"fingerprint": fp, "seconds": earlier + spent, "result": result,
                      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            atomic_write_json(marker, record)
            summary["stages"][stage] = record
            log(f"[{i}/{len(stages)}] {stage}: finished in {spent:.0f} s"
                + (f" ({record['seconds']:.0f} s with its earlier pieces)" if earlier else ""))
        if stage == until:
            break
    summary["seconds"] = sum(s["seconds"] for s in summary["stages"].values())
    atomic_write_json(p.root / "summary.json", summary)
    return summary
