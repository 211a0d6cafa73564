"""One torch thread in these tests: tiny models gain nothing from more, and the 2 shared cores are contended."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (tests/conftest.py)."""
