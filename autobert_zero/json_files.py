"""Reading JSON the project did not necessarily write itself: bounded in size and depth, errors by name.

Every state, history, cache or config file is read through `parse_json`/`read_json` before anything acts on
it, so a hand-edited or damaged file ends in the caller's error class (a `SearchError`, a `TrainingError`,
...) naming the file and what was expected, never in a `RecursionError` or a `JSONDecodeError` traceback.
Shape checks beyond "is JSON" belong to the caller (or to `require_mapping`, `require_keys`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autobert_zero.errors import AbzError

MAX_DEPTH = 32
"""Deepest nesting any file the project reads may have (its own files nest at most 6 deep)."""
MAX_BYTES = 256 * 1024 * 1024
"""Largest JSON file read whole (a history of a million candidates is ~300 MB; nothing of ours is near)."""
SHOWN_CHARS = 80
"""How much of an offending value an error message shows."""


def shorten(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)` cut to `limit` characters (an 8 MB config value must not be echoed whole)."""
    text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(value))} characters)"


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), computed without recursion; stops counting
    once past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(
    text: str,
    where: str,
    error: type[AbzError] = AbzError,
    max_depth: int = MAX_DEPTH,
    allow_nonfinite: bool = False,
) -> Any:
    """Parse `text` (from `where`, a file name or "line 3 of history.jsonl") or raise `error` saying why:
    not JSON, nested deeper than `max_depth`, or (unless `allow_nonfinite`) holding NaN/Infinity."""
    try:
        value = json.loads(text) if allow_nonfinite else json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise error(f"{where}: JSON nested deeper than {max_depth} levels; the file is damaged") from None
    except ValueError as problem:  # JSONDecodeError is a ValueError
        raise error(f"{where}: not valid JSON ({shorten(str(problem))})") from None
    if depth_of(value, max_depth) > max_depth:
        raise error(f"{where}: JSON nested deeper than {max_depth} levels; the file is damaged")
    return value


def read_json(
    path: str | Path,
    error: type[AbzError] = AbzError,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_BYTES,
    allow_nonfinite: bool = False,
) -> Any:
    """Read and parse the JSON file `path` with `parse_json`'s checks, refusing files over `max_bytes` before
    reading them; a missing or unreadable file raises `error` naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {size} bytes, more than the {max_bytes} a JSON file may have; the file is damaged")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; the file is damaged") from None
    except OSError as problem:
        raise error(f"{path}: cannot be read ({problem.strerror})") from None
    return parse_json(text, str(path), error, max_depth, allow_nonfinite)


def require_mapping(value: Any, where: str, error: type[AbzError] = AbzError) -> dict[str, Any]:
    """`value` if it is a JSON object, else `error` naming `where`."""
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def require_keys(
    value: Any, where: str, keys: Mapping[str, type | tuple[type, ...]], error: type[AbzError] = AbzError
) -> dict[str, Any]:
    """`value` as a JSON object that has each of `keys` with a value of the given type(s) (bool is not
    accepted where int or float is asked; floats must be finite), else `error` naming the first bad key."""
    mapping = require_mapping(value, where, error)
    for key, expected in keys.items():
        if key not in mapping:
            raise error(f"{where}: missing key {key!r}")
        item = mapping[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        bad_bool = isinstance(item, bool) and bool not in types
        if bad_bool or not isinstance(item, types):
            names = " or ".join(t.__name__ for t in types)
            raise error(f"{where}: key {key!r} should be {names}, found {shorten(item)}")
        if isinstance(item, float) and not math.isfinite(item):
            raise error(f"{where}: key {key!r} is {item}, expected a finite number")
    return mapping


def flatten(mapping: Mapping[str, Any], keep_empty: bool = False, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys ({"a": {"b": 1}} → {"a.b": 1}); other values (lists too)
    as they are. An empty nested mapping vanishes, or with `keep_empty` stays as its own key ({"a": {}} →
    {"a": {}}), so a comparison can name a section that was emptied. Run identities use the default: changing
    it would change every checkpoint's identity."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and (value or not keep_empty):
            flat.update(flatten(value, keep_empty, f"{name}."))
        else:
            flat[name] = value
    return flat
