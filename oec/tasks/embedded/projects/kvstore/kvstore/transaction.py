"""Transactions: buffer writes, then apply them all at once or not at all.

Writes made in a transaction are invisible to other readers until ``commit()``,
while reads through the transaction see its own pending writes. As a context
manager a transaction commits when the block ends normally and rolls back when
it raises; the exception still propagates.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvstore.store import Store


class TransactionError(RuntimeError):
    """A transaction was used after it was committed or rolled back."""


@dataclass
class _Write:
    value: Any = None
    ttl: float | None = None
    deleted: bool = False


class Transaction:
    """A batch of pending writes against one store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._writes: dict[str, _Write] = {}
        self._open = True

    @property
    def pending(self) -> int:
        return len(self._writes)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._check_open()
        # Validate now so that commit() cannot fail halfway through.
        self._store.check_write(key, ttl)
        self._writes[key] = _Write(value, ttl)

    def delete(self, key: str) -> None:
        self._check_open()
        self._writes[key] = _Write(deleted=True)

    def get(self, key: str, default: Any = None) -> Any:
        self._check_open()
        if key in self._writes:
            pending = self._writes[key]
            return default if pending.deleted else pending.value
        return self._store.get(key, default)

    def commit(self) -> None:
        self._check_open()
        self._open = False
        for key, write in self._writes.items():
            if write.deleted:
                self._store.delete(key)
            else:
                self._store.set(key, write.value, ttl=write.ttl)
        self._writes.clear()

    def rollback(self) -> None:
        self._check_open()
        self._open = False
        self._writes.clear()

    def _check_open(self) -> None:
        if not self._open:
            raise TransactionError("transaction already committed or rolled back")

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if not self._open:
            # Already committed or rolled back inside the block.
            return False
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False
