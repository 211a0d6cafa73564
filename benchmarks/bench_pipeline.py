"""A whole `aimc pipeline` preset, end to end, with an earlier commit's code and with this working tree.

The issue-18 measurement of the recipe's wall time (docs/training.md, "Speed"): each side runs
`python -m aimc pipeline --preset P --seed S` in a fresh run directory, in a subprocess whose `PYTHONPATH` puts
one version of `src/aimc` first (the earlier commit extracted with `git archive`, or this tree). The sides run
one after the other, never together (on 2 cores two runs would slow each other down), so the machine should be
otherwise quiet. It prints each stage's seconds, the totals and their ratio, and each side's evaluation
numbers, which must agree within noise: same seed, same recipe.

    python benchmarks/bench_pipeline.py                                   # crafter-small, ~45 min on 2 cores
    python benchmarks/bench_pipeline.py --preset micro --out /tmp/bp      # a minute: checks the script itself
    python benchmarks/bench_pipeline.py --sides after --set pretrain.mixed_precision=no   # one side, fp32

`--set` passes pipeline overrides to both sides (e.g. `--set pretrain.mixed_precision=no --set
goal.mixed_precision=no` trains in fp32 where the CPU would use bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE_REF = "462b0bd"
"""The last commit before the recipe speed-ups (issue 18, part 2)."""


def _extract(ref: str, dest: Path) -> Path:
    """The committed `src/aimc` of `ref`, unpacked under `dest` (returned: the directory to put on sys.path)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src/aimc"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def _run(side: str, src: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "aimc", "pipeline", "--preset", args.preset, "--out", str(out), "--seed", str(args.seed)]
    for s in args.set:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    log = out.with_suffix(".log")
    with open(log, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{side}: the pipeline failed (exit {proc.returncode}); see {log}")
    summary = json.loads((out / "summary.json").read_text())
    print(f"{side}: {wall:.0f} s wall ({log})", flush=True)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="crafter-small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--before-ref", default=BEFORE_REF, help="git ref of the 'before' code")
    ap.add_argument("--sides", default="before,after", help="which to run, in order: before, after or both")
    ap.add_argument("--out", type=Path, default=None, help="parent of the two run directories (default: a temp dir)")
    ap.add_argument("--set", action="append", default=[], help="pipeline override for both sides (repeatable)")
    args = ap.parse_args()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in ("before", "after") for s in sides):
        sys.exit("--sides takes before, after or before,after")
    parent = args.out or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    parent.mkdir(parents=True, exist_ok=True)
    if any((parent / s).exists() for s in sides):
        sys.exit(f"{parent} already holds a 'before' or 'after' run; pass a new --out")
    srcs = {"after": REPO / "src"}
    if "before" in sides:
        (parent / "before_code").mkdir(exist_ok=True)  # a re-extract overwrites the same files
        srcs["before"] = _extract(args.before_ref, parent / "before_code")
    results = {s: _run(s, srcs[s], parent / s, args) for s in sides}

    from aimc.pipeline.config import ALL_STAGES

    ran = {s for r in results.values() for s in r["stages"]}
    stages = [s for s in ALL_STAGES if s in ran]
    print("\n| code | " + " | ".join(stages) + " | total |")
    print("|---" * (len(stages) + 2) + "|")
    for side, r in results.items():
        name = f"{side} ({args.before_ref})" if side == "before" else side
        cells = [f"{r['stages'][s]['seconds']:.0f}" if s in r["stages"] else "-" for s in stages]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
    if len(results) == 2:
        print(f"\nafter / before wall time: {results['after']['seconds'] / results['before']['seconds']:.2f}x")
    for side, r in results.items():
        ev = r["stages"].get("eval", {}).get("result", {}).get("mean_success")
        train = {s: r["stages"][s]["result"].get("best_val") for s in ("pretrain", "goal") if s in r["stages"]}
        prec = {s: r["stages"][s]["result"].get("precision", "no (before the setting)")
                for s in ("pretrain", "goal") if s in r["stages"]}
        print(f"{side}: eval mean success {ev}; best val NLL {train}; training precision {prec}")


if __name__ == "__main__":
    main()
