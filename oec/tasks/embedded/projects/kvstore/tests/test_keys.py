import pytest
from kvstore import ManualClock, Store
from kvstore.keys import make_key, split_key


def test_make_and_split_key():
    assert make_key("users", "42") == "users:42"
    assert split_key("users:42") == ("users", "42")
    assert split_key("plain") == (None, "plain")


def test_invalid_namespace_is_rejected():
    for name in ["", "  ", "a:b", None]:
        with pytest.raises(ValueError, match="namespace"):
            make_key(name, "k")


def test_namespace_view():
    store = Store(clock=ManualClock())
    users = store.namespace("users")
    users.set("2", {"name": "bob"})
    users.set("1", {"name": "ann"})
    store.set("other", 1)
    assert users.keys() == ["1", "2"]
    assert users.get("1") == {"name": "ann"}
    assert "2" in users
    assert store.get("users:2") == {"name": "bob"}
    assert users.find('name == "bob"') == [("2", {"name": "bob"})]
    assert users.delete("2") is True
    assert users.keys() == ["1"]
