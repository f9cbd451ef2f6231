"""BIWS supernet: bounded sharing, exact extraction, cheap switching, refusals."""

from __future__ import annotations

import random

import pytest
import torch

from autobert_zero import load_genotype
from autobert_zero.compiler import (
    AutoBertZeroConfig,
    AutoBertZeroSupernetForMaskedLM,
    compile_core,
    shared_weight,
)
from autobert_zero.compiler.supernet import centre_taps
from autobert_zero.errors import SupernetError
from autobert_zero.grammar import CONV_DILATIONS, CONV_KERNELS, CONV_TYPES, ConvLayer, Genotype, default_language
from tests.support.paths import REPO

BERT = load_genotype(REPO / "genotypes" / "bert.abz")
FIGURE7 = load_genotype(REPO / "genotypes" / "autobert_zero.abz")
SIZES = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 97}


@pytest.fixture(scope="module")
def supernet() -> AutoBertZeroSupernetForMaskedLM:
    torch.manual_seed(0)
    model = AutoBertZeroSupernetForMaskedLM(AutoBertZeroConfig.from_genotype(BERT, **SIZES))
    with torch.no_grad():  # LayerNorms away from 1/0 and biases away from 0, so a wrong copy shows
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, SIZES["vocab_size"], (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padding
    mask[2, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _conv_sweep() -> list[Genotype]:
    """12-layer all-conv genotypes that together use every conv type × kernel × dilation."""
    combos = [ConvLayer(k, n, d) for k in CONV_TYPES for n in CONV_KERNELS for d in CONV_DILATIONS]
    return [Genotype((), tuple(combos[i:i + 12])) for i in range(0, len(combos), 12)]


def _assert_extraction_equal(supernet: AutoBertZeroSupernetForMaskedLM, genotype: Genotype) -> None:
    supernet.activate(genotype)
    child = supernet.extract(genotype).eval()
    inputs = _inputs()
    with torch.no_grad():
        expected = supernet(**inputs, output_hidden_states=True)
        got = child(**inputs, output_hidden_states=True)
    assert torch.equal(expected.logits, got.logits)
    for a, b in zip(expected.hidden_states, got.hidden_states, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["bert", "figure7"])
def test_extracted_shipped_genotypes_equal_the_active_supernet(supernet, name):
    _assert_extraction_equal(supernet, BERT if name == "bert" else FIGURE7)


def test_extracted_sampled_genotypes_equal_the_active_supernet(supernet):
    rng = random.Random(7)
    for _ in range(6):
        _assert_extraction_equal(supernet, supernet.sample(rng))


def test_every_conv_type_kernel_and_dilation_extracts_exactly(supernet):
    sweep = _conv_sweep()
    assert len(sweep) == 6
    for genotype in sweep:
        _assert_extraction_equal(supernet, genotype)


def test_extracted_weights_are_copies_of_the_shared_ones(supernet):
    genotype = _conv_sweep()[0]  # light convs, kernels 1..15
    child = supernet.extract(genotype)
    shared = supernet.state_dict()
    for name, weight in child.state_dict().items():
        source, taps = shared_weight(name, genotype, supernet.max_kernel)
        expected = shared[source] if taps is None else shared[source][:, taps]
        assert torch.equal(weight, expected), name
    with torch.no_grad():
        next(child.parameters()).add_(1.0)  # the copy is independent of the supernet
    assert not torch.equal(next(child.parameters()), next(supernet.parameters()))


def test_shared_weight_rule_names_the_conv_type_and_the_centre_taps():
    genotype = Genotype((), (ConvLayer("depthwise", 9, 2),))
    assert shared_weight("autobert.encoder.layers.0.conv.depthwise_weight", genotype, 65) == (
        "autobert.encoder.layers.0.conv.depthwise.depthwise_weight", slice(28, 37))
    assert shared_weight("autobert.encoder.layers.0.conv.input.weight", genotype, 65) == (
        "autobert.encoder.layers.0.conv.depthwise.input.weight", None)
    assert shared_weight("autobert.encoder.layers.0.ffn.up.weight", genotype, 65) == (
        "autobert.encoder.layers.0.ffn.up.weight", None)
    assert centre_taps(1, 65) == slice(32, 33) and centre_taps(65, 65) == slice(0, 65)


def test_parameter_count_is_bounded_and_keyed_by_position_branch_and_role(supernet):
    names = {n for n, _ in supernet.named_parameters()}
    count = sum(p.numel() for p in supernet.parameters())
    prefix = "autobert.encoder.layers.5."
    for role in ("query", "key", "value", "output"):
        assert f"{prefix}attention.{role}.weight" in names
    for kind in CONV_TYPES:
        assert f"{prefix}conv.{kind}.depthwise_weight" in names
    rows = {"light": SIZES["num_attention_heads"], "depthwise": SIZES["hidden_size"], "sepconv": SIZES["hidden_size"]}
    for kind, n in rows.items():
        assert supernet.get_parameter(f"{prefix}conv.{kind}.depthwise_weight").shape == (n, max(CONV_KERNELS))
    rng = random.Random(0)
    for _ in range(20):
        supernet.activate(supernet.sample(rng))
    assert sum(p.numel() for p in supernet.parameters()) == count  # switching creates no weights


def test_switching_reuses_cached_cores(supernet):
    supernet.activate(FIGURE7)
    layer = supernet.super_layers[1]
    first = layer.attention.core
    supernet.activate(BERT)
    assert layer.attention.core is not first
    supernet.activate(FIGURE7)
    assert layer.attention.core is first  # from the core cache: no recompilation
    assert first is compile_core(FIGURE7.layer_graph(1), 16, fused=True)


def test_only_the_active_path_gets_gradients():
    torch.manual_seed(1)
    model = AutoBertZeroSupernetForMaskedLM(AutoBertZeroConfig.from_genotype(BERT, **SIZES))
    genotype = Genotype(BERT.graphs[:1], (ConvLayer("light", 3), *BERT.layers[1:]))
    model.activate(genotype)
    ids = _inputs()["input_ids"]
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert "autobert.encoder.layers.0.conv.light.depthwise_weight" in grads
    assert "autobert.encoder.layers.0.conv.depthwise.depthwise_weight" not in grads
    assert "autobert.encoder.layers.0.attention.query.weight" not in grads
    assert "autobert.encoder.layers.1.attention.value.weight" in grads
    assert "autobert.encoder.layers.1.conv.light.input.weight" not in grads
    taps = model.get_parameter("autobert.encoder.layers.0.conv.light.depthwise_weight").grad
    assert taps is not None
    assert taps[:, 31:34].abs().sum() > 0 and taps[:, :31].abs().sum() == 0  # only the centre 3 taps


def test_extract_leaves_the_supernet_and_the_rng_untouched(supernet):
    supernet.activate(BERT)
    before = torch.get_rng_state()
    supernet.extract(FIGURE7)
    assert torch.equal(torch.get_rng_state(), before)
    assert supernet.active == BERT


def test_genotypes_the_supernet_cannot_host_are_refused(supernet):
    four = Genotype((), tuple(ConvLayer("light", 3) for _ in range(4)))
    with pytest.raises(SupernetError, match="4 layers; this supernet hosts 12-layer"):
        supernet.activate(four)
    with pytest.raises(SupernetError, match="4 layers"):
        supernet.extract(four)
    huge = Genotype((), tuple(ConvLayer("light", 129 if i == 3 else 3) for i in range(12)))
    with pytest.raises(SupernetError, match="layer 4: conv light kernel=129"):
        supernet.activate(huge)


def test_sampled_candidates_use_the_supernet_language(supernet):
    rng = random.Random(5)
    genotype = supernet.sample(rng, conv_probability=1.0)
    assert genotype.num_layers == 12
    assert all(isinstance(layer, ConvLayer) for layer in genotype.layers)
    assert supernet.language is default_language()


def test_supernet_round_trips_through_save_pretrained(supernet, tmp_path):
    supernet.save_pretrained(tmp_path)
    loaded = AutoBertZeroSupernetForMaskedLM.from_pretrained(tmp_path).eval()
    for (name, a), (_, b) in zip(supernet.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    loaded.activate(FIGURE7)
    supernet.activate(FIGURE7)
    inputs = _inputs()
    with torch.no_grad():
        assert torch.equal(supernet(**inputs).logits, loaded(**inputs).logits)


@pytest.mark.parametrize("per_branch", [("norm",), ("norm", "ffn")])
def test_per_branch_norms_and_ffn_extract_exactly_and_survive_a_round_trip(per_branch, tmp_path):
    torch.manual_seed(2)
    model = AutoBertZeroSupernetForMaskedLM(AutoBertZeroConfig.from_genotype(BERT, **SIZES), per_branch=per_branch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    names = {n for n, _ in model.named_parameters()}
    assert "autobert.encoder.layers.0.conv_norm.mixer.weight" in names
    assert ("autobert.encoder.layers.0.conv_ffn.up.weight" in names) == ("ffn" in per_branch)
    _assert_extraction_equal(model, FIGURE7)
    child = model.extract(FIGURE7)
    conv_norm = model.get_parameter("autobert.encoder.layers.0.conv_norm.mixer.weight")
    assert torch.equal(child.get_parameter("autobert.encoder.layers.0.norm.mixer.weight"), conv_norm)
    assert torch.equal(child.get_parameter("autobert.encoder.layers.1.norm.mixer.weight"),
                       model.get_parameter("autobert.encoder.layers.1.norm.mixer.weight"))
    assert not hasattr(child.config, "supernet_per_branch")
    model.save_pretrained(tmp_path)
    loaded = AutoBertZeroSupernetForMaskedLM.from_pretrained(tmp_path)
    assert loaded.per_branch == per_branch


def test_uses_v_split_gives_value_free_graphs_their_own_projections(tmp_path):
    torch.manual_seed(3)
    model = AutoBertZeroSupernetForMaskedLM(AutoBertZeroConfig.from_genotype(BERT, **SIZES), per_branch=("uses_v",))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    names = {n for n, _ in model.named_parameters()}
    assert {"autobert.encoder.layers.1.attention_nov.query.weight",
            "autobert.encoder.layers.1.attention_nov.output.weight"} <= names
    assert "autobert.encoder.layers.1.attention_nov.value.weight" not in names  # value-free: no V projection
    # Figure 7's layer 2 graph reads no V, its layer 10 graph does; BERT's all do
    for genotype in (FIGURE7, BERT, *(model.sample(random.Random(seed)) for seed in range(4))):
        _assert_extraction_equal(model, genotype)
    child = model.extract(FIGURE7)
    for index, source in ((1, "attention_nov"), (9, "attention")):
        assert torch.equal(child.get_parameter(f"autobert.encoder.layers.{index}.attention.query.weight"),
                           model.get_parameter(f"autobert.encoder.layers.{index}.{source}.query.weight"))
    bert_child = model.extract(BERT)
    assert torch.equal(bert_child.get_parameter("autobert.encoder.layers.1.attention.query.weight"),
                       model.get_parameter("autobert.encoder.layers.1.attention.query.weight"))
    model.save_pretrained(tmp_path)
    loaded = AutoBertZeroSupernetForMaskedLM.from_pretrained(tmp_path)
    assert loaded.per_branch == ("uses_v",)
    loaded.eval()
    _assert_extraction_equal(loaded, FIGURE7)
    with torch.no_grad():
        model.activate(FIGURE7)
        assert torch.equal(model(**_inputs()).logits, loaded(**_inputs()).logits)
