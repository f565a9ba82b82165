"""Typed configs: dataclass defaults < YAML file < `key=value` overrides (dotted for nesting).

A YAML file may include others under sub-config keys (`defaults: {corpus: ../corpus/smoke.yaml}`); the
including file's own keys win. Make variables sit above all three because the Makefile passes them as overrides last. Every config class
is a (nested) dataclass; `load(cls, path, overrides)` returns a validated instance. An unknown key or a
wrong type raises ConfigError with one line naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from modevo.errors import ConfigError

T = TypeVar("T")


def _closest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; valid keys: {', '.join(sorted(valid))}" if valid else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`, converting where lossless (int → float, list → tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"'{key}' expects {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.4)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"'{key}' must be one of {list(choices)}, got {value!r}{extra}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' expects a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' expects a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"'{key}' expects {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' expects a mapping, got {value!r}")
        _, vt = get_args(tp) or (Any, Any)
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{key}' expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"'{key}' expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"'{key}' expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # `name=42` on the command line is still a name
        raise ConfigError(f"'{key}' expects a string, got {value!r}")
    return value


def _build(cls: type[T], data: dict, prefix: str = "") -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}{key}'{_closest(str(key), list(fields))}")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None
    return obj


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=3` → ('a.b', 3); the value is read as YAML so numbers, lists and null work."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # an unparsable value is kept as a string; the type check decides
    return key, value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder, not a YAML file: name a file in it (e.g. {path / 'smoke.yaml'})")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_with_defaults(path: str | Path, _seen: tuple = ()) -> dict:
    """A YAML file whose `defaults:` maps sub-config keys to other YAML files (relative to this one),
    e.g. `defaults: {corpus: ../corpus/smoke.yaml}`: those are merged under their keys first (the key `.`
    merges a file at the top level), then this file's own keys on top."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'defaults' includes itself")
    data = read_yaml(path)
    includes = data.pop("defaults", None) or {}
    if not isinstance(includes, dict):
        raise ConfigError(f"{path}: 'defaults' must map keys to YAML files, e.g. corpus: ../corpus/smoke.yaml")
    out: dict = {}
    for key, rel in includes.items():
        included = read_with_defaults(path.parent / str(rel), _seen + (path,))
        out = merge(out, included) if key == "." else merge(out, {key: included})
    return merge(out, data)


def load(cls: type[T], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> T:
    """Defaults < YAML at `path` (after its `defaults:` includes) < overrides, validated into `cls`."""
    data = to_dict(cls())
    if path is not None:
        data = merge(data, read_with_defaults(path))
    for text in overrides:
        key, value = parse_override(text)
        _check_path(cls, key)
        _set_dotted(data, key, value)
    return _build(cls, data)


def _check_path(cls: Any, dotted: str) -> None:
    """Name an unknown override key before merging so the error says where it went wrong."""
    node, done = cls, []
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node):
            return  # inside a dict or list-valued field: the type check decides
        hints = get_type_hints(node)
        if part not in hints:
            valid = [f.name for f in dataclasses.fields(node)]
            raise ConfigError(f"unknown key '{'.'.join(done + [part])}'{_closest(part, valid)}")
        done.append(part)
        node = hints[part]
        if get_origin(node) in (Union, types.UnionType):
            node = next((a for a in get_args(node) if a is not type(None)), node)


def require(condition: bool, message: str) -> None:
    """Use in __post_init__ for value checks (negative sizes, empty ranges)."""
    if not condition:
        raise ValueError(message)


def require_name(value: str, field: str) -> None:
    """A config value that becomes one folder or file name: not empty, no path separator, not '.' or '..'
    (else `train.scale=../x` would write outside runs_dir)."""
    require(bool(value.strip()), f"{field} must not be empty")
    require("/" not in value and "\\" not in value and "\0" not in value and value not in (".", ".."),
            f"{field} {value!r} becomes a folder name: it must not hold '/', '\\' or be '.' or '..'")
