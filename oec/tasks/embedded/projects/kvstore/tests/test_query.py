import re

import pytest
from kvstore import ManualClock, Query, QuerySyntaxError, Store

PEOPLE = [
    {"name": "ann", "age": 31, "city": "Oslo", "tags": ["vip"], "address": {"zip": "0150"}},
    {"name": "bob", "age": 25, "city": "Bergen", "tags": []},
    {"name": "cy", "age": 40, "city": "Oslo", "tags": ["new"], "banned": True},
]


def names(text):
    return [record["name"] for record in Query(text).filter(PEOPLE)]


def test_comparisons():
    assert names("age >= 31") == ["ann", "cy"]
    assert names('city != "Oslo"') == ["bob"]
    assert names("age < 30") == ["bob"]


def test_boolean_operators_and_parentheses():
    assert names('city == "Oslo" and not (age > 35)') == ["ann"]
    assert names('name == "bob" or name == "cy"') == ["bob", "cy"]
    assert names('NOT city == "Oslo"') == ["bob"]


def test_contains_and_nested_fields():
    assert names('tags ~ "vip"') == ["ann"]
    assert names('name ~ "y"') == ["cy"]
    assert names('address.zip == "0150"') == ["ann"]


def test_missing_fields_and_mismatched_types_never_match():
    assert names("banned == true") == ["cy"]
    assert names('age > "x"') == []
    assert Query("x == null").matches({"x": None})
    assert not Query("x == null").matches({})


def test_escaped_quotes_in_strings():
    assert Query(r'text == "say \"hi\""').matches({"text": 'say "hi"'})


def test_syntax_errors_say_where():
    cases = {"age >": "end of query", "age = 3": "position 4", "(age > 3": "')'", "age > 3 age": "position 8"}
    for text, where in cases.items():
        with pytest.raises(QuerySyntaxError, match=re.escape(where)):
            Query(text)


def test_store_find_skips_non_mapping_values():
    store = Store(clock=ManualClock())
    for index, person in enumerate(PEOPLE):
        store.set(f"p{index}", person)
    store.set("counter", 3)
    assert [key for key, _ in store.find('city == "Oslo"')] == ["p0", "p2"]
