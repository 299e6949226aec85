"""Strict conversion of nested dicts (parsed YAML) into frozen dataclasses: the machinery behind
params.py's schema. Unknown keys, wrong types and non-finite numbers raise ParamsError naming the key."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing

from pipeline.errors import ParamsError


def parse(cls, data, key: str):
    """Build dataclass `cls` from `data`, checking unknown keys and types, then calling validate()."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(key or "<root>", data, f"a mapping of {cls.__name__} fields")
    if hasattr(cls, "from_mapping"):  # a registry-dependent set of keys (WsolParams)
        return cls.from_mapping(data, key)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ParamsError(_join(key, k), data[k], f"unknown key; {hint}valid keys: {', '.join(names)}")
    values = {k: _convert(hints[k], v, _join(key, k)) for k, v in data.items()}
    obj = cls(**values)
    if hasattr(obj, "validate"):
        obj.validate(key or "<root>")
    return obj


def _convert(tp, value, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(key, value, "a mapping")
        return {str(k): _convert(args[1], v, _join(key, k)) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ParamsError(key, value, "a list")
        return tuple(_convert(args[0], v, key) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(key, value, "an integer")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 as a string
            try:
                value = float(value)
            except ValueError:
                raise ParamsError(key, value, "a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(key, value, "a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise ParamsError(key, value, "a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(key, value, "a string")
        return value
    raise TypeError(f"unsupported params type {tp} at {key}")


def to_dict(obj) -> dict:
    """The resolved params, for saving beside each stage's outputs (timm's args.yaml habit), in the
    params.yaml shape (a `wsol` entry stays one flat mapping)."""
    if hasattr(obj, "as_flat"):
        return obj.as_flat()
    if dataclasses.is_dataclass(obj):
        # a field marked omit_default (added after outputs were published) is saved only when set, so
        # the meta.json of a run that does not use it keeps its bytes
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_dict(v) for v in obj)
    return obj


def _join(prefix: str, k) -> str:
    return f"{prefix}.{k}" if prefix else str(k)


def _positive(key: str, value) -> None:
    if value <= 0:
        raise ParamsError(key, value, "a positive number")


def _choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ParamsError(key, value, f"one of {', '.join(map(str, choices))}")
