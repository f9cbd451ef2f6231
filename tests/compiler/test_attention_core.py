"""Attention cores: explicit fx graphs, sharing, padding masks, the SDPA lowering and its equivalence."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from autobert_zero.compiler import compile_core, find_fused_attention
from autobert_zero.errors import CompileError
from autobert_zero.grammar import AttentionGraph, Call, Expr, Input, infer_shapes, parse_genotype
from tests.support.paths import FIXTURES, GENOTYPES

Q, K, V = Input("Q"), Input("K"), Input("V")


def call(op: str, *args: Expr) -> Call:
    return Call(op, args)


def vanilla(name: str = "vanilla") -> AttentionGraph:
    logits = call("scale", call("matmul", Q, call("transpose", K)))
    return AttentionGraph(name, call("matmul", call("softmax", logits), V))


def run(graph: AttentionGraph, fused: bool, keep: torch.Tensor, dtype: torch.dtype = torch.float64,
        seed: int = 0, dropout_p: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    batch, length = keep.shape
    inputs = {n: torch.randn(batch, 2, length, 8, generator=generator, dtype=dtype) for n in "QKV"}
    core = compile_core(graph, 8, fused=fused)
    return core(*(inputs[n] for n in graph.inputs_used), keep, dropout_p)


def ops_in(graph: AttentionGraph, fused: bool) -> list[str]:
    core = compile_core(graph, 8, fused=fused)
    return [getattr(n.target, "__name__", str(n.target)) for n in core.graph.nodes
            if n.op in ("call_function", "call_method")]


def keep_mask() -> torch.Tensor:
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[1, 4:] = False
    keep[2, 2:] = False
    return keep


def test_vanilla_unfused_matches_a_hand_written_attention() -> None:
    keep = keep_mask()
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 6, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(8)
    logits = logits.masked_fill(~keep[:, None, None, :], float("-inf"))
    expected = torch.softmax(logits, -1) @ v
    torch.testing.assert_close(run(vanilla(), False, keep), expected)
    torch.testing.assert_close(run(vanilla(), True, keep), expected)


def test_core_is_an_explicit_fx_graph_with_one_node_per_shared_expression() -> None:
    shared = call("add", Q, K)
    graph = AttentionGraph("g", call("matmul", call("softmax", call("matmul", shared, call("transpose", shared))),
                                     shared))
    names = ops_in(graph, fused=False)
    assert names.count("add") == 1  # add(Q, K) appears three times in the graph, computed once
    core = compile_core(graph, 8, fused=False)
    assert [n.target for n in core.graph.nodes if n.op == "placeholder"] == ["q", "k", "keep", "dropout_p"]


def test_unused_v_has_no_placeholder() -> None:
    graph = AttentionGraph("qk", call("matmul", call("softmax", call("matmul", Q, call("transpose", K))), Q))
    core = compile_core(graph, 8)
    assert "v" not in [n.target for n in core.graph.nodes if n.op == "placeholder"]


def test_equal_graphs_share_one_compiled_core() -> None:
    assert compile_core(vanilla("a"), 8) is compile_core(vanilla("b"), 8)
    assert compile_core(vanilla(), 8, fused=True) is not compile_core(vanilla(), 8, fused=False)
    assert compile_core(vanilla(), 8) is not compile_core(vanilla(), 16)  # scale bakes d in


def test_redundant_masks_are_skipped() -> None:
    # softmax's input needs the -inf mask; matmul(P, V) needs none: P is zero at padded columns.
    assert ops_in(vanilla(), fused=False).count("masked_fill") == 1
    # matmul(transpose(Q), K) contracts over positions: K's padded rows are zeroed.
    graph = AttentionGraph("lin", call("matmul", Q, call("matmul", call("transpose", Q), K)))
    assert ops_in(graph, fused=False).count("masked_fill") == 1
    # Elementwise ops keep zeros when f(0) = 0 (neg, softsign), and lose them otherwise (logsigmoid).
    probs = call("softmax", call("scale", call("matmul", Q, call("transpose", K))))
    for op, masks in (("neg", 1), ("softsign", 1), ("logsigmoid", 2)):
        graph = AttentionGraph(op, call("matmul", call(op, probs), V))
        assert ops_in(graph, fused=False).count("masked_fill") == masks, op


@pytest.mark.parametrize("spelling", [
    "matmul(softmax(scale(matmul(Q, transpose(K)))), V)",
    "matmul(softmax(matmul(scale(Q), transpose(K))), V)",
    "matmul(softmax(matmul(Q, transpose(scale(K)))), V)",
    "matmul(softmax(matmul(Q, scale(transpose(K)))), V)",
    "matmul(softmax(scale(scale(matmul(Q, transpose(K))))), V)",
    "matmul(softmax(matmul(Q, transpose(K))), V)",
    "matmul(softmax(scale(matmul(add(Q, K), transpose(neg(K))))), add(V, Q))",
])
def test_scaled_dot_product_spellings_are_fused_and_equal(spelling: str) -> None:
    graph = parse_genotype(f"attention g {{ return {spelling} }} backbone {{ attention g }}").graphs[0]
    assert "scaled_dot_product_attention" in ops_in(graph, fused=True)
    assert "softmax" not in ops_in(graph, fused=True)
    keep = keep_mask()
    torch.testing.assert_close(run(graph, True, keep), run(graph, False, keep))
    torch.testing.assert_close(run(graph, True, keep, torch.float32), run(graph, False, keep, torch.float32))


def test_shared_softmax_is_not_fused() -> None:
    probs = call("softmax", call("scale", call("matmul", Q, call("transpose", K))))
    graph = AttentionGraph("g", call("add", call("matmul", probs, V), call("matmul", probs, Q)))
    assert find_fused_attention(graph.output, infer_shapes(graph)) == {}
    keep = keep_mask()
    torch.testing.assert_close(run(graph, True, keep), run(graph, False, keep))


def test_figure7_graphs_fuse_and_match() -> None:
    genotype = parse_genotype((GENOTYPES / "autobert_zero.abz").read_text())
    keep = keep_mask()
    for graph in genotype.graphs:
        assert "scaled_dot_product_attention" in ops_in(graph, fused=True), graph.name
        torch.testing.assert_close(run(graph, True, keep), run(graph, False, keep))


def test_attention_dropout_only_with_positive_rate() -> None:
    keep = keep_mask()
    for fused in (False, True):
        torch.manual_seed(0)
        dropped = run(vanilla(), fused, keep, dropout_p=0.5)
        assert not torch.allclose(dropped, run(vanilla(), fused, keep))
    assert "dropout" in ops_in(vanilla(), fused=False)


def test_fused_core_calls_sdpa_with_the_graph_scale() -> None:
    core = compile_core(vanilla(), 8, fused=True)
    (node,) = [n for n in core.graph.nodes if n.target is F.scaled_dot_product_attention]
    assert node.kwargs["scale"] == pytest.approx(1 / math.sqrt(8))


def test_hand_built_invalid_graphs_raise_compile_error() -> None:
    with pytest.raises(CompileError, match="L×L"):
        compile_core(AttentionGraph("bad", call("matmul", Q, call("transpose", K))), 8)
    with pytest.raises(CompileError, match="frobnicate"):
        compile_core(AttentionGraph("bad", call("frobnicate", Q)), 8)
    with pytest.raises(CompileError, match="cannot be compiled"):
        compile_core(AttentionGraph("bad", call("matmul", Q, K)), 8)


# ---------------------------------------------------------------------------------------------------
# Golden text of the generated code (STYLE.md): a change to what the compiler emits shows up as a diff here.
# After an intended change, regenerate with `ABZ_UPDATE_GOLDEN=1 python -m pytest tests/compiler -k golden`
# and review the diff of tests/fixtures/golden/.

GOLDEN = FIXTURES / "golden"


def generated_code(core: torch.fx.GraphModule) -> str:
    """The core's generated `forward`, without fx's surrounding blank lines and trailing spaces."""
    return "\n".join(line.rstrip() for line in core.code.strip("\n").splitlines()).strip() + "\n"


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_golden_vanilla_core_code(fused: bool) -> None:
    path = GOLDEN / f"vanilla_core_{'fused' if fused else 'unfused'}.py.txt"
    code = generated_code(compile_core(vanilla(), 8, fused=fused))
    if os.environ.get("ABZ_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
    assert path.is_file(), f"{path} is missing; create it with ABZ_UPDATE_GOLDEN=1"
    assert code == path.read_text(encoding="utf-8"), (
        f"the generated code differs from {path}; if the change is intended, regenerate with ABZ_UPDATE_GOLDEN=1")
