"""The primitive-op table: name, arity, shape rule, padding rule, formula and cost of every op.

The grammar (`genotype.lark`, rule `op`) lists which op names the language accepts; this table says what
each one means. `Language` checks that the two agree. The table is plain Python (no torch): the language,
the search and `abz check` use it without the training stack. How an op runs is the compiler's business
(`compiler/op_impls.py`, keyed by op name). Adding an op is one grammar alternative, one `OpSpec` here (or
passed to `Language(ops=...)`) and one implementation entry, see README "Adding a primitive op".

Shapes are symbolic and per head: a pair of axis symbols, each `L` (token positions) or `d` (head dim).
The implementations work on tensors of shape (B, H, a, b) and never touch the batch/head axes. The inputs
`Q`, `K`, `V` and an attention graph's output are L×d (`INPUT_SHAPE`, `OUTPUT_SHAPE`); the conv values a
language allows by default are `CONV_*`. These constants live here, below everything else in the package.

Padding rule: `reduced_axes(shapes)` lists the (argument, axis) pairs an op reduces over. When such an
axis is a position axis (`L`), the compiler masks padded positions on it first — with `mask_fill`
(0 for contractions, -inf for softmax) — which makes every valid genotype padding-invariant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Shape = tuple[str, str]

POSITION_AXIS = "L"
"""The axis symbol of token positions (padded positions are masked on it)."""
HEAD_AXIS = "d"
"""The axis symbol of the per-head feature dimension."""
INPUT_SHAPE: Shape = (POSITION_AXIS, HEAD_AXIS)
"""Shape of each input `Q`, `K`, `V`."""
OUTPUT_SHAPE: Shape = (POSITION_AXIS, HEAD_AXIS)
"""Shape an attention graph's output must have (one row per position)."""
INPUTS = ("Q", "K", "V")
"""The per-head projections an attention graph reads."""
CONV_TYPES = ("light", "depthwise", "sepconv")
CONV_KERNELS = (1, 3, 5, 7, 9, 15, 31, 65)
CONV_DILATIONS = (1, 2, 4)

FUNCTION_FORM = 100
"""`OpSpec.precedence` of an op written in function-call form, e.g. `softmax(x)` (never needs parentheses)."""


class ShapeRuleError(ValueError):
    """Raised by a shape rule: the message says which shapes were given and which were expected."""


@dataclass(frozen=True)
class OpSpec:
    """One primitive operation of the search space."""

    name: str
    """The op's name, exactly the grammar's terminal."""
    arity: int
    """Number of operands (1 or 2)."""
    shape: Callable[[tuple[Shape, ...]], Shape]
    """Output shape from operand shapes; raises `ShapeRuleError` when they do not fit."""
    formula: str
    """Template for the readable formula, operands as {0} and {1}, e.g. "{0}·{1}"."""
    precedence: int = FUNCTION_FORM
    """Binding strength of the formula: `FUNCTION_FORM` = function-call form (never needs parentheses)."""
    commutative: bool = False
    """f(x, y) == f(y, x): the canonical form sorts the operands."""
    elementwise: bool = False
    """Acts on each entry alone (so it commutes with `transpose`)."""
    needs_head_dim: bool = False
    """The op depends on the head dimension d: its implementation takes the keyword `d`."""
    reduced_axes: Callable[[tuple[Shape, ...]], tuple[tuple[int, int], ...]] = lambda shapes: ()
    """(operand, axis) pairs the op reduces over; position axes among them are masked first."""
    mask_fill: float = 0.0
    """Value written at padded positions of a reduced position axis (0 for sums, -inf for softmax)."""
    flops: Callable[[tuple[tuple[int, int], ...], tuple[int, int]], int] = lambda ins, out: out[0] * out[1]
    """Floating-point operations per head from concrete operand and output sizes."""


# ---------------------------------------------------------------------------------------------------
# Shape rules


def same_shape(shapes: tuple[Shape, ...]) -> Shape:
    if any(s != shapes[0] for s in shapes[1:]):
        raise ShapeRuleError(f"operands must have equal shapes, got {fmt_shapes(shapes)}")
    return shapes[0]


def transposed(shapes: tuple[Shape, ...]) -> Shape:
    (a, b) = shapes[0]
    return (b, a)


