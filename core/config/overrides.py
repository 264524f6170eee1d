"""Overrides of a config's fields, `section.field=value` from the command line or a TOML file, each parsed as its
field's type (nanoGPT's configurator, without exec): unknown keys and unparsable values are errors."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Return `cfg` with `section.field=value` overrides applied, each parsed as its field's type.

    Raises:
        ValueError: malformed override, unknown key, or a value that does not parse as the field type.
    """
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override must look like 'section.field=value', got {item!r}")
        cfg = _replace_path(cfg, key.strip().split("."), text.strip(), key.strip())
    return cfg


def toml_overrides(path) -> list[str]:
    """A TOML file of sections (`[train]\nepochs = 3`) as `section.field=value` override strings."""
    import tomllib
    with open(path, "rb") as fh:
        data = tomllib.load(fh)

    def flatten(prefix: str, value: Any) -> list[str]:
        if isinstance(value, dict):
            return [item for k, v in value.items() for item in flatten(f"{prefix}{k}.", v)]
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        return [f"{prefix[:-1]}={text}"]
    return flatten("", data)


def _replace_path(obj: Any, path: list[str], text: str, full_key: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if path[0] not in fields:
        raise ValueError(f"unknown config key {full_key!r}: {type(obj).__name__} has {sorted(fields)}")
    hints = typing.get_type_hints(type(obj))
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"unknown config key {full_key!r}: {path[0]!r} is not a section")
        return dataclasses.replace(obj, **{path[0]: _replace_path(current, path[1:], text, full_key)})
    if dataclasses.is_dataclass(current):
        raise ValueError(f"{full_key!r} is a section; set one of its fields, e.g. {full_key}.<field>=...")
    return dataclasses.replace(obj, **{path[0]: _parse(text, hints[path[0]], full_key)})


def _parse(text: str, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        return _parse(text, next(a for a in args if a is not type(None)), key)
    if origin is tuple:
        items = [t for t in text.strip("()[]").split(",") if t.strip()]
        return tuple(_parse(t.strip(), args[0], key) for t in items)
    try:
        if tp is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if tp is int and text.lstrip("-").isdigit():
            return int(text)
        if tp is int:
            raise ValueError(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
    except ValueError:
        raise ValueError(f"{key} expects {getattr(tp, '__name__', tp)}, got {text!r}") from None
    raise ValueError(f"{key}: cannot parse values of type {tp}")
