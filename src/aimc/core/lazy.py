"""Lazy package exports: `from aimc.embed import make_embedder` without importing torch at `import aimc.embed`.

A stage package lists its interface as ``name -> module``; the module is imported on first access, so light
modules (configs) inside a heavy package can be imported on their own, e.g. to validate a pipeline config.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package` that resolve each name in `exports` from its module on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted({*importlib.import_module(package).__dict__, *exports})

    return __getattr__, __dir__
