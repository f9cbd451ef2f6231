"""A custom language for the tests: the default grammar with one more op."""

from __future__ import annotations

from autobert_zero.grammar import (
    OpSpec,
)
from autobert_zero.grammar.language import GRAMMAR_PATH
from autobert_zero.grammar.ops import same_shape


def grammar_with(op: str) -> str:
    text = GRAMMAR_PATH.read_text(encoding="utf-8")
    anchor = '| "cosine" | "euclid"'
    assert anchor in text
    return text.replace(anchor, f'{anchor}\n   | "{op}"')


GELU = OpSpec("gelu", 1, same_shape, "gelu({0})", elementwise=True)
