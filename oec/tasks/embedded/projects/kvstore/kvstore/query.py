"""A tiny filter language over dict records.

    age >= 30 and (city == "Oslo" or tags ~ "vip") and not banned == true

Comparisons are ``== != < <= > >=`` and ``~`` (contains: substring of a string,
member of a list). Fields may be dotted paths into nested dicts. Values are
numbers, double-quoted strings, ``true``, ``false`` and ``null``; keywords are
case-insensitive. ``not`` binds tighter than ``and``, which binds tighter than
``or``. A missing field, or values that cannot be ordered against each other,
make a comparison false instead of raising, so one odd record cannot break a scan.
"""

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]


class QuerySyntaxError(ValueError):
    """The query text does not parse; the message gives the position."""


_TOKEN = re.compile(
    r"""
    (?P<number>-?\d+(?:\.\d+)?)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<op>==|!=|<=|>=|<|>|~)
    |(?P<paren>[()])
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_CONSTANTS = {"true": True, "false": False, "null": None}
# Higher binds tighter; parsed by precedence climbing.
_BINARY_POWER = {"or": 1, "and": 2}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MISSING = object()


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return tokens
        match = _TOKEN.match(text, pos)
        if match is None:
            raise QuerySyntaxError(f"unexpected character {text[pos]!r} at position {pos}")
        kind, word = match.lastgroup or "", match.group()
        if kind == "name" and word.lower() in _KEYWORDS:
            kind, word = "keyword", word.lower()
        tokens.append(Token(kind, word, pos))
        pos = match.end()


def _lookup(record: Record, path: list[str]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "~":
        if isinstance(actual, str):
            return isinstance(expected, str) and expected in actual
        return isinstance(actual, list | tuple) and expected in actual
    # bool is an int subclass in Python, but in a query true is not 1.
    if isinstance(actual, bool) != isinstance(expected, bool):
        return op == "!="
    try:
        return _OPS[op](actual, expected)
    except TypeError:
        return False


def _comparison(path: list[str], op: str, expected: Any) -> Predicate:
    def predicate(record: Record) -> bool:
        actual = _lookup(record, path)
        return actual is not _MISSING and _compare(op, actual, expected)

    return predicate


def _combine(keyword: str, left: Predicate, right: Predicate) -> Predicate:
    if keyword == "and":
        return lambda record: left(record) and right(record)
    return lambda record: left(record) or right(record)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def parse(self) -> Predicate:
        if not self.tokens:
            raise QuerySyntaxError("empty query")
        predicate = self._expression(1)
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            raise QuerySyntaxError(f"unexpected {token.text!r} at position {token.pos}")
        return predicate

    def _peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self, expected: str) -> Token:
        token = self._peek()
        if token is None:
            raise QuerySyntaxError(f"expected {expected} at end of query")
        self.index += 1
        return token

    def _expect(self, kind: str, expected: str, text: str | None = None) -> Token:
        token = self._next(expected)
        if token.kind != kind or (text is not None and token.text != text):
            raise QuerySyntaxError(f"expected {expected} at position {token.pos}, got {token.text!r}")
        return token

    def _expression(self, min_power: int) -> Predicate:
        left = self._unary()
        while (token := self._peek()) is not None and token.kind == "keyword":
            power = _BINARY_POWER.get(token.text)
            if power is None or power < min_power:
                break
            self.index += 1
            left = _combine(token.text, left, self._expression(power + 1))
        return left

    def _unary(self) -> Predicate:
        token = self._peek()
        if token is not None and token.kind == "keyword" and token.text == "not":
            self.index += 1
            inner = self._unary()
            return lambda record: not inner(record)
        if token is not None and token.kind == "paren" and token.text == "(":
            self.index += 1
            inner = self._expression(1)
            self._expect("paren", "')'", ")")
            return inner
        field = self._expect("name", "a field name")
        op = self._expect("op", "a comparison operator")
        return _comparison(field.text.split("."), op.text, self._literal())

    def _literal(self) -> Any:
        token = self._next("a value")
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "keyword" and token.text in _CONSTANTS:
            return _CONSTANTS[token.text]
        raise QuerySyntaxError(f"expected a value at position {token.pos}, got {token.text!r}")


class Query:
    """A compiled filter; ``Query(text)`` raises QuerySyntaxError for bad text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._predicate = _Parser(text).parse()

    def matches(self, record: Record) -> bool:
        return self._predicate(record)

    def filter(self, records: Iterable[Record]) -> list[Record]:
        return [record for record in records if self.matches(record)]
