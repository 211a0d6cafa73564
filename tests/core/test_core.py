"""core: config layering and validation, registry errors, atomic writes, stable seeds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from aimc.core.config import build_config, load_config, parse_overrides, save_config
from aimc.core.errors import ConfigError, UnknownNameError
from aimc.core.io import atomic_dir, atomic_write_text, check_writable_dir
from aimc.core.registry import Registry
from aimc.core.seeding import derive_seed


@dataclass
class _Inner:
    lr: float = 1e-3
    layers: int = 2


@dataclass
class _Cfg:
    name: str = "x"
    steps: int = 10
    inner: _Inner = field(default_factory=_Inner)
    sizes: tuple[int, int] = (1, 2)
    flag: bool = False


def test_layers_then_overrides(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("steps: 20\ninner:\n  lr: 0.5\n")
    cfg = build_config(_Cfg, preset, {"name": "y"}, overrides=["inner.layers=4", "sizes=[3, 4]", "flag=true"])
    assert cfg == _Cfg(name="y", steps=20, inner=_Inner(lr=0.5, layers=4), sizes=(3, 4), flag=True)
    save_config(cfg, tmp_path / "c.json")
    assert load_config(_Cfg, tmp_path / "c.json") == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["stepz=3"], "unknown key(s) ['stepz']"),
        (["steps=abc"], "config.steps: expected an integer"),
        (["inner.lr=fast"], "config.inner.lr: expected a number"),
        (["sizes=[1]"], "expected 2 items"),
        (["novalue"], "must look like key=value"),
    ],
)
def test_bad_overrides_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        build_config(_Cfg, overrides=overrides)
    assert message in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\ninner: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ invalid YAML"):
        build_config(_Cfg, bad)


def test_override_values_parse_as_yaml():
    assert parse_overrides(["a.b=1e-4", "c=[1,2]", "d=hello"]) == {"a": {"b": 1e-4}, "c": [1, 2], "d": "hello"}


def test_registry_lists_choices():
    reg: Registry[int] = Registry("thing")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1
    with pytest.raises(UnknownNameError, match="unknown thing 'c'; available: a, b"):
        reg.get("c")


def test_atomic_dir_and_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
        raise RuntimeError
    assert not (tmp_path / "d").exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
    assert (tmp_path / "d" / "f").read_text() == "x"
    atomic_write_text(tmp_path / "t.txt", "hello")
    assert (tmp_path / "t.txt").read_text() == "hello"
    assert oct(os.stat(tmp_path / "t.txt").st_mode & 0o777) != oct(0o600)


def test_check_writable_dir(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception, match="not a directory"):
        check_writable_dir(tmp_path / "file")
    assert check_writable_dir(tmp_path / "new" / "dir").is_dir()


def test_derive_seed_is_stable():
    assert derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
    assert derive_seed(0, 1) == 709825519  # fixed by sha256, independent of PYTHONHASHSEED


def test_reuse_freed_memory_is_scoped_and_reentrant():
    """The allocator setting holds inside the outermost block only; freed blocks are then reused, not refaulted."""
    import resource
    import sys

    import numpy as np

    from aimc.core import memory

    with memory.reuse_freed_memory() as active:
        assert active == sys.platform.startswith("linux")  # glibc on Linux; a no-op elsewhere
        with memory.reuse_freed_memory() as inner:
            assert inner == active and memory._depth == (2 if active else 0)
        assert memory._depth == (1 if active else 0)
        if active:  # a 64 MB block freed and taken again: the second time it costs no page faults
            np.ones(2**23)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            np.ones(2**23)
            assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 1000
    assert memory._depth == 0


# ------------------------------------------------------------------------------------------ precision
def test_mixed_precision_follows_the_hardware(monkeypatch):
    from aimc.core.precision import ENV_OVERRIDE, native_bf16_cpu, resolve_mixed_precision

    assert resolve_mixed_precision("no", "cuda") == resolve_mixed_precision("no", "cpu") == "no"
    assert resolve_mixed_precision("bf16", "cuda") == "bf16"
    monkeypatch.setenv(ENV_OVERRIDE, "0")  # a CPU without native bf16: fp32 whatever the config says
    assert not native_bf16_cpu() and resolve_mixed_precision("bf16", "cpu") == "no"
    monkeypatch.setenv(ENV_OVERRIDE, "1")
    assert native_bf16_cpu() and resolve_mixed_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="'no' or 'bf16'"):
        resolve_mixed_precision("fp16", "cpu")


def test_yes_no_on_off_stay_strings_in_configs(tmp_path):
    """YAML 1.1 reads `no` as False; a string option such as `mixed_precision: no` must stay a string."""
    from aimc.core.config import load_yaml, parse_overrides

    assert parse_overrides(["mixed_precision=no", "a=off", "b=true", "c=False", "d=1e-4"]) == {
        "mixed_precision": "no", "a": "off", "b": True, "c": False, "d": 1e-4}
    f = tmp_path / "c.yaml"
    f.write_text("mixed_precision: no\nflag: yes\nreal: false\n")
    assert load_yaml(f) == {"mixed_precision": "no", "flag": "yes", "real": False}
