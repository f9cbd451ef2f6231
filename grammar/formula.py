"""Readable formulas for attention graphs, e.g. `softmax(Q·Kᵀ/√d)·V`, from each op's template."""

from __future__ import annotations

from .ir import AttentionGraph, Call, Expr
from .language import Language, current_language
from .ops import FUNCTION_FORM


def formula(graph: AttentionGraph | Expr, language: Language | None = None) -> str:
    """The graph's output as a formula; operands get parentheses only where precedence needs them."""
    ops = (language or current_language()).ops
    output = graph.output if isinstance(graph, AttentionGraph) else graph
    memo: dict[Expr, str] = {}

    def render(node: Expr) -> str:
        if not isinstance(node, Call):
            return str(node)
        if node in memo:
            return memo[node]
        spec = ops[node.op]
        parts = []
        for arg in node.args:
            text = render(arg)
            if spec.precedence < FUNCTION_FORM and isinstance(arg, Call):
                inner = ops[arg.op].precedence
                if inner < spec.precedence or (arg.op == node.op and len(node.args) == 1):
                    text = f"({text})"
            parts.append(text)
        memo[node] = spec.formula.format(*parts)
        return memo[node]

    return render(output)
