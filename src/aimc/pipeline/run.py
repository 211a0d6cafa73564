"""Run the recipe stage by stage; a finished stage leaves a marker and is skipped on the next run.

Each stage's fingerprint hashes its own config section plus the fingerprints of the stages it reads, so
changing e.g. the embedder settings reruns embedder, embed, goal, prior, bundle and eval but not collect.
Stages themselves resume mid-way (collection skips finished episodes, training restarts from its last
atomic checkpoint), so a killed pipeline continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aimc.core.config import deep_merge, from_dict, to_dict
from aimc.core.errors import AimcError
from aimc.core.io import atomic_dir, atomic_write_json, check_writable_dir
from aimc.pipeline.config import PipelineConfig

STAGES = ["collect", "embedder", "embed", "pretrain", "goal", "prior", "bundle", "eval"]
# Which earlier stages each stage reads (their fingerprints feed into its own).
DEPENDS = {
    "collect": [], "embedder": ["collect"], "embed": ["collect", "embedder"], "pretrain": ["collect"],
    "goal": ["embed", "pretrain"], "prior": ["embedder", "collect"], "bundle": ["goal", "prior"], "eval": ["bundle"],
}
SECTION = {"collect": "collect", "embedder": "embedder", "embed": None, "pretrain": "pretrain", "goal": "goal",
           "prior": "prior", "bundle": None, "eval": "eval"}


class Paths:
    """Where each stage writes, under the run directory."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.data = self.root / "data"
        self.embedder_run = self.root / "embedder"
        self.embedder = self.embedder_run / "model"
        self.pretrain = self.root / "pretrain"
        self.goal = self.root / "goal"
        self.prior_run = self.root / "prior"
        self.prior = self.prior_run / "prior"
        self.bundle = self.root / "bundle"
        self.eval = self.root / "eval"
        self.stages = self.root / "stages"


