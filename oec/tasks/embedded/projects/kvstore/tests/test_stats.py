from dataclasses import replace

from kvstore import ManualClock, Stats, Store


def test_hit_ratio():
    assert Stats().hit_ratio == 0.0
    assert Stats(hits=3, misses=1).hit_ratio == 0.75


def test_store_counts_operations():
    clock = ManualClock()
    store = Store(clock=clock, capacity=2)
    store.set("a", 1, ttl=5)
    store.get("a")
    store.get("b")
    clock.advance(10)
    store.get("a")
    store.set("b", 1)
    store.set("c", 1)
    store.set("d", 1)
    store.delete("d")
    assert store.stats.as_dict() == {
        "hits": 1,
        "misses": 2,
        "sets": 4,
        "deletes": 1,
        "expirations": 1,
        "evictions": 1,
        "hit_ratio": 1 / 3,
    }


def test_reset_and_copy():
    stats = Stats(hits=2, evictions=1)
    before = replace(stats)
    stats.reset()
    assert stats == Stats()
    assert before.hits == 2
