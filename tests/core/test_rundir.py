"""core.rundir: the run-directory contract every trainer uses (resume check, checkpoints, metrics, clean-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.core.rundir import RunDir, config_changes, read_metrics


@dataclass
class _Inner:
    lr: float = 1e-3
    layers: int = 2


@dataclass
class _Cfg:
    out: str = "run"
    steps: int = 10
    log_every: int = 5
    inner: _Inner = field(default_factory=_Inner)


def test_allow_list_accepts_resumable_and_rejects_the_rest(tmp_path):
    run = RunDir(tmp_path / "run", resumable={"steps", "log_every"})
    fresh = _Cfg(out=str(run.path))
    assert run.start(fresh) is fresh  # nothing saved yet: the new config is the config
    assert json.loads((run.path / "train_config.json").read_text())["inner"]["lr"] == 1e-3
    more = _Cfg(out=str(run.path), steps=30, log_every=1)
    assert run.resolve(more) == more  # budgets and cadence may change
    with pytest.raises(ConfigError) as err:
        run.resolve(_Cfg(out=str(run.path), steps=30, inner=_Inner(lr=0.5, layers=3)))
    msg = str(err.value)
    assert msg.startswith(f"{run.path} holds a run with a different config, which cannot resume: ")
    assert "different inner.layers (saved 2, now 3), inner.lr (saved 0.001, now 0.5);" in msg
    assert "only log_every, steps may change on resume" in msg and "another output directory (--out)" in msg
    assert "steps" not in msg.split(";")[0]  # the allowed change is not reported as a clash
    assert "\n" not in msg


def test_saved_config_wins_except_resumable_fields(tmp_path):
    run = RunDir(tmp_path, resumable={"steps"})
    run.save_config(_Cfg(out=str(tmp_path), steps=10, inner=_Inner(lr=0.25)))
    got = run.resolve(_Cfg(out=str(tmp_path), steps=99, inner=_Inner(lr=0.25)))
    assert got == _Cfg(out=str(tmp_path), steps=99, inner=_Inner(lr=0.25))
    assert config_changes({"a": {"b": 1}, "c": [1]}, {"a": {"b": 2}, "c": [1], "d": 0}) == [("a.b", 1, 2), ("d", None, 0)]


def test_checkpoint_is_atomic_and_latest_names_the_newest(tmp_path):
    run = RunDir(tmp_path, step_digits=4)
    assert run.latest() is None and run.latest_step() == 0
    for step in (1, 2, 3, 4):
        with run.checkpoint(step, keep=2) as tmp:
            (tmp / "state.json").write_text(json.dumps({"step": step}))
    assert run.latest() == tmp_path / "checkpoints" / "step_0004" and run.latest_step() == 4
    assert (tmp_path / "checkpoints" / "last").read_text() == "step_0004\n"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last", "step_0003", "step_0004"]
    with pytest.raises(RuntimeError), run.checkpoint(5) as tmp:  # a writer dying half-way changes nothing
        (tmp / "state.json").write_text("{")
        raise RuntimeError
    assert run.latest().name == "step_0004" and not (tmp_path / "checkpoints" / "step_0005").exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last", "step_0003", "step_0004"]
    with run.checkpoint(5) as tmp:  # keep=None keeps every checkpoint
        pass
    assert len(list((tmp_path / "checkpoints").glob("step_*"))) == 3
    (tmp_path / "checkpoints" / "last").write_text("step_0009\n")
    with pytest.raises(CheckpointError, match="names 'step_0009', which does not exist; delete"):
        run.latest()


def test_torn_metrics_line_is_skipped_and_trimmed(tmp_path):
    run = RunDir(tmp_path)
    for step in (1, 2, 3):
        run.log({"step": step, "train/loss": 1.0 / step})
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 4, "train/lo')  # killed mid-append
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    run.trim_metrics(2)  # resumed from the step-2 checkpoint: step 3 is logged again by the resumed run
    assert run.metrics_path.read_text() == '{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/loss": 0.5}\n'
    run.log({"step": 3, "train/loss": 0.25})
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    run.metrics_path.write_text('{"step": 1}\n{"st\n{"step": 2}\n')
    with pytest.raises(AimcError, match="metrics.jsonl: line 2 is not JSON"):
        run.read_metrics()


def test_start_removes_stale_temp_files_but_not_outputs(tmp_path):
    run = RunDir(tmp_path, resumable={"steps"})
    ckpts = tmp_path / "checkpoints"
    (ckpts / "step_00000002").mkdir(parents=True)
    (ckpts / "last").write_text("step_00000002\n")
    (ckpts / ".tmp-step_00000003.ab12").mkdir()  # a checkpoint being written when the run was killed
    (tmp_path / ".tmp-metrics.jsonl.x1").write_text("partial")
    (tmp_path / "best").mkdir()
    (tmp_path / ".tmp-best.old").mkdir()  # best/ was already replaced: the old copy is garbage
    (tmp_path / ".tmp-latest.old").mkdir()  # killed between the two renames: the only copy of latest/
    (tmp_path / ".tmp-latest.old" / "model.safetensors").write_text("weights")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    run.start(_Cfg(out=str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoints", "latest", "metrics.jsonl",
                                                          "train_config.json"]
    assert (tmp_path / "latest" / "model.safetensors").read_text() == "weights"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last", "step_00000002"]
    assert run.latest().name == "step_00000002" and run.clean() == 0


def test_start_inputs_are_fingerprinted_and_a_changed_one_refuses_to_resume(tmp_path):
    """A fine-tune's start bundle is named by path in its config; its content is what the run resumes from."""
    weights = tmp_path / "start.bin"
    weights.write_bytes(b"rung 13")
    run = RunDir(tmp_path / "run")
    (tmp_path / "run").mkdir()
    first = run.check_inputs({"start policy": weights})
    assert json.loads((tmp_path / "run" / "inputs.json").read_text()) == first
    assert run.check_inputs({"start policy": weights}) == first  # same bytes: resumes
    weights.write_bytes(b"rung 14")  # replaced in place (a shipped bundle updated under the same path)
    with pytest.raises(ConfigError, match=r"cannot resume: start policy \(.*start.bin\) changed since this run started"):
        run.check_inputs({"start policy": weights})
    assert json.loads((tmp_path / "run" / "inputs.json").read_text()) == first  # the record is kept
    weights.write_bytes(b"rung 13")
    assert run.check_inputs({"start policy": weights}) == first  # restored: resumes again


def test_a_run_from_before_input_fingerprints_records_them_on_resume(tmp_path):
    weights = tmp_path / "start.bin"
    weights.write_bytes(b"old run")
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    assert not (tmp_path / "run" / "inputs.json").exists()
    run.check_inputs({"start policy": weights}, main=False)  # a worker process writes nothing
    assert not (tmp_path / "run" / "inputs.json").exists()
    now = run.check_inputs({"start policy": weights})
    assert json.loads((tmp_path / "run" / "inputs.json").read_text()) == now
