"""Name -> implementation registries, so every stage is selected by a string and a typo lists the choices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from aimc.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small mapping from names to factories (classes or functions) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register `obj` under `name`; registering a name twice is a programming error."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that register a throw-away entry undo it, so registrations never leak)."""
        if name not in self._items:
            raise UnknownNameError(f"{self.kind} {name!r} is not registered")
        del self._items[name]

    def get(self, name: str) -> T:
        if name not in self._items:
            choices = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {choices}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
