"""The one lazy-import mechanism: a package's public names resolved from their modules on first use.

`import autobert_zero` (and `abz check`) must not import torch, transformers or deepspeed; packages that
re-export heavy names therefore bind them on first attribute access (PEP 562 module `__getattr__`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(
    package: str,
    exports: Mapping[str, str],
    on_load: Callable[[str], None] | None = None,
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `exports` maps each public name to the module defining it
    (absolute, or relative to `package` when it starts with a dot). The value is cached in the package's
    namespace, so each name is resolved once; `on_load(module)` runs after each first import (e.g. to
    register Hugging Face Auto classes)."""
    namespace = import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        if on_load is not None:
            on_load(module)
        namespace[name] = value
        return value

    return __getattr__


def by_module(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """`{module: (name, ...)}` → `{name: module}`: the form a package's export table reads best in."""
    return {name: module for module, names in table.items() for name in names}
