"""Attention bodies and one-graph genotypes the evaluator tests share."""

from __future__ import annotations

from autobert_zero.grammar import Genotype, parse_genotype

VANILLA = "matmul(softmax(scale(matmul(Q, transpose(K)))), V)"


NEG_INSIDE = "matmul(softmax(scale(matmul(neg(Q), transpose(K)))), V)"  # = softmax(−QKᵀ)V


NEG_OUTSIDE = "matmul(softmax(scale(neg(matmul(Q, transpose(K))))), V)"  # same function, another id


def attention(body: str, layers: int = 2) -> Genotype:
    return parse_genotype(f"attention a {{ return {body} }}\nbackbone {{\n" + "  attention a\n" * layers + "}\n")
