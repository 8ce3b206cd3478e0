"""Snapshot a store to JSON text and restore it.

Expiry is saved as the seconds *remaining*, not as a clock reading, so a snapshot
taken under one clock (say wall time) restores correctly under another (say a
ManualClock starting at 0). Values must be JSON data; tuples come back as lists.
"""

import json
import math
from typing import Any

from kvstore.store import Entry, Store

FORMAT_VERSION = 1


class SnapshotError(ValueError):
    """A store cannot be saved, or a snapshot cannot be read."""


def _check_value(key: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise SnapshotError(f"value of key {key!r} is not JSON data: {err}") from err


def dump(store: Store, *, indent: int | None = None) -> str:
    """The store's live entries as JSON text, sorted by key."""
    now = store.clock.now()
    records = []
    for key, entry in store.entries():
        _check_value(key, entry.value)
        ttl = None if entry.expires_at is None else entry.expires_at - now
        records.append({"key": key, "value": entry.value, "ttl": ttl})
    return json.dumps({"version": FORMAT_VERSION, "entries": records}, indent=indent, sort_keys=True)


def _parse_entry(index: int, raw: Any) -> tuple[str, Any, float | None]:
    if not isinstance(raw, dict) or not {"key", "value", "ttl"} <= raw.keys():
        raise SnapshotError(f"snapshot entry {index} must be an object with 'key', 'value' and 'ttl'")
    key, ttl = raw["key"], raw["ttl"]
    if not isinstance(key, str) or not key:
        raise SnapshotError(f"snapshot entry {index}: 'key' must be a non-empty string, got {key!r}")
    number = isinstance(ttl, int | float) and not isinstance(ttl, bool)
    valid_ttl = ttl is None or (number and math.isfinite(ttl))
    if not valid_ttl:
        raise SnapshotError(f"snapshot entry {index} ({key!r}): 'ttl' must be a number or null, got {ttl!r}")
    return key, raw["value"], ttl


def load(store: Store, text: str, *, replace: bool = True) -> int:
    """Restore a snapshot into store and return how many entries were restored.

    With ``replace`` (the default) the store is emptied first, so keys that are not
    in the snapshot do not linger. Entries whose time ran out are skipped. The
    snapshot is fully validated before the store is touched.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SnapshotError(f"snapshot is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise SnapshotError("snapshot must be a JSON object")
    if data.get("version") != FORMAT_VERSION:
        version = data.get("version")
        raise SnapshotError(f"unsupported snapshot version {version!r}, expected {FORMAT_VERSION}")
    if not isinstance(data.get("entries"), list):
        raise SnapshotError("snapshot field 'entries' must be a list")
    parsed = [_parse_entry(index, raw) for index, raw in enumerate(data["entries"])]
    if replace:
        store.clear()
    now = store.clock.now()
    restored = 0
    for key, value, ttl in parsed:
        if ttl is not None and ttl <= 0:
            continue
        store.put_entry(key, Entry(value, None if ttl is None else now + ttl))
        restored += 1
    return restored
