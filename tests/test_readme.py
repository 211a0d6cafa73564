"""The README's two fresh-machine commands stay at the top, and CI runs exactly the test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("## ", 1)[0]
    return [c.strip() for c in re.findall(r"```bash\n(.*?)```", head, re.S)]


def test_readme_has_exactly_two_commands_at_the_top():
    cmds = _commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    assert "pip install torch==2.13.0" in cmds[0] and "aimc " in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    assert _commands()[1] in (ROOT / ".ci" / "run").read_text()
