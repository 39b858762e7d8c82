"""Config dataclasses from plain dicts (JSON / YAML), strictly, and the layering of config sources.

This module owns the one way CardiacNets turns configuration into dataclasses: :func:`config_from_dict` (an unknown
key, a missing required key or a value of the wrong type raises :class:`~cardiacnets.errors.ConfigError` naming the
key path, so a typo fails loudly instead of silently training the default) and its inverse :func:`config_to_dict`;
:func:`deep_merge` of nested mappings; ``--set key.sub=value`` parsing (:func:`parse_set`, values read as YAML) and
:func:`set_dotted`; and :func:`layer_config`, the precedence every command uses: defaults (a stage YAML or a saved
config) < ``--config FILE`` < CLI flags < each ``--set``. Models, training, export and edge all parse configs with it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cardiacnets.errors import ConfigError

_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

T = TypeVar("T")

__all__ = [
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "deep_merge",
    "layer_config",
    "parse_set",
    "read_yaml",
    "set_dotted",
]


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict (JSON-safe) form of a config dataclass; tuples become lists, nested dataclasses dicts."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    return convert(config)


def config_to_yaml(config: Any) -> str:
    """YAML text of a config dataclass, fields in declaration order (what runs write as ``config.yaml``)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _coerce_union(value: Any, annotation: Any, args: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, where)
        except ConfigError:
            pass
    raise ConfigError(f"{where}: {value!r} does not match {annotation}")


def _coerce_scalar(value: Any, annotation: Any, where: str) -> Any:
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads exponent-only floats such as 5e-4 as strings
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return _coerce_union(value, annotation, args, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(annotation):
        if dataclasses.is_dataclass(value) and isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return config_from_dict(annotation, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(value, annotation, where)


def config_from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise :class:`ConfigError`.

    ``where`` names the section in error messages; nested fields extend it (``config.train.lr``, ``task.betas[1]``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` applied: nested mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The mapping in YAML file ``path`` (``{}`` for an empty file, or for a missing one with ``missing_ok``)."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return {}
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key="a.b"``, creating intermediate mappings."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"invalid config key {key!r}")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {key!r}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = value


def parse_set(items: list[str]) -> list[tuple[str, Any]]:
    """``["train.lr=1e-4", ...]`` -> ``[("train.lr", 0.0001), ...]``; values parsed as YAML (text if not YAML)."""
    parsed = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value))
    return parsed


def layer_config(
    defaults: Mapping[str, Any],
    *,
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    sets: list[str] | None = None,
) -> dict[str, Any]:
    """Merge the config layers, later winning: ``defaults`` < ``config_file`` < ``flags`` < ``sets``.

    ``defaults`` is the stage's YAML (or a run's saved config); ``config_file`` is deep-merged over it; ``flags`` maps
    dotted keys to CLI flag values (``None``: the flag was not given, so it does not override); ``sets`` are the raw
    ``--set key.sub=value`` items. Returns a new plain dict, for :func:`config_from_dict`.
    """
    data = copy.deepcopy(dict(defaults))
    if config_file is not None:
        data = deep_merge(data, read_yaml(config_file))
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    for key, value in parse_set(sets or []):
        set_dotted(data, key, value)
    return data
