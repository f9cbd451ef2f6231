"""Which torch implementation each primitive op runs, keyed by op name; the compiler resolves each op here.

The op table (`grammar/ops.py`) says what an op means — arity, shape rule, padding facts, formula, FLOPs —
and stays free of torch, so the language, the search and `abz check` never import it. This module says how
an op runs: the built-in implementations live in `portable_ops` (a function on (B, H, a, b) tensors that
never touches the batch/head axes and receives the keyword `d=head_dim` when the op's
`OpSpec.needs_head_dim` is set; that module travels verbatim into exported folders), re-exported here.

A language built from an op module (`grammar/loading.py`, config section `language:`) carries its ops'
implementations (`Language.impls`), which the compiler uses before this registry. In Python, a custom
language may instead add its op's implementation here with `register_op_impl(name, fn)`; compiling a graph
that uses an op without one raises `CompileError` naming the op and this function (README "Adding a primitive
op"). An export writes the source of each custom implementation into the folder (`remote_code`).
"""

from __future__ import annotations

from autobert_zero.errors import CompileError

from .portable_ops import (
    BUILTIN_IMPLS,
    EPS,
    OpImpl,
    add,
    cosine,
    euclid,
    logsigmoid,
    matmul,
    neg,
    scale,
    signed_sqrt,
    softmax,
    softsign,
    transpose,
)

__all__ = [
    "BUILTIN_IMPLS", "EPS", "OpImpl", "add", "cosine", "euclid", "logsigmoid", "matmul", "neg", "op_impl",
    "register_op_impl", "scale", "signed_sqrt", "softmax", "softsign", "transpose", "unregister_op_impl",
]

_IMPLS: dict[str, OpImpl] = dict(BUILTIN_IMPLS)


def op_impl(name: str) -> OpImpl:
    """The implementation of op `name`; `CompileError` when none is registered."""
    try:
        return _IMPLS[name]
    except KeyError:
        raise CompileError(
            f"op {name!r} has no torch implementation, so it cannot be compiled; register one with "
            f"autobert_zero.compiler.register_op_impl({name!r}, fn) (README \"Adding a primitive op\"); "
            f"implemented ops: {', '.join(_IMPLS)}") from None


def register_op_impl(name: str, fn: OpImpl, *, replace: bool = False) -> None:
    """Make op `name` compilable with `fn` (on (B, H, a, b) tensors; takes `d=` if the op needs the head dim).

    Registering the same function again is a no-op; another function for a registered name needs
    `replace=True` (compiled cores are keyed by implementation, so old cores are not reused for it).
    """
    current = _IMPLS.get(name)
    if current is not None and current is not fn and not replace:
        raise CompileError(f"op {name!r} already has the implementation {current.__qualname__}; pass "
                           "replace=True to register_op_impl to change it")
    _IMPLS[name] = fn


def unregister_op_impl(name: str) -> None:
    """Forget a registered custom op's implementation (the built-in ops cannot be removed)."""
    if name in BUILTIN_IMPLS:
        raise CompileError(f"op {name!r} is built in; its implementation cannot be removed")
    _IMPLS.pop(name, None)
