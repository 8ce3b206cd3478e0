import pytest
from kvstore import ManualClock, Store


def make_store(**kwargs):
    clock = ManualClock(1000.0)
    return clock, Store(clock=clock, **kwargs)


def test_set_and_get():
    _, store = make_store()
    store.set("a", {"x": 1})
    assert store.get("a") == {"x": 1}
    assert "a" in store


def test_missing_key_returns_default():
    _, store = make_store()
    assert store.get("nope") is None
    assert store.get("nope", 42) == 42


def test_key_expires_after_ttl():
    clock, store = make_store()
    store.set("a", 1, ttl=10)
    clock.advance(9)
    assert store.get("a") == 1
    clock.advance(2)
    assert store.get("a") is None
    assert "a" not in store


def test_default_ttl_applies_when_none_given():
    clock, store = make_store(default_ttl=5)
    store.set("a", 1)
    store.set("b", 2, ttl=50)
    clock.advance(6)
    assert store.keys() == ["b"]


def test_ttl_expire_and_persist():
    clock, store = make_store()
    store.set("a", 1)
    assert store.ttl("a") is None
    store.expire("a", 30)
    clock.advance(10)
    assert store.ttl("a") == 20
    store.persist("a")
    clock.advance(100)
    assert store.get("a") == 1
    with pytest.raises(KeyError):
        store.ttl("missing")


def test_invalid_ttl_is_rejected():
    _, store = make_store()
    for ttl in [0, -1, "10", True]:
        with pytest.raises(ValueError, match="ttl"):
            store.set("a", 1, ttl=ttl)


def test_delete():
    _, store = make_store()
    store.set("a", 1)
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None


def test_incr_counts_from_zero_and_rejects_non_integers():
    _, store = make_store()
    assert store.incr("n") == 1
    assert store.incr("n", 5) == 6
    store.set("s", "text")
    with pytest.raises(TypeError, match="'s'"):
        store.incr("s")


def test_capacity_evicts_oldest_key():
    _, store = make_store(capacity=2)
    store.set("a", 1)
    store.set("b", 2)
    store.set("c", 3)
    assert store.keys() == ["b", "c"]


def test_keys_are_sorted_and_filtered_by_prefix():
    _, store = make_store()
    for key in ["b:2", "a:1", "b:1"]:
        store.set(key, 0)
    assert store.keys() == ["a:1", "b:1", "b:2"]
    assert store.keys("b:") == ["b:1", "b:2"]


def test_purge_expired_returns_count():
    clock, store = make_store()
    store.set("a", 1, ttl=1)
    store.set("b", 2, ttl=1)
    store.set("c", 3)
    clock.advance(5)
    assert store.purge_expired() == 2
    assert len(store) == 1
