"""The source of custom op implementations, as the `portable_custom_ops.py` of an exported folder.

A custom language's op runs a function registered with `register_op_impl`. An export must carry it as
code that plain torch can import, so this module writes one Python file holding, for each custom op:

- a function of torch itself (`torch.mul`, `torch.nn.functional.gelu`, ...): an import of it by its public
  name, so the remote code calls the very same function;
- a module-level Python function: its source (`inspect.getsource`), with the globals it reads rebuilt —
  `torch`/`math` modules (and their submodules) as imports, numbers and strings as constants.

Anything else (a lambda, a closure, a decorated function, a global helper function or object) cannot
travel as source: `NotPortableError` names the op and why. The file is executed once before it is returned,
so a source that does not even define its function is caught at export time, not at load time.
"""

from __future__ import annotations

import dis
import inspect
import math
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

ALLOWED_PACKAGES = ("torch", "math")
"""Packages the generated file may import (the exported folder's remote code needs nothing else)."""
TORCH_NAMESPACES: tuple[types.ModuleType, ...] = (torch, torch.nn.functional, torch.special, torch.linalg, math)
"""Where a non-Python (built-in) implementation is looked up by name."""
HEADER = '''"""Implementations of the custom ops of this exported model (written by autobert_zero's export)."""

from __future__ import annotations
'''


class NotPortableError(ValueError):
    """An op implementation that cannot be written as portable source."""


def custom_ops_module(impls: Mapping[str, Callable[..., Any]]) -> str:
    """The text of `portable_custom_ops.py` defining `CUSTOM_IMPLS` = {op name: implementation} for `impls`."""
    imports: set[str] = {"import torch"}
    blocks: list[str] = []
    entries: list[str] = []
    for op, fn in sorted(impls.items()):
        path = _torch_path(fn)
        if path is not None:
            imports.add(f"import {path.rpartition('.')[0]}")
            entries.append(f"    {op!r}: {path},")
            continue
        block, needed = _function_source(op, fn)
        imports |= needed
        blocks.append(block)
        entries.append(f"    {op!r}: {fn.__name__},")
    text = "\n".join([HEADER, *sorted(imports), "", "", *blocks,
                      "CUSTOM_IMPLS = {", *entries, "}", ""])
    _check_runs(text, impls)
    return text


def _torch_path(fn: Callable[..., Any]) -> str | None:
    """`module.name` under which a torch (or math) namespace holds exactly `fn`, if one does."""
    name = getattr(fn, "__name__", None)
    if not name:
        return None
    for namespace in TORCH_NAMESPACES:
        if getattr(namespace, name, None) is fn:
            return f"{namespace.__name__}.{name}"
    return None


def _function_source(op: str, fn: Callable[..., Any]) -> tuple[str, set[str]]:
    """The source block of a module-level Python function and the import lines its globals need."""
    if not isinstance(fn, types.FunctionType):
        raise NotPortableError(f"op {op!r} is implemented by {fn!r}, neither a Python function nor a torch "
                               "function found by name; register a module-level function instead")
    if fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__ or fn.__closure__:
        raise NotPortableError(f"op {op!r} is implemented by {fn.__qualname__}, a lambda or nested function whose "
                               "source cannot travel; register a module-level function instead")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as error:
        raise NotPortableError(f"the source of op {op!r}'s implementation {fn.__qualname__} is unavailable: "
                               f"{error}") from None
    if not source.startswith("def "):
        raise NotPortableError(f"op {op!r}'s implementation {fn.__qualname__} is decorated; register the plain "
                               "function")
    lines: set[str] = set()
    constants: list[str] = []
    for name in sorted(set(_global_names(fn.__code__))):
        if name not in fn.__globals__:
            continue  # a builtin or an attribute name
        value = fn.__globals__[name]
        if isinstance(value, types.ModuleType) and value.__name__.split(".")[0] in ALLOWED_PACKAGES:
            lines.add(f"import {value.__name__}" if value.__name__ == name else f"import {value.__name__} as {name}")
        elif isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
            constants.append(f"{name} = {value!r}")
        else:
            raise NotPortableError(f"op {op!r}'s implementation {fn.__qualname__} reads the global {name!r} "
                                   f"({type(value).__name__}), which cannot travel as source; only torch/math "
                                   "modules, numbers and strings can")
    return "\n".join([*constants, *([""] if constants else []), source.rstrip(), "", ""]), lines


def _global_names(code: types.CodeType) -> Iterator[str]:
    """Names a code object (and the code nested in it) looks up as globals (not attribute names such as the
    `gelu` of `torch.nn.functional.gelu`, which `co_names` also lists)."""
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(instruction.argval, str):
            yield instruction.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _check_runs(text: str, impls: Mapping[str, Callable[..., Any]]) -> None:
    """Execute the generated file; every op of `impls` must come out as a callable."""
    namespace: dict[str, Any] = {"__name__": "portable_custom_ops"}
    try:
        exec(compile(text, "portable_custom_ops.py", "exec"), namespace)
    except Exception as error:
        raise NotPortableError(f"the generated custom-op source does not run: {type(error).__name__}: {error}") \
            from None
    made = namespace.get("CUSTOM_IMPLS", {})
    if set(made) != set(impls) or not all(callable(f) for f in made.values()):
        raise NotPortableError(f"the generated custom-op source defines {sorted(made)}, expected {sorted(impls)}")
