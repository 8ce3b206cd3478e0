"""Typed configs from Hydra/OmegaConf nodes, validated before any model or sandbox is touched.

Each component declares its own frozen dataclass, documents each field where it is declared
(attribute docstrings) and puts a field's constraint on the field itself::

    max_calls: Annotated[int, AtLeast(1)] = 75

:func:`parse` turns a config node into that dataclass and is the only validation mechanism:

- unknown keys, wrong types, values outside a field's constraint and missing mandatory values
  (``???``) are errors;
- nested dataclasses, lists and tuples of them, ``dict[str, X]``, ``Literal``, unions and
  ``Optional`` are followed;
- a union of dataclasses is a choice of *variants*: each variant declares the same
  discriminator field typed as a one-value ``Literal`` (``backend: Literal["hf"] = "hf"``), the
  node's value of that key picks the variant, and a key that belongs to another variant is an
  error naming it;
- every error starts with the full key path where the value was mounted
  (``student.temperature: ...``, ``data.sources[1].arm: ...``).

Checks that relate several fields stay in ``__post_init__``: raise ``ValueError("field: ...")``
with the field's name and :func:`parse` prefixes the node's key.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

MISSING = "???"


class ConfigError(ValueError):
    """A config value is unknown, missing or invalid; the message starts with its key."""


@dataclass(frozen=True)
class AtLeast:
    """The value (when not null) is >= ``bound``."""

    bound: float

    def check(self, value: Any) -> str | None:
        return None if value >= self.bound else f"must be >= {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class Above:
    """The value (when not null) is > ``bound``."""

    bound: float

    def check(self, value: Any) -> str | None:
        return None if value > self.bound else f"must be > {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class AtMost:
    """The value (when not null) is <= ``bound``."""

    bound: float

    def check(self, value: Any) -> str | None:
        return None if value <= self.bound else f"must be <= {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class Below:
    """The value (when not null) is < ``bound``."""

    bound: float

    def check(self, value: Any) -> str | None:
        return None if value < self.bound else f"must be < {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class NonEmpty:
    """A string or list with at least one element."""

    def check(self, value: Any) -> str | None:
        return None if len(value) > 0 else "must not be empty"


Constraint = AtLeast | Above | AtMost | Below | NonEmpty


def to_container(node: Any, key: str = "config") -> Any:
    """Plain Python data of ``node``, interpolations resolved; missing values stay ``"???"``."""
    if not isinstance(node, DictConfig | ListConfig):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        where = getattr(exc, "full_key", None) or key
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}") from None


def parse(hint: type[T] | Any, node: Any, key: str) -> T:
    """Build ``hint`` (a config dataclass, or a union of variants) from the node mounted at ``key``."""
    return _convert(to_container(node, key), hint, key)


def _convert(value: Any, hint: Any, key: str) -> Any:
    if isinstance(value, str) and value == MISSING:
        raise ConfigError(f"{key}: missing mandatory value (set it, e.g. on the command line: {key}=...)")
    constraints: tuple[Constraint, ...] = ()
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extra = typing.get_args(hint)
        constraints = tuple(c for c in extra if isinstance(c, Constraint))
    value = _convert_plain(value, hint, key)
    if value is not None:
        for constraint in constraints:
            problem = constraint.check(value)
            if problem:
                raise ConfigError(f"{key}: {problem}")
    return value


def _convert_plain(value: Any, hint: Any, key: str) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, typing.get_args(hint), key)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if dataclasses.is_dataclass(hint):
        return _convert_dataclass(value, hint, key)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(
                _convert(v, h, f"{key}[{i}]") for i, (v, h) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        item = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        return {k: _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    return _check_scalar(value, hint, key)


def _check_scalar(value: Any, hint: type, key: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _convert_union(value: Any, options: tuple[Any, ...], key: str) -> Any:
    if value is None and type(None) in options:
        return None
    options = tuple(o for o in options if o is not type(None))
    variants = [o for o in options if dataclasses.is_dataclass(o)]
    if variants and len(variants) == len(options):
        return _convert_variant(value, tuple(variants), key)
    errors = []
    for option in options:
        try:
            return _convert(value, option, key)
        except ConfigError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise ConfigError(errors[0])
    names = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"{key}: {value!r} is not {names}")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return getattr(hint, "__name__", str(hint))


@functools.cache
def discriminator(variants: tuple[type, ...]) -> tuple[str, dict[str, type]]:
    """The field that tells ``variants`` apart and the variant of each of its values."""
    names = None
    for variant in variants:
        tags = {
            name
            for name, hint in typing.get_type_hints(variant).items()
            if typing.get_origin(hint) is typing.Literal and len(typing.get_args(hint)) == 1
        }
        names = tags if names is None else names & tags
    if not names or len(names) != 1:
        raise TypeError(f"variants {variants} need exactly one shared one-value Literal field")
    (name,) = names
    table = {typing.get_args(typing.get_type_hints(v)[name])[0]: v for v in variants}
    return name, table


def _convert_variant(value: Any, variants: tuple[type, ...], key: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
    name, table = discriminator(variants)
    if name not in value:
        raise ConfigError(f"{key}.{name}: missing; one of {sorted(table)}")
    variant = table.get(value[name])
    if variant is None:
        raise ConfigError(f"{key}.{name}: {value[name]!r} is not one of {sorted(table)}")
    for other_tag, other in table.items():
        if other is variant:
            continue
        foreign = sorted(set(value) - _field_names(variant) & _field_names(other))
        if foreign:
            raise ConfigError(
                f"{key}.{foreign[0]}: belongs to {name}={other_tag!r}, not to {name}={value[name]!r}"
            )
    return _convert_dataclass(value, variant, key)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _convert_dataclass(value: Any, cls: type, key: str) -> Any:
    if value is None:
        value = {}
    if dataclasses.is_dataclass(value) and isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = _field_names(cls)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key (known keys: {', '.join(sorted(known))})")
    kwargs = {name: _convert(v, hints[name], f"{key}.{name}") for name, v in value.items()}
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}: missing mandatory value")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{key}.{exc}") from None
