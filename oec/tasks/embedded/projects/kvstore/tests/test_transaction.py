import pytest
from kvstore import ManualClock, Store, TransactionError


def make_store():
    store = Store(clock=ManualClock())
    store.set("a", 1)
    return store


def test_commit_applies_all_writes():
    store = make_store()
    with store.transaction() as tx:
        tx.set("b", 2)
        tx.delete("a")
        assert store.get("b") is None
        assert tx.pending == 2
    assert store.keys() == ["b"]


def test_rollback_discards_writes():
    store = make_store()
    tx = store.transaction()
    tx.set("a", 100)
    tx.rollback()
    assert store.get("a") == 1


def test_reads_see_pending_writes():
    store = make_store()
    tx = store.transaction()
    tx.set("a", 2)
    assert tx.get("a") == 2
    assert tx.get("zzz", "d") == "d"
    assert store.get("a") == 1


def test_invalid_write_is_refused_before_commit():
    store = make_store()
    tx = store.transaction()
    with pytest.raises(ValueError, match="ttl"):
        tx.set("b", 2, ttl=-1)


def test_finished_transaction_cannot_be_reused():
    store = make_store()
    tx = store.transaction()
    tx.commit()
    with pytest.raises(TransactionError):
        tx.set("b", 1)
