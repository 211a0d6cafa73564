"""The GPU benchmark's code path (benchmarks/bench_gpu.py), run on the CPU with the tiny preset.

No GPU is lent to most sessions, so the script that measures one must already work when it is: the same
functions (reference vs aimc acting, bf16 autocast, the training step) run here on the CPU; only the timings,
which a test never checks, differ."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_gpu_measures_every_mode_and_agrees_with_the_reference(tmp_path):
    out = tmp_path / "gpu.json"
    result = _bench().main(["--device", "cpu", "--preset", "test-tiny", "--batch", "1", "2", "--steps", "1",
                            "--train-batch", "2", "--train-length", "8", "--train-steps", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [row["batch"] for row in result["acting"]] == [1, 2]
    for row in result["acting"]:
        modes = row["modes"]
        assert set(modes) == {"reference fp32", "aimc fp32", "aimc bf16"}
        assert all("error" not in m and m["ms"] > 0 and m["ratio"] > 0 for m in modes.values())
        assert modes["aimc fp32"]["max_abs_dlogp"] < 1e-4  # the same maths in fp32
        assert 0 < modes["aimc bf16"]["max_abs_dlogp"] < 0.1  # bf16 changes the numbers, a little
    assert [r["precision"] for r in result["training"]] == ["fp32", "bf16 autocast"]
    for r in result["training"]:
        assert "error" not in r and r["batch"] == 2 and r["length"] == 8
        assert math.isfinite(r["frames_per_s"]) and r["frames_per_s"] > 0


def test_bench_gpu_rejects_an_unknown_preset_in_one_line(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        _bench().main(["--device", "cpu", "--preset", "vpt-9x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("unknown --preset 'vpt-9x'; available: crafter-lstm, crafter-small, steve1, test-tiny, "
                            "vpt-1x, vpt-2x, vpt-3x")


def test_bench_gpu_without_a_reference_takes_aimc_fp32_as_the_baseline():
    """Crafter presets have no VPT action heads, so no official reference: ratios are against aimc fp32."""
    result = _bench().main(["--device", "cpu", "--preset", "crafter-lstm", "--batch", "2", "--steps", "1",
                            "--train-steps", "0"])
    modes = result["acting"][0]["modes"]
    assert set(modes) == {"aimc fp32", "aimc bf16"}
    assert modes["aimc fp32"]["ratio"] == 1.0 and modes["aimc fp32"]["max_abs_dlogp"] == 0.0
    assert 0 < modes["aimc bf16"]["max_abs_dlogp"] < 0.1
    assert result["training"] == []
