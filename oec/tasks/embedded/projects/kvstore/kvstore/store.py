"""The key-value store: values with optional TTL on an injectable clock, an optional capacity.

Expired entries are dropped lazily, when a key is touched, and in bulk by
``purge_expired()``; nothing runs in the background, which keeps the store
deterministic under a ManualClock.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvstore.clock import Clock, SystemClock
from kvstore.keys import Namespace
from kvstore.lru import LRUCache
from kvstore.query import Query
from kvstore.stats import Stats
from kvstore.transaction import Transaction


@dataclass
class Entry:
    """A stored value and the clock reading at which it expires (None: never)."""

    value: Any
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"keys must be non-empty strings, got {key!r}")


def check_ttl(ttl: object) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")


class Store:
    """An in-memory key-value store.

    ``default_ttl`` applies to ``set`` calls that give no ttl; ``capacity`` bounds the
    number of entries, evicting the least recently read or written key.
    """

    def __init__(
        self, *, clock: Clock | None = None, capacity: int | None = None, default_ttl: float | None = None
    ) -> None:
        if default_ttl is not None:
            check_ttl(default_ttl)
        self.clock = clock or SystemClock()
        self.default_ttl = default_ttl
        self.stats = Stats()
        self._entries: LRUCache[str, Entry] = LRUCache(capacity, on_evict=self._count_eviction)

    def check_write(self, key: str, ttl: float | None = None) -> None:
        """Raise ValueError if ``set(key, value, ttl)`` would be refused."""
        check_key(key)
        if ttl is not None:
            check_ttl(ttl)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        ttl = self.default_ttl if ttl is None else ttl
        self.check_write(key, ttl)
        self.put_entry(key, Entry(value, None if ttl is None else self.clock.now() + ttl))
        self.stats.sets += 1

    def put_entry(self, key: str, entry: Entry) -> None:
        """Store an entry as is (no default ttl, no stats): for restoring saved state."""
        if key not in self._entries and self._entries.full():
            # Dead entries go first, so a live one is only evicted when nothing else can make room.
            self.purge_expired()
        self._entries.put(key, entry)

    def entry(self, key: str) -> Entry | None:
        """The live entry under key, without counting a lookup or refreshing its recency."""
        return self._live(key, touch=False)

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._live(key, touch=True)
        if entry is None:
            self.stats.misses += 1
            return default
        self.stats.hits += 1
        return entry.value

    def delete(self, key: str) -> bool:
        """Remove key; False when there was no live entry to remove."""
        if self._live(key, touch=False) is None:
            return False
        self._entries.pop(key)
        self.stats.deletes += 1
        return True

    def ttl(self, key: str) -> float | None:
        """Seconds left before key expires, or None when it never does; KeyError when absent."""
        entry = self._require(key)
        return None if entry.expires_at is None else entry.expires_at - self.clock.now()

    def expire(self, key: str, ttl: float) -> None:
        """Make an existing key expire ``ttl`` seconds from now."""
        check_ttl(ttl)
        self._require(key).expires_at = self.clock.now() + ttl

    def persist(self, key: str) -> None:
        """Remove the expiry of an existing key."""
        self._require(key).expires_at = None

    def incr(self, key: str, amount: int = 1) -> int:
        """Add amount to an integer value, keeping its expiry; a missing key counts as 0."""
        entry = self._live(key, touch=True)
        if entry is None:
            self.set(key, amount)
            return amount
        if isinstance(entry.value, bool) or not isinstance(entry.value, int):
            raise TypeError(f"value under {key!r} is {type(entry.value).__name__}, not int")
        value = entry.value + amount
        self.put_entry(key, Entry(value, entry.expires_at))
        return value

    def entries(self, prefix: str = "") -> list[tuple[str, Entry]]:
        """Live entries whose key starts with prefix, sorted by key; reading them counts as no lookup."""
        now = self.clock.now()
        return sorted((k, e) for k, e in self._entries.items() if k.startswith(prefix) and not e.expired(now))

    def keys(self, prefix: str = "") -> list[str]:
        return [key for key, _ in self.entries(prefix)]

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        return [(key, entry.value) for key, entry in self.entries(prefix)]

    def find(self, query: str | Query, prefix: str = "") -> list[tuple[str, Any]]:
        """Items under prefix whose value is a mapping matching the query."""
        query = Query(query) if isinstance(query, str) else query
        return [(k, v) for k, v in self.items(prefix) if isinstance(v, Mapping) and query.matches(v)]

    def purge_expired(self) -> int:
        now = self.clock.now()
        dead = [key for key, entry in self._entries.items() if entry.expired(now)]
        for key in dead:
            self._entries.pop(key)
        self.stats.expirations += len(dead)
        return len(dead)

    def resize(self, capacity: int | None) -> None:
        self.purge_expired()
        self._entries.resize(capacity)

    def clear(self) -> None:
        self._entries.clear()

    def namespace(self, name: str) -> Namespace:
        return Namespace(self, name)

    def transaction(self) -> Transaction:
        return Transaction(self)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._live(key, touch=False) is not None

    def __len__(self) -> int:
        self.purge_expired()
        return len(self._entries)

    def _live(self, key: str, *, touch: bool) -> Entry | None:
        entry = self._entries.get(key) if touch else self._entries.peek(key)
        if entry is None:
            return None
        if entry.expired(self.clock.now()):
            self._entries.pop(key)
            self.stats.expirations += 1
            return None
        return entry

    def _require(self, key: str) -> Entry:
        entry = self._live(key, touch=False)
        if entry is None:
            raise KeyError(key)
        return entry

    def _count_eviction(self, key: str, entry: Entry) -> None:
        self.stats.evictions += 1
