import pytest
from kvstore.lru import LRUCache


def test_put_get_and_pop():
    cache = LRUCache()
    cache.put("a", 1)
    assert cache.get("a") == 1
    assert cache.get("b", "dflt") == "dflt"
    assert cache.pop("a") == 1
    assert len(cache) == 0


def test_eviction_reports_to_callback():
    evicted = []
    cache = LRUCache(2, on_evict=lambda key, value: evicted.append((key, value)))
    for key in "abc":
        cache.put(key, key.upper())
    assert evicted == [("a", "A")]
    assert list(cache) == ["b", "c"]


def test_peek_does_not_count_as_use():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1
    cache.put("c", 3)
    assert "a" not in cache


def test_invalid_capacity():
    for capacity in [0, -3, 1.5]:
        with pytest.raises(ValueError, match="capacity"):
            LRUCache(capacity)
