"""Drawings of attention graphs: Graphviz DOT text, and a self-contained SVG (no Graphviz needed).

The SVG layout is layered: a node's row is its longest distance from the inputs, so data flows top to
bottom from Q, K, V to the output. Operands of non-commutative binary ops are numbered on their edges.
"""

from __future__ import annotations

from html import escape

from .ir import AttentionGraph, Call, Expr, Genotype, Input
from .language import Language, default_language

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 112, 34, 24, 44, 16
INPUT_FILL, OP_FILL, OUTPUT_FILL = "#dbeafe", "#f3f4f6", "#dcfce7"


def _nodes(graph: AttentionGraph) -> list[Expr]:
    return list(graph.output.walk())


def _edge_label(node: Call, index: int, language: Language) -> str:
    spec = language.ops.get(node.op)
    return str(index + 1) if len(node.args) > 1 and not (spec and spec.commutative) else ""


def graph_to_dot(graph: AttentionGraph, language: Language | None = None) -> str:
    """A Graphviz digraph of one attention graph."""
    language = language or default_language()
    ids = {node: f"n{i}" for i, node in enumerate(_nodes(graph))}
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", '  node [shape=box, style="rounded,filled"];']
    for node, ident in ids.items():
        label = node.name if isinstance(node, Input) else node.op  # type: ignore[attr-defined]
        fill = INPUT_FILL if isinstance(node, Input) else OUTPUT_FILL if node == graph.output else OP_FILL
        lines.append(f'  {ident} [label="{label}", fillcolor="{fill}"];')
    for node, ident in ids.items():
        if isinstance(node, Call):
            for i, arg in enumerate(node.args):
                label = _edge_label(node, i, language)
                attrs = f' [label="{label}"]' if label else ""
                lines.append(f"  {ids[arg]} -> {ident}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def genotype_to_dot(genotype: Genotype, language: Language | None = None) -> str:
    return "\n".join(graph_to_dot(g, language) for g in genotype.graphs)


def _layout(graph: AttentionGraph) -> tuple[dict[Expr, tuple[float, float]], float, float]:
    depth: dict[Expr, int] = {}
    for node in _nodes(graph):
        depth[node] = 0 if isinstance(node, Input) else 1 + max(depth[a] for a in node.args)  # type: ignore[attr-defined]
    rows: dict[int, list[Expr]] = {}
    for node, level in depth.items():
        rows.setdefault(level, []).append(node)
    width = max(len(r) for r in rows.values()) * (NODE_W + GAP_X) - GAP_X + 2 * MARGIN
    positions: dict[Expr, tuple[float, float]] = {}
    for level, row in rows.items():
        row_width = len(row) * (NODE_W + GAP_X) - GAP_X
        x0 = (width - row_width) / 2
        for i, node in enumerate(row):
            positions[node] = (x0 + i * (NODE_W + GAP_X), MARGIN + 22 + level * (NODE_H + GAP_Y))
    height = MARGIN * 2 + 22 + (max(rows) + 1) * (NODE_H + GAP_Y) - GAP_Y
    return positions, width, height


def graph_to_svg(graph: AttentionGraph, title: str, language: Language | None = None) -> tuple[str, float, float]:
    """SVG elements for one graph (a `<g>` group), with its width and height."""
    language = language or default_language()
    positions, width, height = _layout(graph)
    parts = [f'<text x="{MARGIN}" y="{MARGIN + 8}" font-weight="bold">{escape(title)}</text>']
    for node, (x, y) in positions.items():
        if isinstance(node, Call):
            for i, arg in enumerate(node.args):
                ax, ay = positions[arg]
                x1, y1, x2, y2 = ax + NODE_W / 2, ay + NODE_H, x + NODE_W / 2, y
                parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#555" '
                             'marker-end="url(#arrow)"/>')
                label = _edge_label(node, i, language)
                if label:
                    parts.append(f'<text x="{(x1 + 3 * x2) / 4 + 4:.0f}" y="{(y1 + 3 * y2) / 4:.0f}" font-size="10" '
                                 f'fill="#b91c1c">{label}</text>')
    for node, (x, y) in positions.items():
        label = node.name if isinstance(node, Input) else node.op  # type: ignore[attr-defined]
        fill = INPUT_FILL if isinstance(node, Input) else OUTPUT_FILL if node == graph.output else OP_FILL
        parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" '
                     'stroke="#333"/>')
        parts.append(f'<text x="{x + NODE_W / 2:.0f}" y="{y + NODE_H / 2 + 4:.0f}" text-anchor="middle">'
                     f"{escape(label)}</text>")
    return "\n".join(parts), width, height


def genotype_to_svg(genotype: Genotype, language: Language | None = None) -> str:
    """One SVG document with every attention graph of the genotype side by side."""
    from .formula import formula

    groups, x, height = [], 0.0, 0.0
    for graph in genotype.graphs:
        users = [i + 1 for i, layer in enumerate(genotype.layers) if getattr(layer, "graph", None) == graph.name]
        title = f"{graph.name} (layers {', '.join(map(str, users)) or 'none'}): {formula(graph, language)}"
        body, w, h = graph_to_svg(graph, title, language)
        w = max(w, 7.2 * len(title) + 2 * MARGIN)
        groups.append(f'<g transform="translate({x:.0f},0)">\n{body}\n</g>')
        x += w
        height = max(height, h)
    defs = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{x:.0f}" height="{height:.0f}" '
            f'font-family="sans-serif" font-size="13">\n{defs}\n' + "\n".join(groups) + "\n</svg>\n")
