"""Two CPU processes through `accelerate launch`: data sharded per rank, gradients all-reduced, one writer.

`--cpu` alone makes accelerate run a single process; `--multi_gpu` starts torchrun-style workers, and on a
machine without CUDA the loop's `Accelerator(cpu=True)` joins them with the gloo backend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.train.fixtures import EMBED_NAME, demo_store  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def test_two_process_cpu_run(demo_store, tmp_path):  # noqa: F811
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher is not None
    out = tmp_path / "ddp"
    cmd = [
        launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "aimc", "train", "policy", "--preset", "test", "--data", str(demo_store),
        "--out", str(out), "--quiet", "--seed", "0", "--set", f"segment.embed_name={EMBED_NAME}",
        "--set", "n_frames=256", "--set", "val_every=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # 2 processes x batch 2 x 8-frame chunks = 32 frames per micro-step, 2 micro-steps per optimiser step
    assert "trained 4 steps (256 frames, 2 process(es))" in r.stdout
    state = json.loads((out / "checkpoints" / "step_00000004" / "train_state" / "state.json").read_text())
    assert state["batches"] == 4 and state["frames"] == 256
    w = load_file(str(out / "latest" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in w.values())
    assert (out / "bundle.json").is_file()
