"""Typed configuration: frozen dataclasses built from YAML mappings.

Every stage keeps its config dataclass beside its code (``CatalogConfig`` in ``data/catalog.py``, ...);
this module holds the generic machinery: building a dataclass from a mapping with unknown keys and wrong
types rejected by name, dotted-path overrides, flattening for MLflow params, and stable hashing.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key and what was expected."""


def require(condition: bool, where: str, message: str) -> None:
    """Raise ConfigError(f"{where}: {message}") unless condition holds."""
    if not condition:
        raise ConfigError(f"{where}: {message}")


def build(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and ill-typed values fail naming the key."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(sorted(fields))}"
        )
    hints = _type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of a config class, resolved once per process (studies build hundreds)."""
    return typing.get_type_hints(cls)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        require(value in choices, where, f"got {value!r}; valid choices are: {', '.join(map(repr, choices))}")
        return value
    if origin in (tuple, list):
        require(isinstance(value, (list, tuple)), where, f"expected a list, got {value!r}")
        args = typing.get_args(hint)
        item_hint = args[0] if args else Any
        return tuple(_coerce(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or hint is dict:
        require(isinstance(value, Mapping), where, f"expected a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(hint, value, where)


def _coerce_scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        require(isinstance(value, bool), where, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), where, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str):  # YAML reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                ok = False
        require(ok, where, f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        require(isinstance(value, str), where, f"expected a string, got {value!r}")
        return value
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """A plain nested dict (tuples as lists) of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"a.b.c": value}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def override(data: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Apply {"a.b": value} updates to a nested mapping, returning a new nested dict."""
    result = json.loads(json.dumps(data))
    for path, value in updates.items():
        node = result
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: {part!r} is a value, not a section")
        node[leaf] = copy.deepcopy(value)  # later paths may descend into it: never into the caller's objects
    return result


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of JSON-serialisable parts, independent of dict order and process."""
    payload = json.dumps(parts, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {"__type__": type(value).__name__, **dataclasses.asdict(value)}
    raise TypeError(f"cannot hash {type(value).__name__}")


def import_object(path: str) -> Any:
    """The object named ``"package.module:Name"``, importing its module on first use (registries name model
    classes this way, so that parsing a config never imports torch)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
