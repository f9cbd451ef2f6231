"""Layers and the encoder: stable weight names, conv kernels, LN placement, size errors, Figure 7 end to end."""

from __future__ import annotations

import pytest
import torch

from autobert_zero.compiler import (
    BRANCH_ROLES,
    build_encoder,
    build_layer,
    role_path,
)
from autobert_zero.errors import CompileError
from autobert_zero.grammar import ConvLayer, Genotype, parse_genotype
from tests.support.models import tiny_model_config
from tests.support.paths import GENOTYPES

QK_ONLY = "attention qk { return matmul(softmax(scale(matmul(Q, transpose(K)))), Q) } backbone { attention qk }"


def figure7() -> Genotype:
    return parse_genotype((GENOTYPES / "autobert_zero.abz").read_text())


def test_every_parameter_is_named_by_its_role() -> None:
    genotype = Genotype(figure7().graphs, (*figure7().layers, ConvLayer("sepconv", 3), ConvLayer("depthwise", 5)))
    encoder = build_encoder(genotype, tiny_model_config())
    roles = {role_path(i, branch, role) for i in range(genotype.num_layers)
             for branch, names in BRANCH_ROLES.items() for role in names}
    for name, _ in encoder.named_parameters():
        assert name in roles or name.rsplit(".", 1)[0] in roles, name
    names = dict(encoder.named_parameters())
    assert "layers.1.attention.query.weight" in names
    assert "layers.0.conv.depthwise_weight" in names
    assert "layers.12.conv.pointwise.weight" in names
    assert "layers.3.ffn.up.weight" in names and "layers.3.norm.ffn.bias" in names
    with pytest.raises(KeyError):
        role_path(0, "attention", "depthwise_weight")


def test_graph_without_v_has_no_value_projection() -> None:
    encoder = build_encoder(parse_genotype(QK_ONLY), tiny_model_config())
    names = {n for n, _ in encoder.named_parameters()}
    assert "layers.0.attention.key.weight" in names
    assert not any(".value." in n for n in names)


@pytest.mark.parametrize(("kind", "rows"), [("light", 4), ("depthwise", 32), ("sepconv", 32)])
def test_conv_kernels_are_stored_at_their_own_size(kind: str, rows: int) -> None:
    layer = build_layer(Genotype((), (ConvLayer(kind, 9, 2),)), 0, tiny_model_config())
    assert layer.mixer.depthwise_weight.shape == (rows, 9)
    assert (layer.mixer.pointwise is not None) == (kind == "sepconv")
    hidden = torch.randn(2, 7, 32)
    assert layer(hidden, torch.ones(2, 7, dtype=torch.bool)).shape == (2, 7, 32)


def test_light_kernel_is_softmax_normalised_and_shared_per_head() -> None:
    layer = build_layer(Genotype((), (ConvLayer("light", 3),)), 0, tiny_model_config())
    kernel = layer.mixer.kernel()  # (hidden, 1, k)
    assert kernel.shape == (32, 1, 3)
    torch.testing.assert_close(kernel.sum(-1), torch.ones(32, 1))
    assert torch.equal(kernel[0], kernel[7]) and not torch.equal(kernel[7], kernel[8])  # 8 channels per head


def test_pre_layer_norm_adds_a_final_norm_and_changes_outputs() -> None:
    genotype = figure7()
    torch.manual_seed(0)
    post = build_encoder(genotype, tiny_model_config()).eval()
    torch.manual_seed(0)
    pre = build_encoder(genotype, tiny_model_config(layer_norm_position="pre")).eval()
    assert post.final_norm is None and pre.final_norm is not None
    hidden, keep = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool)
    assert not torch.allclose(post(hidden, keep), pre(hidden, keep))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"hidden_size": 30}, "multiple of num_attention_heads"),
    ({"layer_norm_position": "middle"}, "layer_norm_position"),
    ({"hidden_act": "wobble"}, "hidden_act"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
])
def test_bad_sizes_raise_compile_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(CompileError, match=message):
        build_encoder(figure7(), tiny_model_config(**overrides))


def test_bad_hand_built_layers_raise_compile_error() -> None:
    with pytest.raises(CompileError, match="odd"):
        build_layer(Genotype((), (ConvLayer("light", 4),)), 0, tiny_model_config())
    with pytest.raises(CompileError, match="out of range"):
        build_layer(figure7(), 12, tiny_model_config())
    with pytest.raises(CompileError, match="no layers"):
        build_encoder(Genotype((), ()), tiny_model_config())


def test_figure7_forward_and_backward_are_finite() -> None:
    torch.manual_seed(0)
    encoder = build_encoder(figure7(), tiny_model_config()).train()
    hidden = torch.randn(3, 7, 32, requires_grad=True)
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[1, 4:] = False
    out = encoder(hidden, keep)
    (out[keep].pow(2).mean()).backward()
    assert torch.isfinite(out).all()
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_layers_reusing_a_graph_share_one_core() -> None:
    encoder = build_encoder(figure7(), tiny_model_config())
    assert encoder.layers[5].mixer.core is encoder.layers[7].mixer.core  # both `attention a6`
    assert encoder.layers[5].mixer.core is not encoder.layers[3].mixer.core
