"""Trainer configs: TOML/JSON config files, ``--key value`` CLI overrides, and typed frozen dataclasses built
from the merged settings.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

__all__ = ["T", "build_dataclass", "config_to_dict", "load_config_file", "merge_settings", "parse_overrides"]

T = TypeVar("T")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.toml`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; pass --config path/to/config.toml")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
    elif suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ImportError as err:
                raise ValueError(
                    "reading TOML on Python 3.10 needs `pip install tomli`; or use a .json config"
                ) from err
        data = tomllib.loads(path.read_text())
    else:
        raise ValueError(f"config file {path}: use a .toml or .json file")
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {path} must hold a table/object of settings, got {type(data).__name__}"
        )
    return data


def _json_or_str(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["--lr", "1e-4", "--rfr.mode=scale"]`` -> ``{"lr": 1e-4, "rfr": {"mode": "scale"}}``.

    Values are parsed as JSON when they are JSON (numbers, true/false/null, lists), else kept as strings;
    dots address nested sections; ``-`` in names is read as ``_``.
    """
    out: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--") or arg == "--":
            raise ValueError(f"override {arg!r}: write overrides as --key value or --key=value")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise ValueError(f"override --{key} has no value; write --{key} VALUE")
            raw, i = items[i + 1], i + 1
        value = _json_or_str(raw)
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override --{key}: {part} is both a value and a section")
        node[parts[-1]] = value
        i += 1
    return out


def merge_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: sections merge key by key, values in ``overrides`` win."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """``value`` (from TOML/JSON/CLI) as the declared field type ``tp``; ValueError naming ``name`` if impossible."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return build_dataclass(tp, value, prefix=f"{name}.")
        raise ValueError(f"{name}: expected a section of {tp.__name__} settings, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ValueError(f"{name}={value!r}: choose one of {get_args(tp)}")
    if origin is tuple:
        if isinstance(value, str):  # "64,64" from the command line
            value = [_json_or_str(v.strip()) for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}={value!r}: expected a list")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{name}={value!r}: expected {len(args)} values")
        return tuple(_coerce(a, v, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ValueError(f"{name}={value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{name}={value!r}: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name}={value!r}: expected a number")
    if tp is str:
        if isinstance(value, (str, Path)):
            return str(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a folder named 2024 given on the command line
        raise ValueError(f"{name}={value!r}: expected a string")
    return value


def build_dataclass(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """An instance of the (frozen) dataclass ``cls`` from a mapping, coercing values to the field types.

    Unknown keys are a ValueError listing the valid ones; nested dataclass fields take sub-mappings.
    The dataclass's own ``__post_init__`` then validates the values.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(prefix + k for k in unknown)}; valid {cls.__name__} keys: "
            f"{', '.join(names)}"
        )
    return cls(**{k: _coerce(hints[k], v, prefix + k) for k, v in data.items()})


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
