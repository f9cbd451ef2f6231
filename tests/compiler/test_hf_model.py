"""Hugging Face wrapper: config, Auto classes, save/load round trips, MLM and classification heads."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from autobert_zero.compiler import (
    AutoBertZeroConfig,
    AutoBertZeroForMaskedLM,
    AutoBertZeroForSequenceClassification,
    AutoBertZeroModel,
    register_auto_classes,
)
from autobert_zero.errors import ConfigError
from autobert_zero.grammar import parse_genotype, sample_genotype
from tests.support.models import tiny_model_config
from tests.support.paths import GENOTYPES

QK_ONLY = """
attention qk { return matmul(softmax(scale(matmul(Q, transpose(K)))), add(Q, K)) }
backbone { attention qk; conv depthwise kernel=5 dilation=2 }
"""
MIXED = """
attention vanilla { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }
backbone { conv sepconv kernel=3 dilation=4; attention vanilla; conv light kernel=15; attention vanilla }
"""


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    attention_mask = torch.ones(3, 7, dtype=torch.long)
    attention_mask[1, 5:] = 0
    return {"input_ids": torch.randint(1, 99, (3, 7), generator=generator), "attention_mask": attention_mask,
            "token_type_ids": torch.randint(0, 2, (3, 7), generator=generator)}


def round_trip_cases() -> list[tuple[str, dict[str, object]]]:
    sampled = sample_genotype(random.Random(5), 3, max_nodes=8).to_text()
    return [
        ((GENOTYPES / "autobert_zero.abz").read_text(), {}),
        (QK_ONLY, {}),
        (MIXED, {"layer_norm_position": "pre", "fused_attention": False}),
        (sampled, {}),
    ]


@pytest.mark.parametrize(("text", "overrides"), round_trip_cases())
def test_save_and_load_round_trip_exactly(tmp_path: Path, text: str, overrides: dict[str, object]) -> None:
    register_auto_classes()
    torch.manual_seed(0)
    model = AutoBertZeroForMaskedLM(tiny_model_config(text, **overrides)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "autobert-zero" and saved["genotype"] == text
    assert "num_hidden_layers" not in saved
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, AutoBertZeroForMaskedLM)
    assert loaded.config.parsed_genotype() == model.config.parsed_genotype()
    inputs = batch()
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)
    assert loaded.lm_head.decoder.weight is loaded.autobert.embeddings.word_embeddings.weight
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, AutoBertZeroModel)
    with torch.no_grad():
        assert torch.equal(base(**inputs).last_hidden_state, model.autobert(**inputs).last_hidden_state)


def test_config_derives_the_layer_count_from_the_genotype(tmp_path: Path) -> None:
    register_auto_classes()
    config = tiny_model_config(MIXED)
    assert config.num_hidden_layers == 4
    config.num_hidden_layers = 4  # consistent: accepted
    with pytest.raises(ConfigError, match="genotype"):
        config.num_hidden_layers = 3
    assert AutoBertZeroConfig().num_hidden_layers == 0
    config.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(again, AutoBertZeroConfig) and again.genotype == MIXED and again.num_hidden_layers == 4
    ir = parse_genotype(MIXED)
    assert AutoBertZeroConfig.from_genotype(ir).parsed_genotype() == ir


def test_masked_lm_loss_ignores_minus_100() -> None:
    torch.manual_seed(0)
    model = AutoBertZeroForMaskedLM(tiny_model_config(MIXED)).eval()
    inputs = batch()
    labels = inputs["input_ids"].clone()
    labels[:, ::2] = -100
    out = model(**inputs, labels=labels)
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(out.logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, expected)
    assert out.logits.shape == (3, 7, 99)


def test_sparse_mlm_logits_give_the_same_loss_and_gradients() -> None:
    torch.manual_seed(0)
    dense = AutoBertZeroForMaskedLM(tiny_model_config(MIXED)).eval()
    sparse = AutoBertZeroForMaskedLM(tiny_model_config(MIXED, sparse_mlm_logits=True)).eval()
    sparse.load_state_dict(dense.state_dict())
    inputs = batch()
    labels = inputs["input_ids"].clone()
    labels[:, ::3] = -100
    out_dense, out_sparse = dense(**inputs, labels=labels), sparse(**inputs, labels=labels)
    torch.testing.assert_close(out_sparse.loss, out_dense.loss)
    assert out_sparse.logits.shape == (int((labels != -100).sum()), 99)
    torch.testing.assert_close(out_sparse.logits, out_dense.logits[labels != -100])
    out_dense.loss.backward()
    out_sparse.loss.backward()
    for (name, a), (_, b) in zip(dense.named_parameters(), sparse.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    assert sparse(**inputs).logits.shape == (3, 7, 99)  # without labels: the usual dense logits


def test_sequence_classification_losses() -> None:
    torch.manual_seed(0)
    inputs = batch()
    regression = AutoBertZeroForSequenceClassification(tiny_model_config(MIXED, num_labels=1)).eval()
    out = regression(**inputs, labels=torch.tensor([0.5, 1.0, -2.0]))
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1),
                                                                      torch.tensor([0.5, 1.0, -2.0])))
    assert regression.config.problem_type == "regression"
    single = AutoBertZeroForSequenceClassification(tiny_model_config(MIXED, num_labels=3)).eval()
    labels = torch.tensor([0, 2, 1])
    out = single(**inputs, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    multi = AutoBertZeroForSequenceClassification(
        tiny_model_config(MIXED, num_labels=2, problem_type="multi_label_classification")).eval()
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = multi(**inputs, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets))
    register_auto_classes()
    assert isinstance(AutoModelForSequenceClassification.from_config(tiny_model_config(MIXED)),
                      AutoBertZeroForSequenceClassification)


def test_base_model_outputs_hidden_states_tuples_and_embeds() -> None:
    torch.manual_seed(0)
    model = AutoBertZeroModel(tiny_model_config(MIXED)).eval()
    inputs = batch()
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        assert out.hidden_states is not None and len(out.hidden_states) == 5
        assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
        as_tuple = model(**inputs, return_dict=False)
        assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.last_hidden_state)
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        from_embeds = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"],
                            token_type_ids=inputs["token_type_ids"])
        assert torch.equal(from_embeds.last_hidden_state, out.last_hidden_state)
    with pytest.raises(ValueError, match="exactly one"):
        model()


def test_empty_genotype_and_empty_rows() -> None:
    with pytest.raises(ConfigError, match="genotype is empty"):
        AutoBertZeroModel(AutoBertZeroConfig(hidden_size=32, num_attention_heads=4))
    model = AutoBertZeroModel(tiny_model_config(MIXED)).eval()
    inputs = batch()
    inputs["attention_mask"][2] = 0  # a row without any real token stays finite
    assert torch.isfinite(model(**inputs).last_hidden_state).all()


def test_training_mode_backward_through_the_whole_model() -> None:
    torch.manual_seed(0)
    model = AutoBertZeroForMaskedLM(tiny_model_config((GENOTYPES / "autobert_zero.abz").read_text())).train()
    inputs = batch()
    out = model(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
