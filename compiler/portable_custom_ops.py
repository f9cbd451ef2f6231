"""Implementations of a custom language's ops, by op name: empty in the package (shipped in exported folders).

The package resolves ops through `op_impls`' registry (`register_op_impl`), so this file stays empty here.
An export writes its own version of this file into the folder (`op_source.custom_ops_module`): the source
of each custom op's implementation, or an import of the torch function it is, and the `CUSTOM_IMPLS` dict.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CUSTOM_IMPLS: dict[str, Callable[..., torch.Tensor]] = {}
