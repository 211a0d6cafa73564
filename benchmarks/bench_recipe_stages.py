"""Per-stage throughput of the crafter-small recipe's stages, before and after the issue-18 speed-ups.

"Before" is the package as committed at `--before-ref` (extracted with `git archive` into a temporary
directory), "after" is this working tree. Each measurement runs the stage's own library call in a fresh
subprocess that imports one of the two versions, on the same small episode store; the two versions alternate
(before, after, after, before, ...), so on a shared machine both see the same load, and the ratios (not the
absolute numbers) are what counts. Each side reports wall and CPU seconds; on a busy machine CPU time is the
steadier figure, wall time shows waiting (e.g. libswscale's threads waiting for a core).

Stages and what one measurement does:
* decode   -- `Episode.frames()` of every episode (what the embedder, embed, prior and frame-cache fill do);
* embed    -- `aimc.embed.run.embed_dataset` with a fresh (untrained) video-text embedder, every episode;
* embedder -- `aimc.embed.train.train_embedder`, `--embedder-steps` steps, clips cut from the whole store;
* prior    -- `aimc.prior.train.train_prior`, 2 CVAE epochs (clip cutting and embedding dominate);
* pretrain -- `aimc.train.loop.run`, preset pretrain, `--train-steps` optimiser steps from a fresh frame cache;
* goal     -- the same with preset goal (visual goal embeddings, validation with and without goals);
* items    -- training items (64-frame segments, goals, DART labels) from a filled frame cache, collated in
  batches of 16, as a data-loader worker makes them;
* step-memory -- the policy's training step alone (forward, backward, AdamW) on a fixed batch; after: with freed
  memory kept in the process (`aimc.core.memory`), as `run` does;
* train-step -- `run` with the frame cache already filled: steady-state training only (frames/s);
* validate -- `aimc.train.loop.evaluate` on the goal preset's validation segments.

    python benchmarks/bench_recipe_stages.py                       # collects 8 episodes first
    python benchmarks/bench_recipe_stages.py --data /tmp/cs_data --stages decode,train-step --repeats 3

Torch runs single-threaded (`--threads`) and the trainers without data workers (`num_workers=0`), so a
stage's CPU time is all in the measured process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEFORE_REF = "462b0bd"
"""The last commit before the speed-ups (issue 18, part 2)."""
STAGES = ("decode", "embed", "embedder", "prior", "pretrain", "goal", "items", "step-memory", "train-step", "validate")
EMBED_NAME = "videotext"


# ----------------------------------------------------------------------------------------- worker side
def _train_cfg(preset: str, data: Path, out: Path, steps: int, extra: list[str]) -> Any:
    from aimc.train.config import load_train_config

    sets = ["num_workers=0", f"n_frames={512 * steps}", "log_every=1", f"val_every={steps}", f"save_every={steps}",
            "warmup_frames=1000", *extra]
    if preset == "goal":
        sets.append(f"segment.embed_name={EMBED_NAME}")
    return load_train_config(preset, overrides=sets, data=[{"path": str(data)}], out=str(out))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> dict[str, float]:
    return {"wall_s": time.perf_counter() - t[0], "cpu_s": time.process_time() - t[1]}


def _losses(run_dir: Path) -> dict[str, float]:
    """The last logged train and val losses (equal before and after: no speed-up may change the numbers)."""
    from aimc.train.loop import read_metrics

    rows = read_metrics(run_dir)
    out = {"train_loss": next(r["train/loss"] for r in reversed(rows) if "train/loss" in r)}
    val = [r["val/loss"] for r in rows if "val/loss" in r]
    if val:
        out["val_loss"] = val[-1]
    return out


def _work(stage: str, data: Path, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage once; returns {"work": units done, "unit": ..., "wall_s", "cpu_s", and extra figures}.
    Set-up that is not the stage's own work (copying the store, filling a cache) is outside the timing."""
    import torch

    from aimc.data.store import Episode, list_episodes

    if stage == "decode":
        t = _clock()
        return {"work": sum(len(Episode(p).frames()) for p in list_episodes(data)), "unit": "frames", **_since(t)}
    if stage == "embed":
        from aimc.embed.base import make_embedder
        from aimc.embed.run import embed_dataset

        store = scratch / "store"
        shutil.copytree(data, store)
        t = _clock()
        embed_dataset(make_embedder(str(args.embedder_dir), device="cpu"), store, "bench", overwrite=True, progress=False)
        return {"work": sum(Episode(p).length for p in list_episodes(store)), "unit": "frames", **_since(t)}
    if stage == "embedder":
        from aimc.embed.config import EmbedderTrainConfig
        from aimc.embed.train import train_embedder

        steps = args.embedder_steps
        t = _clock()
        train_embedder(EmbedderTrainConfig(data=str(data), out=str(scratch / "emb"), steps=steps, batch_size=16,
                                           checkpoint_every=max(steps // 2, 1), seed=0, device="cpu"), progress=False)
        return {"work": steps * 16 * 16, "unit": "clip frames trained", **_since(t)}
    if stage == "prior":
        from aimc.prior.config import PriorTrainConfig
        from aimc.prior.train import train_prior

        t = _clock()
        train_prior(PriorTrainConfig(data=str(data), embedder=str(args.embedder_dir), out=str(scratch / "prior"), epochs=2,
                                     seed=0), progress=False)
        return {"work": sum(Episode(p).length for p in list_episodes(data)), "unit": "store frames", **_since(t)}
    if stage in ("pretrain", "goal"):
        from aimc.train.loop import run

        t = _clock()
        summary = run(_train_cfg(stage, data, scratch / stage, args.train_steps, []), progress=False)
        return {"work": summary["frames"], "unit": "frames trained", **_since(t), **_losses(scratch / stage)}
    if stage == "train-step":
        from aimc.data.dataset import FrameCache
        from aimc.train.loop import build_data, read_metrics, run

        cfg = _train_cfg("goal", data, scratch / "steady", args.train_steps + 1, ["val_every=0", "save_every=0",
                                                                                    f"frame_cache={scratch / 'cache'}"])
        train, _, _ = build_data(cfg)
        cache = FrameCache(scratch / "cache")
        for p in train.episodes:
            cache.frames(Episode(p, check_video=False), 0, 1)
        t = _clock()
        run(cfg, progress=False)
        timed = _since(t)
        rows = [r for r in read_metrics(cfg.out) if "perf/fps" in r][1:]  # the first step carries the start-up
        return {"work": cfg.n_frames, "unit": "frames trained", **timed, **_losses(scratch / "steady"),
                "steady_wall_s": 512 * sum(1.0 / r["perf/fps"] for r in rows), "steady_frames": 512 * len(rows)}
    if stage == "step-memory":
        import contextlib
        import resource

        from aimc.policy import VPTPolicy, get_config

        try:  # the after side keeps freed memory while training, as `aimc.train.loop.run` does
            from aimc.core.memory import reuse_freed_memory
        except ImportError:  # the before side has no such setting
            reuse_freed_memory = contextlib.nullcontext
        torch.manual_seed(0)
        policy = VPTPolicy(get_config("crafter-small", goal_dim=256))
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(0)
        pov = torch.randint(0, 256, (16, 64, 64, 64, 3), dtype=torch.uint8, generator=g)  # (B, T, H, W, 3)
        goal, act = torch.randn(16, 64, 256, generator=g), torch.randint(0, 17, (16, 64), generator=g)
        first = torch.zeros(16, 64, dtype=torch.bool)
        first[:, 0] = True

        def batch() -> None:  # the loop's step: two 32-frame chunks, state carried, one AdamW step
            state = None
            for c in range(2):
                sl = slice(32 * c, 32 * (c + 1))
                out, state = policy(pov[:, sl], goal[:, sl], first[:, sl], state)
                (-out.logp["action"].gather(-1, act[:, sl, None]).mean()).backward()
                state = state.detach()
            opt.step()
            opt.zero_grad(set_to_none=True)

        with reuse_freed_memory():
            batch()  # warm-up
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = _clock()
            for _ in range(args.train_steps):
                batch()
            timed = _since(t)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return {"work": args.train_steps * 16 * 64, "unit": "frames (model step only)", **timed,
                "faults_per_batch": faults / args.train_steps}
    if stage == "items":
        from aimc.data.dataset import FrameCache, SegmentDataset, SegmentSampler, collate_segments
        from aimc.train.loop import build_data

        cfg = _train_cfg("goal", data, scratch / "items", 1, [f"frame_cache={scratch / 'cache'}"])
        train, _, _ = build_data(cfg)
        cache = FrameCache(scratch / "cache")
        for p in train.episodes:
            cache.frames(Episode(p, check_video=False), 0, 1)
        ds = SegmentDataset(train, cfg.segment, (64, 64), scratch / "cache")
        keys = iter(SegmentSampler(train, cfg.batch_size, cfg.seed))
        n = args.train_steps * 4 * cfg.batch_size
        t = _clock()
        for _ in range(0, n, cfg.batch_size):
            collate_segments([ds[next(keys)] for _ in range(cfg.batch_size)])
        return {"work": n, "unit": "segments loaded", **_since(t)}
    if stage == "validate":
        from aimc.data.dataset import SegmentDataset, val_keys
        from aimc.train.loop import build_data, build_policy, evaluate

        cfg = _train_cfg("goal", data, scratch / "val", 1, ["frame_cache=" + str(scratch / "vcache")])
        _, val, _ = build_data(cfg)
        torch.manual_seed(0)
        policy, _ = build_policy(cfg, val.goal_dim)
        keys = val_keys(val, cfg.seed, cfg.val_segments)
        ds = SegmentDataset(val, cfg.segment, policy.config.img_shape, cfg.resolved_frame_cache())
        for k in keys:  # fill the frame cache: only the model's part is timed
            ds[k]
        t = _clock()
        result = evaluate(policy, ds, keys, cfg, torch.device("cpu"))
        return {"work": len(keys) * cfg.segment.segment_len, "unit": "val frames", **_since(t),
                "val_loss": result["loss"], "val_loss_zero_goal": result["loss_zero_goal"]}
    raise SystemExit(f"unknown stage {stage!r}")


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import aimc

    scratch = Path(tempfile.mkdtemp(prefix="bench_stage_", dir=args.scratch))
    try:
        res = _work(args.stage, Path(args.data), scratch, args)
        res["package"] = str(Path(aimc.__file__).parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("RESULT " + json.dumps(res))


# ----------------------------------------------------------------------------------------- driver side
def _extract(ref: str, dest: Path) -> Path:
    """The committed `src/aimc` of `ref`, unpacked under `dest` (returned: the directory to put on sys.path)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src/aimc"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def _measure(side: str, stage: str, paths: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(paths[side])}
    cmd = [sys.executable, __file__, "--worker", "--stage", stage, "--data", str(paths["data"]),
           "--scratch", str(paths["tmp"]), "--threads", str(args.threads), "--train-steps", str(args.train_steps),
           "--embedder-steps", str(args.embedder_steps), "--embedder-dir", str(paths["embedder"])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"{side} {stage} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    res = json.loads(line[len("RESULT "):])
    if not res["package"].startswith(str(paths[side])):
        raise SystemExit(f"{side} imported the wrong package: {res['package']}")
    return res


def _prepare(args: argparse.Namespace, tmp: Path) -> dict[str, Path]:
    """The store (collected and embedded if not given), a fresh embedder, and both package versions."""
    import torch

    from aimc.data.store import Episode, list_episodes
    from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder

    torch.manual_seed(0)
    embedder = tmp / "embedder"
    VideoTextEmbedder(VideoTextConfig(channels=[16, 32, 64, 128]), device="cpu").save_pretrained(embedder)
    data = tmp / "store"
    if args.data is None:
        from aimc.data.collect import CollectConfig, collect

        collect(CollectConfig(out=str(data), episodes=8, max_steps=1000, seed=0, workers=1), progress=False)
    else:
        shutil.copytree(args.data, data)
    emb = VideoTextEmbedder.from_pretrained(embedder, device="cpu")
    for p in list_episodes(data):  # the goal stage reads these (what the pipeline's embed stage writes)
        ep = Episode(p)
        if not ep.has_embeds(EMBED_NAME):
            e, m = emb.window_embeddings(ep.frames())
            ep.write_embeds(EMBED_NAME, e.numpy(), m.numpy())
    before = tmp / "before"
    before.mkdir()
    return {"data": data, "embedder": embedder, "before": _extract(args.before_ref, before), "after": REPO / "src",
            "tmp": tmp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="episode store (default: collect 8 episodes of <= 1000 steps)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    ap.add_argument("--repeats", type=int, default=2, help="measurements per side and stage (alternating)")
    ap.add_argument("--before-ref", default=BEFORE_REF, help="git ref of the 'before' code")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each measurement")
    ap.add_argument("--train-steps", type=int, default=6, help="optimiser steps (512 frames each) per trainer run")
    ap.add_argument("--embedder-steps", type=int, default=20)
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per measurement")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    ap.add_argument("--embedder-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_recipe_"))
    try:
        paths = _prepare(args, tmp)
        print(f"before = {args.before_ref}, after = working tree; torch threads {args.threads}; store {paths['data']}")
        print(f"{'stage':11s} {'unit':24s} {'before /s (wall, cpu)':>24s} {'after /s (wall, cpu)':>24s} "
              f"{'ratio wall':>10s} {'ratio cpu':>9s}")
        for stage in stages:
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for r in range(args.repeats):
                for side in ("before", "after") if r % 2 == 0 else ("after", "before"):
                    runs[side].append(_measure(side, stage, paths, args))
            rate = {side: (statistics.median(x["work"] / x["wall_s"] for x in rs),
                           statistics.median(x["work"] / x["cpu_s"] for x in rs)) for side, rs in runs.items()}
            b, a = rate["before"], rate["after"]
            print(f"{stage:11s} {runs['after'][0]['unit']:24s} {b[0]:11.1f} {b[1]:11.1f}  {a[0]:11.1f} {a[1]:11.1f}"
                  f"  {a[0] / b[0]:9.2f}x {a[1] / b[1]:8.2f}x")
            numbers = [k for k in ("train_loss", "val_loss", "val_loss_zero_goal") if k in runs["before"][0]]
            if numbers:  # a speed-up must not change what the stage computes
                ref = runs["before"][0]
                same = all(x[k] == ref[k] for x in runs["before"] + runs["after"] for k in numbers)
                shown = ", ".join(f"{k} {ref[k]:.6f} vs {runs['after'][0][k]:.6f}" for k in numbers)
                print(f"{'':11s} {shown}; identical in every run: {same}")
            if stage == "step-memory":
                faults = {side: statistics.median(x["faults_per_batch"] for x in rs) for side, rs in runs.items()}
                print(f"{'':11s} page faults per batch: before {faults['before']:.0f}, after {faults['after']:.0f}")
            if stage == "train-step":
                steady = {side: statistics.median(x["steady_frames"] / x["steady_wall_s"] for x in rs)
                          for side, rs in runs.items()}
                print(f"{'':11s} perf/fps (steady, wall): before {steady['before']:.1f}, after {steady['after']:.1f}, "
                      f"ratio {steady['after'] / steady['before']:.2f}x")
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
