"""aimc.serve: `aimc serve`, a web page to type an instruction and watch the agent follow it live.

    >>> from aimc.serve import ServeConfig, start_server
    >>> srv = start_server(ServeConfig(port=0))     # the shipped agent, in a background thread
    >>> srv.url                                     # open it in a browser; srv.stop() ends it

Names are imported on first use, so `aimc.serve.config` (checked by the CLI before anything loads) needs no
torch or FastAPI. Details: docs/serve.md.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    "ServeConfig": "aimc.serve.config",
    "Catalog": "aimc.serve.catalog",
    "AgentCache": "aimc.serve.agents",
    **dict.fromkeys(("GameSpec", "PanelSpec"), "aimc.serve.games"),
    "GameManager": "aimc.serve.manager",
    "create_app": "aimc.serve.app",
    **dict.fromkeys(("RunningServer", "run", "start_server"), "aimc.serve.server"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
