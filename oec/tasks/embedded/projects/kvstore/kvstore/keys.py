"""Namespaced keys (``namespace:key``) and a Namespace view over a store.

Namespaces are a naming convention, not separate storage: one capacity limit and
one set of stats cover the whole store. A namespace name never contains the
separator, a key inside a namespace may.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvstore.query import Query
    from kvstore.store import Store

SEPARATOR = ":"


def check_namespace(name: object) -> None:
    if not isinstance(name, str) or not name.strip() or SEPARATOR in name:
        raise ValueError(f"namespace must be a non-empty string without {SEPARATOR!r}, got {name!r}")


def make_key(namespace: str, key: str) -> str:
    check_namespace(namespace)
    if not isinstance(key, str) or not key:
        raise ValueError(f"keys must be non-empty strings, got {key!r}")
    return f"{namespace}{SEPARATOR}{key}"


def split_key(full: str) -> tuple[str | None, str]:
    """Split a full key into (namespace, key); (None, full) when it has no namespace."""
    namespace, sep, key = full.partition(SEPARATOR)
    if not sep:
        return None, full
    return namespace, key


class Namespace:
    """The keys of one namespace, addressed without their prefix."""

    def __init__(self, store: Store, name: str) -> None:
        check_namespace(name)
        self.store = store
        self.name = name

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.store.set(make_key(self.name, key), value, ttl=ttl)

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get(make_key(self.name, key), default)

    def delete(self, key: str) -> bool:
        return self.store.delete(make_key(self.name, key))

    def keys(self) -> list[str]:
        return [split_key(full)[1] for full in self.store.keys(self._prefix())]

    def find(self, query: str | Query) -> list[tuple[str, Any]]:
        return [(split_key(full)[1], value) for full, value in self.store.find(query, self._prefix())]

    def clear(self) -> int:
        """Delete every key of this namespace; returns how many were deleted."""
        return sum(self.store.delete(full) for full in self.store.keys(self._prefix()))

    def _prefix(self) -> str:
        return self.name + SEPARATOR

    def __contains__(self, key: str) -> bool:
        return make_key(self.name, key) in self.store