def _fingerprint(cfg: PipelineConfig, stage: str, prints: dict[str, str]) -> str:
    section = SECTION[stage]
    payload = {
        "stage": stage, "seed": cfg.seed, "embed_name": cfg.embed_name,
        "section": getattr(cfg, section) if section else None,
        "upstream": [prints[d] for d in DEPENDS[stage]],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ the stages
def _collect(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.data.collect import CollectConfig, collect

    fields = {"world": "crafter", "agent": "demonstrator", "workers": cfg.workers, "seed": cfg.seed, **cfg.collect,
              "out": str(p.data)}
    s = collect(from_dict(CollectConfig, fields, where="collect"), progress=progress)
    return {k: s[k] for k in ("collected", "skipped_existing", "frames", "frames_per_s")}


def _embedder(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.embed.train import EmbedderTrainConfig, train_embedder

    fields = {"seed": cfg.seed, "device": cfg.device, **cfg.embedder, "data": str(p.data), "out": str(p.embedder_run)}
    s = train_embedder(from_dict(EmbedderTrainConfig, fields, where="embedder"), progress=progress)
    return {k: v for k, v in s.items() if isinstance(v, int | float | str)}


def _embed(cfg: PipelineConfig, p: Paths, progress: bool, stale: bool = False) -> dict[str, Any]:
    from aimc.embed.base import make_embedder
    from aimc.embed.run import embed_dataset

    # After an embedder change every stored embedding is stale; otherwise finished episodes are skipped.
    return embed_dataset(make_embedder(str(p.embedder), device=cfg.device), p.data, cfg.embed_name,
                         overwrite=stale, progress=progress)


def _train(cfg: PipelineConfig, p: Paths, progress: bool, preset: str) -> dict[str, Any]:
    from aimc.train.config import load_train_config
    from aimc.train.loop import run

    section = cfg.pretrain if preset == "pretrain" else cfg.goal
    fields: dict[str, Any] = {"seed": cfg.seed, "data": [{"path": str(p.data), "weight": 1.0}],
                              "out": str(p.pretrain if preset == "pretrain" else p.goal)}
    if preset == "goal":
        fields.update(init_from=str(p.pretrain / "best"), embedder=str(p.embedder))
        fields["segment"] = {"embed_name": cfg.embed_name}
    if cfg.device != "cpu":
        fields["mixed_precision"] = "bf16"
    layers = deep_merge(fields, section)
    s = run(load_train_config(preset, **layers), progress=progress)
    return {k: v for k, v in s.items() if isinstance(v, int | float | str)}


def _prior(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    from aimc.prior.train import PriorTrainConfig, train_prior

    fields = {"seed": cfg.seed, "device": cfg.device, **cfg.prior, "data": str(p.data), "embedder": str(p.embedder),
              "out": str(p.prior_run)}
    s = train_prior(from_dict(PriorTrainConfig, fields, where="prior"), progress=progress)
    return {k: v for k, v in s.items() if isinstance(v, int | float | str)}


def _bundle(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    """A self-contained agent bundle: the goal policy's best weights + embedder + prior."""
    from aimc.eval.agent import read_bundle

    meta = read_bundle(p.goal)
    with atomic_dir(p.bundle, overwrite=True) as tmp:
        shutil.copytree(p.goal / meta["policy"], tmp / "policy")
        shutil.copytree(p.embedder, tmp / "embedder")
        shutil.copytree(p.prior, tmp / "prior")
        atomic_write_json(tmp / "bundle.json", {**meta, "policy": "policy", "embedder": "embedder", "prior": "prior"})
    size = sum(f.stat().st_size for f in p.bundle.rglob("*") if f.is_file())
    return {"bundle": str(p.bundle), "megabytes": round(size / 2**20, 2)}


def _eval(cfg: PipelineConfig, p: Paths, progress: bool) -> dict[str, Any]:
    import dataclasses

    from aimc.eval.run import build_conditions, evaluate_suite, write_outputs
    from aimc.eval.tasks import check_events, load_suite, world_events

    e = cfg.eval
    suite = load_suite(e.get("suite"))
    check_events(suite, world_events(suite.world))
    if e.get("tasks"):
        suite = suite.select(list(e["tasks"]))
    if e.get("max_steps"):
        suite = dataclasses.replace(
            suite, tasks=tuple(dataclasses.replace(t, max_steps=int(e["max_steps"])) for t in suite.tasks))
    conds, env_cfg = build_conditions(str(p.bundle), [float(x) for x in e.get("cfg_scales", [])],
                                      list(e.get("baselines", ["unconditional", "demonstrator"])), None, cfg.device)
    report, recorded = evaluate_suite(suite, conds, e.get("episodes"), cfg.workers, "process", int(e.get("videos", 3)),
                                      cfg.seed, float(e.get("episode_timeout", 600.0)), progress=progress,
                                      env_config=env_cfg)
    paths = write_outputs(str(p.eval), report, recorded)
    return {"mean_success": {n: c["mean_success"] for n, c in report["conditions"].items()}, **paths}


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "collect": _collect, "embedder": _embedder, "embed": _embed,
    "pretrain": lambda c, p, g: _train(c, p, g, "pretrain"), "goal": lambda c, p, g: _train(c, p, g, "goal"),
    "prior": _prior, "bundle": _bundle, "eval": _eval,
}


# Output each stage owns; when its settings change, the old output is moved aside, never deleted.
def _outputs(p: Paths) -> dict[str, Path | None]:
    return {"collect": p.data, "embedder": p.embedder_run, "embed": None, "pretrain": p.pretrain, "goal": p.goal,
            "prior": p.prior_run, "bundle": p.bundle, "eval": p.eval}


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
    if until is not None and until not in STAGES:
        raise AimcError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    p = Paths(cfg.out)
    _check_run_dir(cfg, p)
    atomic_write_json(p.root / "pipeline_config.json", to_dict(cfg))
    prints: dict[str, str] = {}
    summary: dict[str, Any] = {"out": str(p.root), "stages": {}}
    for i, stage in enumerate(STAGES, 1):
        fp = prints[stage] = _fingerprint(cfg, stage, prints)
        marker = p.stages / f"{stage}.json"
        done = json.loads(marker.read_text()) if marker.is_file() else None
        if done is not None and done.get("fingerprint") == fp:
            log(f"[{i}/{len(STAGES)}] {stage}: done earlier ({done['seconds']:.0f} s), skipped")
            summary["stages"][stage] = done
        else:
            stale = done is not None  # finished earlier with other settings
            if stale:
                moved = _set_aside(_outputs(p)[stage], done["fingerprint"])
                log(f"[{i}/{len(STAGES)}] {stage}: settings changed" + (f"; old output kept at {moved}" if moved else ""))
                marker.unlink()
            log(f"[{i}/{len(STAGES)}] {stage} ...")
            t0 = time.perf_counter()
            result = RUNNERS[stage](cfg, p, progress, stale=True) if stage == "embed" else RUNNERS[stage](cfg, p, progress)
            record = {"fingerprint": fp, "seconds": time.perf_counter() - t0, "result": result,
                      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            atomic_write_json(marker, record)
            summary["stages"][stage] = record
            log(f"[{i}/{len(STAGES)}] {stage}: finished in {record['seconds']:.0f} s")
        if stage == until:
            break
    summary["seconds"] = sum(s["seconds"] for s in summary["stages"].values())
    atomic_write_json(p.root / "summary.json", summary)
    return summary
