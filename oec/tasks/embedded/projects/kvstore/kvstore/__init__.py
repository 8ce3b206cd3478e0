"""kvstore: a small in-memory key-value store.

Values can expire (TTL read from an injectable clock), the store can be bounded
(least recently used keys are evicted), keys can be grouped in namespaces, dict
values can be filtered with a tiny query language, writes can be batched in
transactions, and the whole store can be snapshotted to JSON.
"""

from kvstore.clock import ManualClock
from kvstore.keys import Namespace
from kvstore.query import Query, QuerySyntaxError
from kvstore.snapshot import SnapshotError, dump, load
from kvstore.stats import Stats
from kvstore.store import Store
from kvstore.transaction import Transaction, TransactionError

__all__ = [
    "ManualClock",
    "Namespace",
    "Query",
    "QuerySyntaxError",
    "SnapshotError",
    "Stats",
    "Store",
    "Transaction",
    "TransactionError",
    "dump",
    "load",
]
