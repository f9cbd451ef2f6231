"""A custom language for the tests: the default grammar with one more op."""

from __future__ import annotations

from pathlib import Path

import yaml

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


# --- a custom language on disk: a grammar file, an op module and a YAML naming them ---------------------------

OP_MODULE = '''"""Two custom ops: `mul` (commutative, elementwise product) and `half` (x / 2)."""

from autobert_zero.grammar import OpSpec
from autobert_zero.grammar.ops import elementwise_flops, same_shape

SCALE = 0.5


def mul(x, y):
    return x * y


def half(x):
    return x * SCALE


OPS = [
    OpSpec("mul", 2, same_shape, "{0}⊙{1}", precedence=60, commutative=True, elementwise=True,
           flops=elementwise_flops),
    OpSpec("half", 1, same_shape, "{0}/2", precedence=60, elementwise=True, flops=elementwise_flops),
]
IMPLS = {"mul": mul, "half": half}
'''
MUL_GENOTYPE = ("attention a {{ return matmul(softmax(scale(matmul(half(mul({0}, {1})), transpose(K)))), V) }}\n"
                "backbone {{ attention a attention a }}\n")
"""A two-layer genotype of the custom language; `.format("Q", "K")` and `.format("K", "Q")` mean the same."""


def write_language(folder: Path, *, grammar: bool = True, ops: str = OP_MODULE) -> dict[str, str]:
    """`folder/ops.py` (and `folder/space.lark`: the built-in grammar plus `mul` and `half`); the `language:`
    section naming them."""
    (folder / "ops.py").write_text(ops, encoding="utf-8")
    section = {"ops": str(folder / "ops.py")}
    if grammar:
        text = GRAMMAR_PATH.read_text(encoding="utf-8").replace('| "cosine" | "euclid"',
                                                               '| "cosine" | "euclid"\n   | "mul" | "half"')
        (folder / "space.lark").write_text(text, encoding="utf-8")
        section["grammar"] = str(folder / "space.lark")
    return section


def write_language_yaml(folder: Path, section: dict[str, str], name: str = "language.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"language": section}), encoding="utf-8")
    return path
