"""Fixtures for `aimc serve` tests: the shipped agent loaded once per session, servers on free ports, and small
HTTP helpers (stdlib only, so the server tests need no extra client package)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

WAIT_S = 240.0
"""Generous: the tests share 2 cores with other work; they poll for conditions and never assert a time."""


@pytest.fixture(scope="session")
def agents():
    """One `AgentCache` with the shipped agent loaded (the slow part), shared by every server in the session."""
    import torch

    from aimc.eval.play import shipped_bundle
    from aimc.serve.agents import AgentCache

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cache = AgentCache()
    cache.get(shipped_bundle())
    yield cache
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def make_server(agents) -> Iterator[Callable[..., Any]]:
    """`make_server(**ServeConfig fields)` -> a running server on a free port (stopped at the end of the session)."""
    from aimc.serve import GameManager, ServeConfig, start_server

    running = []

    def make(**fields: Any) -> Any:
        cfg = ServeConfig(**{"port": 0, "threads": 1, **fields})
        srv = start_server(cfg, GameManager(cfg, agents=agents), preload=False)
        running.append(srv)
        return srv

    yield make
    for srv in running:
        srv.stop()


def call(url: str, method: str = "GET", body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """(status, parsed JSON) of one request; error statuses are returned, not raised."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=WAIT_S) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll `condition` until it returns something truthy (returned), failing with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def read_stream(url: str, until: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S) -> list[dict[str, Any]]:
    """The SSE messages of a game stream up to (and including) the first for which `until` is true."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(url, timeout=timeout) as r:
        for line in r:
            if line.startswith(b"data:"):
                messages.append(json.loads(line[5:]))
                if until(messages[-1]):
                    return messages
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"stream {url} ended or timed out after {len(messages)} messages")
