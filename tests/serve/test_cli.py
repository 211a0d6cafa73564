"""`aimc serve` options: validated into a `ServeConfig` before a port is bound or a model loaded."""

from __future__ import annotations

import socket

import pytest

from aimc.cli.app import main
from aimc.core.errors import ConfigError
from aimc.serve.config import ServeConfig


def test_options_become_the_config(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr("aimc.serve.server.run", lambda cfg, echo: seen.append(cfg))
    args = ["serve", "--checkpoints", str(tmp_path), "--host", "0.0.0.0", "--port", "0", "--max-games", "7",
            "--idle-timeout", "30", "--max-upload-mb", "5", "--seed", "3", "--speed", "0", "--max-panels", "3"]
    assert main(args) == 0
    assert seen == [ServeConfig(checkpoints=str(tmp_path), host="0.0.0.0", port=0, max_games=7, idle_timeout_s=30.0,
                                max_upload_mb=5.0, seed=3, speed=0.0, max_panels=3)]
    assert seen[0].max_upload_bytes == 5 * 2**20
    assert main(["serve"]) == 0 and seen[1] == ServeConfig()  # binds 127.0.0.1:8000 unless told otherwise
    assert (seen[1].host, seen[1].port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize("args, error", [
    (["--port", "70000"], "--port must be in 0..65535, got 70000"),
    (["--max-games", "0"], "--max-games must be >= 1, got 0"),
    (["--host", "my laptop"], "--host must be an IP address such as 127.0.0.1 or 0.0.0.0, got 'my laptop'"),
    (["--frame-size", "255"], "--frame-size must be an even number in 64..1024, got 255"),
    (["--speed", "100"], "--speed must be in 0..60 steps/s (0 = as fast as possible), got 100.0"),
    (["--checkpoint", "/no/such/run"], "--checkpoint /no/such/run is not a directory"),
    (["--checkpoint", ".", "--checkpoints", "."],
     "--checkpoint and --checkpoints exclude each other; pass one bundle or one directory of bundles"),
])
def test_bad_options_are_one_error_line(args, error, capsys):
    assert main(["serve", *args]) == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_a_directory_that_is_not_a_bundle_or_holds_none_is_refused(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} is not an agent bundle (no bundle.json)")
    assert main(["serve", "--checkpoints", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --checkpoints {tmp_path} holds no agent bundle")


def test_a_port_in_use_is_one_error_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                                       "pass another --port (0 = any free)\n")


def test_config_checks_without_the_cli():
    with pytest.raises(ConfigError, match=r"^idle_timeout_s must be > 0, got 0"):
        ServeConfig(idle_timeout_s=0)


def test_the_package_exports_its_interface_lazily():
    import subprocess
    import sys

    import aimc.serve

    for name in aimc.serve.__all__:
        assert getattr(aimc.serve, name) is not None, name
    code = "import sys, aimc.serve, aimc.serve.config; print('torch' in sys.modules, 'fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # the config is checked without loading torch or FastAPI
