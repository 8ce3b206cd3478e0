"""Typed configs from Hydra/OmegaConf nodes, validated before any model or sandbox is touched.

Each component declares its own frozen dataclass (documented where its fields are declared) and
validates values in ``__post_init__``; this module turns a config node into that dataclass and
rejects unknown keys and wrongly typed values with an error naming the full config key, e.g.
``switch.schedule`` or ``student.max_new_tokens``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is unknown, missing or invalid; the message starts with its key."""


def to_container(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    return node


def _check_type(value: Any, hint: Any, key: str) -> None:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(hint))}")
        return
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                _check_type(value, option, key)
                return
            except ConfigError:
                pass
        raise ConfigError(f"{key}: {value!r} has the wrong type (expected {hint})")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return
    base = origin or hint
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if base is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(base, type) and not isinstance(value, base):
        raise ConfigError(f"{key}: expected {base.__name__}, got {type(value).__name__} {value!r}")


def parse(cls: type[T], node: Any, key: str) -> T:
    """Build dataclass ``cls`` from the config ``node`` found at ``key``."""
    try:
        data = to_container(node)
    except Exception as exc:  # OmegaConf raises MissingMandatoryValue, InterpolationResolutionError...
        raise ConfigError(f"{key}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key (known keys: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = parse(hint, value, f"{key}.{name}")
        else:
            _check_type(value, hint, f"{key}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    except ValueError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(key) else f"{key}: {message}") from exc
