"""The README's main command (`aimc play ...` with the shipped agent) works offline on a fresh clone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from aimc.cli.app import main
from aimc.core.video import count_frames

ROOT = Path(__file__).resolve().parents[2]


def _main_command() -> list[str]:
    head = (ROOT / "README.md").read_text().split("## ", 1)[0]
    first = re.findall(r"```bash\n(.*?)```", head, re.S)[0].strip()
    aimc_part = first.split("&&")[-1].strip()
    argv = shlex.split(aimc_part)
    assert argv[0] == "aimc"
    return argv[1:]


def test_readme_main_command_plays_the_shipped_agent(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = _main_command()
    assert argv[0] == "play"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{argv[1]}: ") and "wrote play.mp4" in out
    assert count_frames(tmp_path / "play.mp4") >= 1
