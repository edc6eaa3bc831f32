"""The one registry mechanism: ``@REG.register("name")`` and lookup with a "did you mean"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from honing.errors import HoningError, did_you_mean


@dataclass(frozen=True)
class Entry:
    """A registered object and the metadata given at registration (e.g. ``tasks=...``)."""

    name: str
    obj: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Named objects of one kind (models, readers, …), looked up by recipe names."""

    def __init__(self, kind: str, error: type[HoningError] = HoningError):
        self.kind = kind
        self.error = error
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        def decorator(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, obj, meta)
            return obj

        return decorator

    def entry(self, name: str, key: str | None = None) -> Entry:
        """The entry called ``name``; an unknown name raises ``self.error`` naming ``key``."""
        try:
            return self._entries[name]
        except KeyError:
            where = f"{key}: " if key else ""
            raise self.error(
                f"{where}unknown {self.kind} '{name}'", did_you_mean(name, self._entries)
            ) from None

    def get(self, name: str, key: str | None = None) -> Any:
        return self.entry(name, key).obj

    def names(self, **meta_filter: Any) -> list[str]:
        """Registered names, optionally only those whose metadata contains every given value."""
        out = []
        for name, e in self._entries.items():
            if all(v in _as_tuple(e.meta.get(k)) for k, v in meta_filter.items()):
                out.append(name)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else (value,)
