"""IR → text: the printer half of the round trip `parse_genotype(print_genotype(g)) == g`.

Op nodes used more than once are bound to names `t1, t2, ...` in topological order; every other node is
written inline. Layers are printed one per line with every conv option spelled out.
"""

from __future__ import annotations

from collections import Counter

from .ir import AttentionGraph, AttentionLayer, Call, Expr, Genotype

INDENT = "    "


def shared_nodes(graph: AttentionGraph) -> list[Call]:
    """Op nodes read by more than one operand slot, operands first."""
    uses: Counter[Expr] = Counter()
    for node in graph.calls:
        uses.update(node.args)
    return [n for n in graph.calls if uses[n] > 1 and n != graph.output]


def print_graph(graph: AttentionGraph) -> str:
    names: dict[Expr, str] = {node: f"t{i}" for i, node in enumerate(shared_nodes(graph), start=1)}

    def expr(node: Expr, top: bool = False) -> str:
        if not top and node in names:
            return names[node]
        if isinstance(node, Call):
            return f"{node.op}({', '.join(expr(a) for a in node.args)})"
        return str(node)

    lines = [f"attention {graph.name} {{"]
    lines += [f"{INDENT}{name} = {expr(node, top=True)}" for node, name in names.items()]
    lines.append(f"{INDENT}return {expr(graph.output, top=True)}")
    lines.append("}")
    return "\n".join(lines)


def print_genotype(genotype: Genotype) -> str:
    parts = [print_graph(g) for g in genotype.graphs]
    layers = []
    for layer in genotype.layers:
        if isinstance(layer, AttentionLayer):
            layers.append(f"{INDENT}attention {layer.graph}")
        else:
            layers.append(f"{INDENT}conv {layer.kind} kernel={layer.kernel} dilation={layer.dilation}")
    parts.append("backbone {\n" + "\n".join(layers) + "\n}")
    return "\n\n".join(parts) + "\n"
