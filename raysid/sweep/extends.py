"""Studies as overrides of other studies: ``extends: PARENT`` and the lines that differ.

```yaml
extends: musicrec-ratio          # a study name (looked up beside this file first) or a path to a YAML file
name: musicrec-ablation          # never inherited: each study names its own results folder
description: ...                 # never inherited either
base:
  tokenizer: {shared_levels: 2}  # mappings merge key by key, at every depth
axes:
  ratio: !delete                 # removes the parent's key
  variant: {grid: {...}}         # a new key is added after the parent's keys
seeds: [0]                       # lists and scalars replace the parent's
```

The parent may extend another study in turn; a cycle or an unknown parent fails naming the file and the
key. ``!delete`` must name a key the parent has. This module reads YAML only: no config classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from raysid.config import ConfigError, require

EXTENDS = "extends"
NOT_INHERITED = ("name", "description")  # a child states its own (else it would write into its parent's folder)


class _Delete:
    """The value of ``!delete``: the key is removed from what the parent gives."""

    def __repr__(self) -> str:
        return "!delete"


DELETE = _Delete()


class StudyLoader(yaml.SafeLoader):
    """yaml.safe_load plus the ``!delete`` tag."""


StudyLoader.add_constructor("!delete", lambda loader, node: DELETE)
_TAG_BEFORE_FLOW_END = re.compile(r"!delete(?=[,\]}])")  # `{key: !delete}`, `[!delete]`


def _safe_load(text: str) -> Any:
    """What yaml.safe_load does, with StudyLoader (a SafeLoader: no Python objects are ever built)."""
    loader = StudyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """A study file's mapping; invalid YAML fails in one line naming the file and where."""
    text = _TAG_BEFORE_FLOW_END.sub("!delete ", Path(path).read_text())  # PyYAML needs a space after a tag
    try:
        return _safe_load(text) or {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML: {error.problem or error.context}{where}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None


def resolve_extends(data: Mapping[str, Any], source: str, find: Callable[[str], Path],
                    chain: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """``data`` merged over its ``extends`` chain, and the parent's file ("" without one).

    ``find(name)`` locates a study by name (it raises ConfigError listing the known ones); a name is looked
    up beside ``source`` first."""
    require(isinstance(data, Mapping), source, "expected a mapping at the top level")
    own = dict(data)
    parent = own.pop(EXTENDS, None)
    if parent is None:
        _no_deletes(own, source, "")
        return own, ""
    where = f"{source}: {EXTENDS}"
    require(isinstance(parent, str) and bool(parent.strip()), where, f"expected a study name, got {parent!r}")
    path = _parent_path(parent, source, find, where)
    seen = (*chain, _identity(source))
    require(_identity(str(path)) not in seen, where,
            f"{parent!r} makes a cycle: {' -> '.join(Path(s).name for s in (*seen, str(path)))}")
    inherited, _ = resolve_extends(read_yaml(path), str(path), find, seen)
    for key in NOT_INHERITED:
        inherited.pop(key, None)
    return merge(inherited, own, source), str(path)


def _parent_path(parent: str, source: str, find: Callable[[str], Path], where: str) -> Path:
    beside = Path(source).parent / (parent if parent.endswith((".yaml", ".yml")) else f"{parent}.yaml")
    if beside.is_file():
        return beside
    try:
        return find(parent)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _identity(source: str) -> str:
    return str(Path(source).resolve())


def merge(parent: Mapping[str, Any], child: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """``child`` over ``parent``: mappings merge recursively, anything else replaces, ``!delete`` removes."""
    merged = dict(parent)
    for key, value in child.items():
        path = f"{prefix}{key}"
        if value is DELETE:
            require(key in merged, f"{source}: {path}",
                    f"!delete names a key the parent does not have; the parent's keys here are: "
                    f"{', '.join(map(str, merged)) or 'none'}")
            del merged[key]
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value, source, f"{path}.")
        else:
            _no_deletes(value, source, path)
            merged[key] = value
    return merged


def _no_deletes(value: Any, source: str, path: str) -> None:
    """Fail on a ``!delete`` with nothing under it to delete (no parent, or inside a replaced value)."""
    where = f"{source}: {path}" if path else source
    if value is DELETE:
        raise ConfigError(f"{where}: !delete has no parent value to delete (use it in a study that extends another)")
    children = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, item in children:
        _no_deletes(item, source, f"{path}.{key}" if path else str(key))


def changes(parent: Mapping[str, Any], child: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str, Any, Any]]:
    """(sign, key path, parent's value, child's value) for what differs: "+" added, "-" removed, "~" changed.

    Mappings present on both sides are compared key by key; anything else is one line."""
    found = []
    for key in [*parent, *(k for k in child if k not in parent)]:
        path = f"{prefix}{key}"
        if key not in child:
            found.append(("-", path, parent[key], None))
        elif key not in parent:
            found.append(("+", path, None, child[key]))
        elif isinstance(parent[key], Mapping) and isinstance(child[key], Mapping):
            found += changes(parent[key], child[key], f"{path}.")
        elif parent[key] != child[key]:
            found.append(("~", path, parent[key], child[key]))
    return found
