"""A mapping with an optional capacity that evicts the least recently used key.

The store keeps its entries in an LRUCache so a size limit needs no separate
bookkeeping. ``get`` counts as a use, ``peek`` does not; ``capacity=None`` means
unbounded.
"""

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def _check_capacity(capacity: int | None) -> None:
    if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
        raise ValueError(f"capacity must be a positive integer or None, got {capacity!r}")


class LRUCache(Generic[K, V]):
    """Ordered from least to most recently used; ``on_evict(key, value)`` hears about evictions."""

    def __init__(self, capacity: int | None = None, on_evict: Callable[[K, V], None] | None = None) -> None:
        _check_capacity(capacity)
        self._capacity = capacity
        self._on_evict = on_evict
        self._data: OrderedDict[K, V] = OrderedDict()

    @property
    def capacity(self) -> int | None:
        return self._capacity

    def full(self) -> bool:
        return self._capacity is not None and len(self._data) >= self._capacity

    def get(self, key: K, default: V | None = None) -> V | None:
        if key not in self._data:
            return default
        self._data.move_to_end(key)
        return self._data[key]

    def peek(self, key: K, default: V | None = None) -> V | None:
        return self._data.get(key, default)

    def put(self, key: K, value: V) -> None:
        if key in self._data:
            self._data.move_to_end(key)
        elif self.full():
            self._evict_one()
        self._data[key] = value

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._data.pop(key, default)

    def resize(self, capacity: int | None) -> None:
        """Change the capacity, evicting least recently used keys until the cache fits."""
        _check_capacity(capacity)
        self._capacity = capacity
        while capacity is not None and len(self._data) > capacity:
            self._evict_one()

    def clear(self) -> None:
        self._data.clear()

    def items(self) -> list[tuple[K, V]]:
        return list(self._data.items())

    def _evict_one(self) -> None:
        key, value = self._data.popitem(last=False)
        if self._on_evict is not None:
            self._on_evict(key, value)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)
