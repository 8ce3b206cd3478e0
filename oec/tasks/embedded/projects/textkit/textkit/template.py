"""A tiny template engine: ``{{ path | filter:"arg" }}`` substitutions with optional HTML escaping.

Deliberately small (no loops or conditionals): it fills notification texts, file names and report
headers from a context mapping. Paths are dotted and walk through mappings (by key), sequences (by
integer index) and objects (by attribute), in that order of preference.
"""

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_EXPRESSION = re.compile(r'\s*([A-Za-z_][\w.]*)\s*((?:\|\s*\w+\s*(?::\s*"[^"]*"\s*)?)*)')
_FILTER_CALL = re.compile(r'\|\s*(\w+)\s*(?::\s*"([^"]*)")?')
_MISSING = object()


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; the message names the offending tag or path."""


class Markup(str):
    """Text already safe for HTML: autoescaping leaves it untouched."""


def _default(value: object, fallback: str = "") -> object:
    return fallback if value is None else value


def _join(value: object, separator: str = ", ") -> str:
    return separator.join(str(item) for item in value)  # type: ignore[attr-defined]


def _truncate(value: object, length: str = "20") -> str:
    text = str(value)
    limit = int(length)
    return text if len(text) <= limit else text[: limit - 1] + "…"


FILTERS: dict[str, Callable[..., object]] = {
    "upper": lambda value: str(value).upper(),
    "lower": lambda value: str(value).lower(),
    "title": lambda value: str(value).title(),
    "trim": lambda value: str(value).strip(),
    "length": len,
    "default": _default,
    "join": _join,
    "truncate": _truncate,
    "safe": lambda value: Markup(value),
}


@dataclass(frozen=True)
class _Substitution:
    tag: str
    path: str
    filters: tuple[tuple[str, tuple[str, ...]], ...]


def _lookup(context: Mapping[str, object], path: str) -> object:
    value: object = context
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        else:
            value = getattr(value, part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _compile_tag(body: str, tag: str, filters: Mapping[str, Callable[..., object]]) -> _Substitution:
    match = _EXPRESSION.fullmatch(body)
    if match is None:
        raise TemplateError(f"invalid tag {tag!r}")
    calls = []
    for name, argument in _FILTER_CALL.findall(match.group(2)):
        if name not in filters:
            raise TemplateError(f"unknown filter {name!r} in tag {tag!r}")
        calls.append((name, (argument,) if argument else ()))
    return _Substitution(tag=tag, path=match.group(1), filters=tuple(calls))


class Template:
    """A compiled template; compile once, render many times with different contexts.

    ``strict`` makes an undefined path an error unless a ``default`` filter handles it; otherwise
    undefined paths render as empty text. ``autoescape`` HTML-escapes every substituted value
    except those passed through the ``safe`` filter.
    """

    def __init__(
        self,
        source: str,
        autoescape: bool = False,
        strict: bool = True,
        filters: Mapping[str, Callable[..., object]] | None = None,
    ) -> None:
        self.source = source
        self.autoescape = autoescape
        self.strict = strict
        self.filters = {**FILTERS, **(filters or {})}
        self._parts: list[str | _Substitution] = []
        position = 0
        for match in _TAG.finditer(source):
            self._parts.append(source[position : match.start()])
            self._parts.append(_compile_tag(match.group(1), match.group(0), self.filters))
            position = match.end()
        self._parts.append(source[position:])

    def render(self, context: Mapping[str, object]) -> str:
        """Substitute every tag from ``context``."""
        return "".join(
            part if isinstance(part, str) else self._substitute(part, context) for part in self._parts
        )

    def _substitute(self, substitution: _Substitution, context: Mapping[str, object]) -> str:
        value = _lookup(context, substitution.path)
        if value is _MISSING:
            handled = any(name == "default" for name, _ in substitution.filters)
            if self.strict and not handled:
                raise TemplateError(f"undefined variable {substitution.path!r} in tag {substitution.tag!r}")
            value = None
        for name, arguments in substitution.filters:
            try:
                value = self.filters[name](value, *arguments)
            except (TypeError, ValueError) as error:
                raise TemplateError(f"filter {name!r} failed in tag {substitution.tag!r}: {error}") from error
        if value is None:
            return ""
        if isinstance(value, Markup) or not self.autoescape:
            return str(value)
        return html.escape(str(value), quote=True)


def render(source: str, context: Mapping[str, object], **options: object) -> str:
    """Compile ``source`` and render it once; ``options`` are passed to :class:`Template`."""
    return Template(source, **options).render(context)  # type: ignore[arg-type]
