"""The one name -> factory registry of the kit.

Every catalogue of the kit is a :class:`Registry`: datasets, transforms, backbones, heads, hashing
objectives, distillers, mask rules, shallow hashers and profiles. An entry is a factory (a
function or a class) plus free-form metadata (a backbone's ``family``, a distiller's display
``label`` and ``family``, ...). Lists that other code needs (the methods of a grid, the order of a
table, the parametrisation of a test) are derived from a registry, never written out again.

Registering a name twice with a different factory is an error; asking for an unknown name raises
``ValueError`` listing the valid names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registered factory and its metadata."""

    name: str
    factory: Callable[..., Any]
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[F]):
    """Name -> factory mapping with a ``register`` decorator.

    ``kind`` names what is registered ("backbone", "distiller", ...) and appears in error
    messages. Entries keep their registration order (:meth:`entries`); :meth:`names` is sorted.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta: Any) -> Callable[[F], F]:
        """Decorator: register ``factory`` under ``name`` with metadata ``meta``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def deco(factory: F) -> F:
            self.add(name, factory, **meta)
            return factory

        return deco

    def add(self, name: str, factory: Callable[..., Any], **meta: Any) -> None:
        """Register ``factory`` under ``name`` (the non-decorator form of :meth:`register`)."""
        old = self._entries.get(name)
        if old is not None and old.factory is not factory:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name=name, factory=factory, meta=dict(meta))

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests that register a toy entry clean up with it)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; ``ValueError`` listing the valid names when unknown."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``."""
        return self.entry(name).factory

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata registered with ``name``."""
        return self.entry(name).meta

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered under ``name``."""
        return self.entry(name).factory(*args, **kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        """Registered entries in registration order."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def import_submodules(package: str) -> list[str]:
    """Import every module of ``package`` (not sub-packages), so that a new file that registers
    itself (a dataset, a distiller) needs no import line elsewhere. Returns the module names
    imported, sorted; modules already imported are skipped by Python's import cache."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.ispkg)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
