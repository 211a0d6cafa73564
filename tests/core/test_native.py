"""aimc.core.native: the `aimc` command gives its processes a oneDNN primitive cache that does not evict."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from aimc.cli.app import main
from aimc.core.native import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_ENV, configure_native_runtime


def test_defaults_fill_only_what_the_user_left_unset():
    env: dict[str, str] = {}
    assert configure_native_runtime(env) == {ONEDNN_CACHE_ENV: str(ONEDNN_CACHE_CAPACITY)}
    assert env == {ONEDNN_CACHE_ENV: str(ONEDNN_CACHE_CAPACITY)}
    mine = {ONEDNN_CACHE_ENV: "1024", "OTHER": "x"}
    assert configure_native_runtime(mine) == {}
    assert mine == {ONEDNN_CACHE_ENV: "1024", "OTHER": "x"}


def test_the_command_sets_the_cache_for_itself_and_its_children(monkeypatch, capsys):
    monkeypatch.setenv(ONEDNN_CACHE_ENV, "x")  # recorded, so that teardown restores the original state
    monkeypatch.delenv(ONEDNN_CACHE_ENV)
    assert main(["--help"]) == 0
    assert os.environ[ONEDNN_CACHE_ENV] == str(ONEDNN_CACHE_CAPACITY)
    monkeypatch.setenv(ONEDNN_CACHE_ENV, "1024")
    assert main(["--help"]) == 0
    assert os.environ[ONEDNN_CACHE_ENV] == "1024"


# A fresh process runs the command's entry point, then 1,100 convolutions of distinct batch sizes (each a new oneDNN
# primitive, plus reorders: far more than oneDNN's default 1,024 entries), then batch 100 again: a cache hit only if
# the capacity the entry point set reached oneDNN, i.e. if it was set before the first primitive.
SCRIPT = textwrap.dedent("""
    import os
    os.environ["ONEDNN_VERBOSE"] = "profile_create"
    from aimc.cli.app import main
    main(["--help"])
    import torch
    torch.set_num_threads(1)
    conv = torch.nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        for n in list(range(1, 1101)) + [100]:
            conv(torch.zeros(n, 2, 2, 2))
""")


def last_convolution_create(user_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_CACHE_ENV}
    if user_value is not None:
        env[ONEDNN_CACHE_ENV] = user_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    creates = [ln for ln in out.splitlines()
               if ln.startswith("onednn_verbose") and ",convolution," in ln and "mb100_" in ln]
    if len(creates) != 2:  # batch 100, first and again
        pytest.skip("this torch build runs these convolutions without oneDNN")
    return creates[-1]


def test_the_setting_reaches_onednn_in_a_fresh_process():
    assert "create:cache_hit" in last_convolution_create(None)
    assert "create:cache_miss" in last_convolution_create("1024")  # oneDNN's default evicts it: the check can fail
