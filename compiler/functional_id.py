"""Functional fingerprint of an attention graph: what it computes, hashed.

The compiled core runs on fixed seeded Q, K, V (B=1, H=2, L=5, dh=4, float64, no padding); the output is
rounded to 4 significant digits and hashed with sha256. Graphs equal in meaning (add(Q, K) vs add(K, Q),
transpose(transpose(K)) vs K, ...) get equal fingerprints even where the canonical form's rewrite rules
do not see the equivalence; the evolution's duplicate cache uses it. Values below 1e-9 in magnitude count
as zero; NaN and ±inf are hashed as such, so every graph gets a deterministic fingerprint.
"""

from __future__ import annotations

import hashlib
import math

import torch

from autobert_zero.grammar import AttentionGraph, Language

from .attention_core import compile_core

SHAPE = (1, 2, 5, 4)  # (B, H, L, dh): L ≠ dh so transposes cannot hide
SEED = 20220213
SIGNIFICANT_DIGITS = 4
ZERO_BELOW = 1e-9


def fingerprint(graph: AttentionGraph, *, language: Language | None = None) -> str:
    """sha256 hex digest of the graph's rounded outputs on the fixed inputs."""
    core = compile_core(graph, SHAPE[-1], fused=False, language=language)
    inputs = _inputs()
    keep = torch.ones(SHAPE[0], SHAPE[2], dtype=torch.bool)  # (B, L)
    with torch.no_grad():
        out = core(*(inputs[name] for name in graph.inputs_used), keep, 0.0)  # (B, H, L, dh)
    text = ",".join(_round(x) for x in out.flatten().tolist())
    return hashlib.sha256(f"{tuple(out.shape)}:{text}".encode()).hexdigest()


def _inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(SEED)
    return {name: torch.randn(SHAPE, generator=generator, dtype=torch.float64, device="cpu")
            for name in ("Q", "K", "V")}


def _round(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) < ZERO_BELOW:
        return "0"
    return f"{x:.{SIGNIFICANT_DIGITS}g}"
