"""Running the app: `run(cfg)` for `aimc serve` (blocks until Ctrl-C), `start_server(cfg)` in a thread for tests
and the load benchmark.

The socket is bound here, before uvicorn starts, so a port in use is one `error:` line (uvicorn would log and
exit) and `--port 0` gets a real port to print.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aimc.core.errors import AimcError
from aimc.serve.config import ServeConfig

if TYPE_CHECKING:  # keeps `import aimc.serve.server` light (no torch, no FastAPI)
    from aimc.serve.manager import GameManager


def bind(cfg: ServeConfig) -> socket.socket:
    """A listening socket on cfg.host:cfg.port, or one clear error."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as e:
        sock.close()
        raise AimcError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror}; pass another --port (0 = any free)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}" if ":" not in shown else f"http://[{shown}]:{port}"


def _server(cfg: ServeConfig, manager: GameManager | None, preload: bool) -> tuple[object, GameManager]:
    import torch
    import uvicorn

    from aimc.serve.app import create_app
    from aimc.serve.manager import GameManager

    torch.set_num_threads(cfg.threads)
    manager = manager if manager is not None else GameManager(cfg)
    config = uvicorn.Config(create_app(manager, preload=preload), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    return uvicorn.Server(config), manager


def run(cfg: ServeConfig, echo: Callable[[str], None] = print) -> None:
    """Serve until interrupted (what `aimc serve` does)."""
    from aimc.serve.catalog import Catalog
    from aimc.serve.manager import GameManager

    manager = GameManager(cfg, Catalog(cfg))  # a bad checkpoint fails here, before the port is taken
    sock = bind(cfg)
    server, _ = _server(cfg, manager, preload=True)
    names = ", ".join(manager.catalog.names())
    echo(f"serving {url_of(sock)} (checkpoints: {names}; up to {cfg.max_games} games); Ctrl-C stops")
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"warning: listening on {cfg.host}: anyone who can reach this machine can start games on it")
    server.run(sockets=[sock])  # type: ignore[attr-defined]


@dataclass
class RunningServer:
    """A server in a background thread: `url`, `manager`, `stop()`."""

    url: str
    manager: GameManager
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=30)


def start_server(cfg: ServeConfig, manager: GameManager | None = None, preload: bool = True,
                 timeout: float = 60.0) -> RunningServer:
    """Start a server in a thread (port from cfg; 0 = any free) and return once it accepts connections."""
    sock = bind(cfg)
    server, manager = _server(cfg, manager, preload)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="aimc-serve", daemon=True)  # type: ignore[attr-defined]
    thread.start()
    deadline = time.monotonic() + timeout
    while not getattr(server, "started", False):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AimcError(f"the server did not start within {timeout:g} s")
        time.sleep(0.05)
    return RunningServer(url_of(sock), manager, server, thread)
