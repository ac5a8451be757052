"""A small name -> factory registry shared by backbones, heads and hashing objectives.

Each registry maps a name to a factory plus free-form metadata (a backbone's ``family`` and
``role_hint``, for example). Registering a name twice with a different factory is an error; asking
for an unknown name raises ``ValueError`` listing the valid names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registered factory and its metadata."""

    name: str
    factory: Callable[..., Any]
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[F]):
    """Name -> factory mapping with a ``register`` decorator.

    ``kind`` names what is registered ("backbone", "head", ...) and appears in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta: Any) -> Callable[[F], F]:
        """Decorator: register ``factory`` under ``name`` with metadata ``meta``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def deco(factory: F) -> F:
            old = self._entries.get(name)
            if old is not None and old.factory is not factory:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name=name, factory=factory, meta=dict(meta))
            return factory

        return deco

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; ``ValueError`` listing the valid names when unknown."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered under ``name``."""
        return self.entry(name).factory(*args, **kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
