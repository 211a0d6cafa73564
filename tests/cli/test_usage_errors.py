"""Usage mistakes on every registered command end as the framework's usage message, never a traceback.

The command tree is walked from the app itself, so a command added later is covered without editing this file.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer

from aimc.cli.app import _register_commands, app, main
from aimc.core.errors import AimcError


def _tree() -> list[tuple[list[str], Any]]:
    """(argv path, click command) for every group and command under the root, root included."""
    _register_commands()
    root = typer.main.get_command(app)
    out: list[tuple[list[str], Any]] = []

    def walk(path: list[str], cmd: Any) -> None:
        out.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk([*path, name], sub)

    walk([], root)
    return out


TREE = _tree()
GROUPS = [p for p, c in TREE if hasattr(c, "commands")]
LEAVES = [p for p, c in TREE if not hasattr(c, "commands")]
REQUIRED = [p for p, c in TREE if not hasattr(c, "commands") and any(x.required for x in c.params)]


def _ids(paths: list[list[str]]) -> list[str]:
    return [" ".join(p) or "aimc" for p in paths]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def _assert_usage_error(code: int, text: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, text
    assert "Usage:" in text


def test_the_tree_is_the_real_one() -> None:
    """Guard against walking an empty app: the known verbs and nested commands are all there."""
    names = {" ".join(p) for p in LEAVES}
    assert {"collect", "play", "pipeline", "train policy", "train prior", "eval tasks", "convert vpt"} <= names
    assert [] in GROUPS and ["train"] in GROUPS and ["eval"] in GROUPS
    assert ["play"] in REQUIRED


@pytest.mark.parametrize("path", [p for p, _ in TREE], ids=_ids([p for p, _ in TREE]))
def test_unknown_option(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run([*path, "--no-such-option-xyz"], capsys)
    _assert_usage_error(code, text)
    assert "--no-such-option-xyz" in text


@pytest.mark.parametrize("path", REQUIRED, ids=_ids(REQUIRED))
def test_missing_required_parameter(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(path, capsys)
    _assert_usage_error(code, text)
    assert "Missing" in text


@pytest.mark.parametrize("path", GROUPS, ids=_ids(GROUPS))
def test_unknown_subcommand(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run([*path, "colect"], capsys)
    _assert_usage_error(code, text)
    assert "No such command" in text


def test_expected_errors_and_interrupts_keep_their_line_and_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import aimc.cli.play as play_cli

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AimcError("bundle nowhere has no bundle.json")

    monkeypatch.setattr(play_cli, "play", boom, raising=False)
    monkeypatch.setattr("aimc.eval.play.play", boom)
    code, text = _run(["play", "chop a tree", "--checkpoint", "nowhere"], capsys)
    assert code == 2 and "Traceback" not in text
    assert [line for line in text.splitlines() if line.startswith("error:")], text

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(play_cli, "play", interrupted, raising=False)
    monkeypatch.setattr("aimc.eval.play.play", interrupted)
    code, text = _run(["play", "chop a tree", "--checkpoint", "nowhere"], capsys)
    assert code == 130 and "interrupted" in text and "Traceback" not in text


def test_console_entry_point_exit_code() -> None:
    """The real process (as a user runs it): usage message on stderr, exit status 2."""
    proc = subprocess.run([sys.executable, "-m", "aimc", "colect"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Error: No such command 'colect'" in proc.stderr and "Traceback" not in proc.stderr