def matmul_shape(shapes: tuple[Shape, ...]) -> Shape:
    (a, b), (c, e) = shapes
    if b != c:
        raise ShapeRuleError(
            f"needs (a×b)·(b×c), got {fmt_shapes(shapes)}: inner axes {b} and {c} differ"
        )
    return (a, e)


def pairwise_shape(shapes: tuple[Shape, ...]) -> Shape:
    (a, b), (c, e) = shapes
    if b != e:
        raise ShapeRuleError(
            f"pairwise ops compare rows of equal width, (a×b),(c×b)→(a×c), got {fmt_shapes(shapes)}"
        )
    return (a, c)


def fmt_shapes(shapes: tuple[Shape, ...]) -> str:
    return ", ".join(f"{a}×{b}" for a, b in shapes)


# ---------------------------------------------------------------------------------------------------
# Padding (reduced axes) and cost rules


def last_axis(shapes: tuple[Shape, ...]) -> tuple[tuple[int, int], ...]:
    return ((0, 1),)


def contracted_axis(shapes: tuple[Shape, ...]) -> tuple[tuple[int, int], ...]:
    return ((1, 0),)  # mask the right operand's rows: zero there means the contraction ignores them


def both_feature_axes(shapes: tuple[Shape, ...]) -> tuple[tuple[int, int], ...]:
    return ((0, 1), (1, 1))


def matmul_flops(ins: tuple[tuple[int, int], ...], out: tuple[int, int]) -> int:
    return 2 * ins[0][0] * ins[0][1] * ins[1][1]


def pairwise_flops(ins: tuple[tuple[int, int], ...], out: tuple[int, int]) -> int:
    return 2 * out[0] * out[1] * ins[0][1] + 4 * (ins[0][0] + ins[1][0]) * ins[0][1]


def elementwise_flops(ins: tuple[tuple[int, int], ...], out: tuple[int, int]) -> int:
    return out[0] * out[1]


def no_flops(ins: tuple[tuple[int, int], ...], out: tuple[int, int]) -> int:
    return 0


def softmax_flops(ins: tuple[tuple[int, int], ...], out: tuple[int, int]) -> int:
    return 5 * out[0] * out[1]


# ---------------------------------------------------------------------------------------------------
# The default table: the paper's nine ops, then cosine and euclid.

DEFAULT_OPS: Mapping[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("neg", 1, same_shape, "−{0}", precedence=80, elementwise=True, flops=elementwise_flops),
        OpSpec("transpose", 1, transposed, "{0}ᵀ", precedence=90, flops=no_flops),
        # scale divides by √d (d = head dimension); softmax normalises over the last axis
        OpSpec("scale", 1, same_shape, "{0}/√d", precedence=60, elementwise=True, needs_head_dim=True,
               flops=elementwise_flops),
        OpSpec("softmax", 1, same_shape, "softmax({0})", reduced_axes=last_axis,
               mask_fill=float("-inf"), flops=softmax_flops),
        OpSpec("logsigmoid", 1, same_shape, "logsigmoid({0})", elementwise=True, flops=softmax_flops),
        # softsign(x) = x/(1+|x|); sqrt is sign-safe: sign(x)·√(|x|+1e-6)
        OpSpec("softsign", 1, same_shape, "softsign({0})", elementwise=True, flops=elementwise_flops),
        OpSpec("sqrt", 1, same_shape, "sqrt({0})", elementwise=True, flops=elementwise_flops),
        OpSpec("add", 2, same_shape, "{0} + {1}", precedence=40, commutative=True, elementwise=True,
               flops=elementwise_flops),
        # matmul: (a×b)·(b×c)→(a×c); cosine and euclid compare rows pairwise (euclid: √(‖x−y‖²+ε))
        OpSpec("matmul", 2, matmul_shape, "{0}·{1}", precedence=60, reduced_axes=contracted_axis,
               flops=matmul_flops),
        OpSpec("cosine", 2, pairwise_shape, "cos({0}, {1})", reduced_axes=both_feature_axes,
               flops=pairwise_flops),
        OpSpec("euclid", 2, pairwise_shape, "dist({0}, {1})", reduced_axes=both_feature_axes,
               flops=pairwise_flops),
    )
}
