"""`run_dagger`: K iterations of learner rollouts labelled by the demonstrator, aggregation and fine-tuning.

Iteration k (1..K): the policy of iteration k-1 (the starting bundle for k = 1) plays each rollout from an
instruction prompt while the demonstrator in task mode labels every state (`aimc.finetune.rollout`), executing
the expert's action with probability β_k; the episodes go to ``iter_<k>/data``. Then a fine-tune initialised
from that same policy trains on the base stores plus every DAgger store so far (DAgger stores with
``goal_source: intention``, so their goal is the instructed task's text, or under a planner the sub-goal the
learner was told at that step) and writes the bundle of iteration k
into ``iter_<k>/train``. Finally the last bundle is measured with pure-learner rollouts (``eval_<K>/``) and
copied, self-contained, to ``bundle/``.

Layout of ``out``::

    dagger_config.json         resolved config (saved one wins on resume; see config.RESUMABLE)
    iter_01/data/              labelled episodes (an episode store; metadata["dagger_result"] per episode)
    iter_01/train/             the fine-tune's run dir (aimc train policy layout) = the bundle of iteration 1
    eval_03/                   final pure-learner rollouts of the bundle of iteration 3
    stages/iter_01_collect.json, iter_01_train.json, eval_03.json, bundle.json   finished-stage markers
    frame_cache/               decoded frames shared by every iteration's fine-tune
    bundle/                    self-contained copy of the final bundle
    dagger_summary.json        per-iteration table (also printed by `aimc train dagger`)
    tensorboard/               dagger/* scalars per iteration

Resume: a stage with a marker is skipped; an unfinished collection skips the episodes already stored, and an
unfinished fine-tune resumes its run dir from the last checkpoint, so a killed run continues where it stopped
and ends with the numbers an uninterrupted one gives (same seed, CPU).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimc.core.config import deep_merge, from_dict, load_yaml, to_dict
from aimc.core.errors import AimcError, ConfigError
from aimc.core.io import atomic_write_json, check_writable_dir
from aimc.core.rundir import RunDir, read_metrics
from aimc.core.seeding import derive_seed
from aimc.data.store import list_episodes
from aimc.finetune.config import (
    CONFIG_FILE,
    RESUMABLE,
    TRAIN_RESERVED,
    DaggerConfig,
    beta_at,
    demonstrator_options,
)
from aimc.finetune.rollout import RolloutSpec, collect_rollouts, make_jobs
from aimc.train.bundle import AgentBundle
from aimc.train.config import TrainConfig

SUMMARY_FILE = "dagger_summary.json"


class Paths:
    """Where each part of a DAgger run lives under `out`."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.stages = self.root / "stages"
        self.frame_cache = self.root / "frame_cache"
        self.bundle = self.root / "bundle"
        self.tensorboard = self.root / "tensorboard"

    def data(self, k: int) -> Path:
        return self.root / f"iter_{k:02d}" / "data"

    def train(self, k: int) -> Path:
        return self.root / f"iter_{k:02d}" / "train"

    def eval(self, k: int) -> Path:
        return self.root / f"eval_{k:02d}"

    def marker(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"


@dataclass(frozen=True)
class Plan:
    """What the starting bundle fixes for every iteration (checked before anything is written)."""

    bundle: AgentBundle
    embedder: str
    """The starting bundle's embedder (directory or registered name): every fine-tune's goal space."""
    policy: str
    policy_overrides: dict[str, Any]
    """The starting policy's architecture as a preset + changed fields (goal_dim is set from the data)."""
    planner: str = "none"
    """The learner's prompt chaining in every rollout: the config's, else the starting bundle's."""


# ------------------------------------------------------------------------------------------- checks
def policy_spec(bundle: AgentBundle) -> tuple[str, dict[str, Any]]:
    """(preset, overrides) that rebuild the bundle's policy architecture: the preset closest to it."""
    from aimc.policy.vpt.config import PRESETS
    from aimc.policy.vpt.load import read_pretrained_meta

    saved = read_pretrained_meta(bundle.policy_dir())["config"]
    best: tuple[int, str, dict[str, Any]] | None = None
    for name, preset in sorted(PRESETS.items()):
        base = preset.to_dict()
        diff = {k: v for k, v in saved.items() if k != "goal_dim" and base.get(k) != v}
        if best is None or len(diff) < best[0]:
            best = (len(diff), name, diff)
    assert best is not None
    return best[1], best[2]


def prepare(cfg: DaggerConfig) -> tuple[DaggerConfig, Plan]:
    """Every check that needs the disk, before anything is written: the run dir (a saved config wins; a changed
    one fails), the bundle (readable, with an embedder, of a world the demonstrator plays), the base stores and
    the first fine-tune's config. Returns the config to run and the plan."""
    from aimc.envs import world_info

    paths = Paths(cfg.out)
    if paths.root.is_file() or (paths.root.is_dir() and any(paths.root.iterdir())
                                and not (paths.root / CONFIG_FILE).is_file()):
        raise AimcError(f"--out {paths.root} is not empty and holds no DAgger run; choose a new directory")
    cfg = RunDir(paths.root, RESUMABLE, CONFIG_FILE).resolve(cfg)
    if not cfg.bundle:
        raise ConfigError("bundle: give the agent bundle to start from (--bundle DIR)")
    bundle = AgentBundle.read(cfg.bundle)
    if bundle.embedder is None:
        raise AimcError(f"bundle {cfg.bundle} has no embedder, so its policy cannot read text prompts; "
                        "DAgger needs a goal-conditioned bundle (trained with an embedder)")
    if not world_info(bundle.world).has_demonstrator:
        raise AimcError(f"bundle {cfg.bundle} plays {bundle.world!r}, which has no scripted demonstrator to label states")
    for part in cfg.data:
        if not list_episodes(part.path):
            raise AimcError(f"{part.path} holds no episodes; run `aimc collect --out {part.path}` first")
    from aimc.eval.planner import resolve_planner

    policy, overrides = policy_spec(bundle)
    plan = Plan(bundle, str(bundle.embedder_ref()), policy, overrides, resolve_planner(cfg.planner, bundle))
    first = train_config(cfg, plan, 1)
    if first.val_fraction > 0 and cfg.episodes < 2:
        raise ConfigError("episodes must be >= 2 while the fine-tune holds out validation episodes "
                          f"(train.val_fraction={first.val_fraction}); set train.val_fraction=0 or collect more")
    return cfg, plan


def learner_bundle(cfg: DaggerConfig, k: int) -> str:
    """The policy that plays iteration k and that its fine-tune starts from: iteration k-1's bundle."""
    return cfg.bundle if k == 1 else str(Paths(cfg.out).train(k - 1))


def train_config(cfg: DaggerConfig, plan: Plan, k: int) -> TrainConfig:
    """Iteration k's fine-tune: `train_preset` <- defaults from the bundle <- the `train` section <- what DAgger
    fixes (run dir, data = base stores + DAgger stores 1..k, init from iteration k-1, the bundle's embedder and
    architecture, seed, length)."""
    from aimc.train.config import PRESET_DIR as TRAIN_PRESETS

    p = Paths(cfg.out)
    defaults: dict[str, Any] = {"segment": {"embed_name": plan.bundle.embed_name}, "frame_cache": str(p.frame_cache)}
    if plan.bundle.cond_scale is not None:
        defaults["cond_scale"] = plan.bundle.cond_scale
    fixed = {
        "out": str(p.train(k)),
        "data": [*(to_dict(part) for part in cfg.data),
                 *({"path": str(p.data(j)), "weight": cfg.dagger_weight / k, "goal_source": "intention"}
                   for j in range(1, k + 1))],
        "init_from": learner_bundle(cfg, k), "embedder": plan.embedder, "policy": plan.policy,
        "policy_overrides": plan.policy_overrides, "seed": derive_seed(cfg.seed, "train", k),
        "n_frames": cfg.frames_per_iteration,
    }
    assert set(fixed) == set(TRAIN_RESERVED)
    merged = deep_merge(deep_merge(load_yaml(TRAIN_PRESETS / f"{cfg.train_preset}.yaml"), defaults), cfg.train)
    merged.update(fixed)
    return from_dict(TrainConfig, merged, where="train")


# ------------------------------------------------------------------------------------------- stages
def _rollouts(cfg: DaggerConfig, bundle: str, store: Path, beta: float, tag: str, meta: dict[str, Any],
              log: Callable[[str], None], planner: str = "none") -> dict[str, Any]:
    """Collect (or finish collecting) one batch of labelled rollouts; returns its statistics."""
    start = time.perf_counter()
    spec = RolloutSpec(bundle=bundle, store=str(store), demonstrator=demonstrator_options(cfg, planner), cond_scale=cfg.cond_scale,
                       planner=planner, stop_on_success=cfg.stop_on_success, device=cfg.device,
                       precision=cfg.precision, metadata=meta,
                       skip_explore=cfg.skip_explore)
    jobs = make_jobs(cfg.tasks, cfg.episodes, beta, cfg.max_steps, cfg.seed, tag)
    done = [0]

    def tick(result: dict[str, Any]) -> None:
        done[0] += 1
        log(f"  {tag} episode {done[0]}: {result['task']} {'success' if result['success'] else 'fail'}"
            f"{', died' if result['died'] else ''} in {result['steps']} steps")

    results = collect_rollouts(spec, jobs, cfg.workers, cfg.envs_per_worker, on_episode=tick)
    stats = rollout_stats(results)
    stats.update(beta=beta, learner=bundle, wall_s=time.perf_counter() - start, resumed=done[0] < len(jobs))
    return stats


def rollout_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Success and death rates (overall and per task), frames, expert share and learner-expert agreement."""
    n = max(len(results), 1)
    steps = sum(r["steps"] for r in results)
    per_task: dict[str, dict[str, Any]] = {}
    for r in results:
        t = per_task.setdefault(r["task"], {"episodes": 0, "successes": 0, "deaths": 0})
        t["episodes"] += 1
        t["successes"] += int(r["success"])
        t["deaths"] += int(r["died"])
    return {
        "episodes": len(results), "frames": steps,
        "success_rate": sum(r["success"] for r in results) / n, "death_rate": sum(r["died"] for r in results) / n,
        "death_before_success_rate": sum(r["died"] and not r["success"] for r in results) / n,
        "expert_fraction": sum(r["expert_fraction"] * r["steps"] for r in results) / max(steps, 1),
        "agreement": sum(r["agreement"] * r["steps"] for r in results) / max(steps, 1),
        "explore_fraction": sum(r.get("explore_fraction", 0.0) * r["steps"] for r in results) / max(steps, 1),
        "per_task": per_task,
    }


def _train(tc: TrainConfig, progress: bool) -> dict[str, Any]:
    from aimc.train.loop import run

    start = time.perf_counter()
    s = run(tc, progress=progress)
    if s["interrupted"]:
        raise AimcError(f"the fine-tune in {tc.out} stopped early; rerun to resume it")
    gains = [r["val/goal_gain"] for r in read_metrics(tc.out) if "val/goal_gain" in r]
    return {"train_steps": s["step"], "train_frames": s["frames"], "train_segments": s["train_segments"],
            "skipped_episodes": s["skipped_episodes"], "best_val_loss": s["best_val"],
            "goal_gain": gains[-1] if gains else None, "train_wall_s": time.perf_counter() - start}


def _stage(paths: Paths, name: str, work: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(result, ran now): a finished stage's marker, or run `work` and write its marker."""
    marker = paths.marker(name)
    if marker.is_file():
        return json.loads(marker.read_text()), False
    result = work()
    atomic_write_json(marker, result)
    return result, True


# ------------------------------------------------------------------------------------------- the driver
def run_dagger(cfg: DaggerConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every iteration of `cfg`; returns the summary also written to dagger_summary.json."""
    cfg, plan = prepare(cfg)
    paths = Paths(cfg.out)
    cfg = RunDir(paths.root, RESUMABLE, CONFIG_FILE).start(cfg, inputs=plan.bundle.policy_files())  # iteration 1's learner
    paths.stages.mkdir(exist_ok=True)
    writer = _tensorboard(paths)
    rows: list[dict[str, Any]] = []
    try:
        for k in range(1, cfg.iterations + 1):
            beta = beta_at(cfg, k)
            tag = f"iter{k}"
            log(f"DAgger iteration {k}/{cfg.iterations} (beta {beta:.3g}, learner {learner_bundle(cfg, k)})")
            collected, ran_c = _stage(paths, f"iter_{k:02d}_collect", lambda k=k, beta=beta, tag=tag: _rollouts(
                cfg, learner_bundle(cfg, k), paths.data(k), beta, tag, {"iteration": k, "stage": "dagger"}, log,
                plan.planner))
            trained, ran_t = _stage(paths, f"iter_{k:02d}_train", lambda k=k: _train(train_config(cfg, plan, k), progress))
            row = {"iteration": k, **collected, **trained, "bundle": str(paths.train(k))}
            rows.append(row)
            if ran_c or ran_t:
                _log_row(writer, k, row)
        k_last = cfg.iterations
        final = None
        if cfg.final_rollouts:
            final, ran = _stage(paths, f"eval_{k_last:02d}", lambda: _rollouts(
                cfg, str(paths.train(k_last)), paths.eval(k_last), 0.0, f"eval{k_last}",
                {"iteration": k_last, "stage": "final"}, log, plan.planner))
            if ran:
                _log_row(writer, k_last + 1, final)
        bundle = _final_bundle(paths, k_last, plan.planner)
    finally:
        if writer is not None:
            writer.close()
    summary = {"iterations": rows, "final": final, "bundle": bundle, "out": str(paths.root), "seed": cfg.seed,
               "tasks": list(cfg.tasks), "planner": plan.planner}
    atomic_write_json(paths.root / SUMMARY_FILE, summary)
    return summary


def _final_bundle(paths: Paths, k: int, planner: str = "none") -> str:
    """Copy iteration k's bundle to bundle/ (once per k; a run extended to more iterations copies again). It
    plays with the planner its rollouts used (none: no planner in bundle.json)."""
    import dataclasses

    marker = paths.marker("bundle")
    if not (marker.is_file() and json.loads(marker.read_text()).get("iteration") == k and paths.bundle.is_dir()):
        bundle = AgentBundle.read(paths.train(k))
        dataclasses.replace(bundle, planner=None if planner == "none" else planner).copy_into(paths.bundle)
        atomic_write_json(marker, {"iteration": k})
    return str(paths.bundle)


def _tensorboard(paths: Paths) -> Any:
    check_writable_dir(paths.root)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(paths.tensorboard))


ROW_SCALARS = ("success_rate", "death_rate", "death_before_success_rate", "expert_fraction", "agreement", "beta", "frames", "episodes",
               "best_val_loss", "goal_gain", "train_steps", "wall_s", "train_wall_s")


def _log_row(writer: Any, step: int, row: dict[str, Any]) -> None:
    """dagger/<metric> at step k (the final pure-learner measurement is step K + 1)."""
    for key in ROW_SCALARS:
        if isinstance(row.get(key), int | float) and not isinstance(row.get(key), bool):
            writer.add_scalar(f"dagger/{key}", row[key], step)
    writer.flush()


def format_table(summary: dict[str, Any]) -> str:
    """The per-iteration table `aimc train dagger` prints."""
    head = f"{'iter':>4} {'beta':>5} {'episodes':>8} {'frames':>7} {'success':>7} {'deaths':>6} {'agree':>6} " \
           f"{'val_loss':>8} {'goal_gain':>9} {'wall_s':>7}"
    lines = [head]

    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) else "-"

    rows = [(str(r["iteration"]), r) for r in summary["iterations"]]
    if summary.get("final"):
        rows.append(("final", summary["final"]))
    for name, r in rows:
        wall = (r.get("wall_s") or 0.0) + (r.get("train_wall_s") or 0.0)
        lines.append(f"{name:>4} {fmt(r['beta'], '5.2f')} {r['episodes']:>8} {r['frames']:>7} "
                     f"{fmt(r['success_rate'], '7.2f')} {fmt(r['death_rate'], '6.2f')} {fmt(r['agreement'], '6.2f')} "
                     f"{fmt(r.get('best_val_loss'), '8.4f'):>8} {fmt(r.get('goal_gain'), '9.4f'):>9} {wall:7.0f}")
    return "\n".join(lines)
