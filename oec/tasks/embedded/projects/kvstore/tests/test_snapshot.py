import json

import pytest
from kvstore import ManualClock, SnapshotError, Store, dump, load


def test_roundtrip_keeps_values_and_ttls():
    source = Store(clock=ManualClock())
    source.set("user", {"name": "ann", "tags": ["a"]})
    source.set("token", "t", ttl=60)
    target = Store(clock=ManualClock())
    assert load(target, dump(source)) == 2
    assert target.get("user") == {"name": "ann", "tags": ["a"]}
    assert target.ttl("token") == 60
    assert target.ttl("user") is None


def test_dump_skips_expired_entries():
    clock = ManualClock()
    store = Store(clock=clock)
    store.set("old", 1, ttl=1)
    store.set("new", 2)
    clock.advance(2)
    assert [entry["key"] for entry in json.loads(dump(store))["entries"]] == ["new"]


def test_unserialisable_value_names_the_key():
    store = Store(clock=ManualClock())
    store.set("bad", {1, 2})
    with pytest.raises(SnapshotError, match="'bad'"):
        dump(store)


def test_load_rejects_bad_snapshots():
    store = Store(clock=ManualClock())
    store.set("keep", 1)
    cases = {
        "not json": "not valid JSON",
        '{"version": 9, "entries": []}': "version 9",
        '{"version": 1, "entries": [{"key": "a"}]}': "entry 0",
        '{"version": 1, "entries": [{"key": "a", "value": 1, "ttl": "x"}]}': "'ttl'",
    }
    for text, message in cases.items():
        with pytest.raises(SnapshotError, match=message):
            load(store, text)
    assert store.get("keep") == 1


def test_load_replaces_unless_told_to_merge():
    snapshot = dump(Store(clock=ManualClock()))
    store = Store(clock=ManualClock())
    store.set("a", 1)
    load(store, snapshot, replace=False)
    assert store.keys() == ["a"]
    load(store, snapshot)
    assert store.keys() == []
