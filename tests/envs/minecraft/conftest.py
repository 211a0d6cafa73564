"""Fixtures for the Minecraft world's offline tests: the simulator packages replaced by replaying doubles."""

from __future__ import annotations

import pytest

from tests.envs.minecraft import fakes


@pytest.fixture
def games(monkeypatch, tmp_path):
    """Both simulator packages as doubles (MineStudio's game download present); (minerl log, minestudio log)."""
    return fakes.install(monkeypatch, tmp_path / "minestudio")
