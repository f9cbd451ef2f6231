"""The compiler's proof of correctness: vanilla genotype + BERT's weights = BertModel's outputs (≤ 1e-5, fp32)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from autobert_zero.compiler import bert_genotype_text, from_hf_bert
from autobert_zero.errors import CompileError
from autobert_zero.grammar import parse_genotype
from tests.support.paths import GENOTYPES


def bert(attn_implementation: str | None) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37)
    if attn_implementation is not None:  # None: transformers' default (sdpa in 5.x)
        config._attn_implementation = attn_implementation
    model = BertModel(config).eval()
    assert model.config._attn_implementation == (attn_implementation or "sdpa")
    return model


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, 99, (3, 7), generator=generator)
    attention_mask = torch.ones(3, 7, dtype=torch.long)
    attention_mask[1, 4:] = 0
    attention_mask[2, 6:] = 0
    token_type_ids = torch.zeros(3, 7, dtype=torch.long)
    token_type_ids[:, 3:] = 1
    token_type_ids[1, 4:] = 0
    return {"input_ids": input_ids.masked_fill(attention_mask == 0, 0), "attention_mask": attention_mask,
            "token_type_ids": token_type_ids}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("attn_implementation", [None, "eager", "sdpa"])
def test_vanilla_genotype_reproduces_bert(attn_implementation: str | None, fused: bool) -> None:
    reference = bert(attn_implementation)
    model = from_hf_bert(reference, fused_attention=fused).eval()
    inputs = batch()
    with torch.no_grad():
        expected = reference(**inputs)
        actual = model(**inputs)
    assert (actual.last_hidden_state - expected.last_hidden_state).abs().max() <= 1e-5
    assert (actual.pooler_output - expected.pooler_output).abs().max() <= 1e-5
    without_types = {k: v for k, v in inputs.items() if k != "token_type_ids"}
    with torch.no_grad():
        assert torch.allclose(model(**without_types).last_hidden_state,
                              reference(**without_types).last_hidden_state, atol=1e-5)


def test_generated_bert_genotype_equals_the_shipped_one() -> None:
    shipped = parse_genotype((GENOTYPES / "bert.abz").read_text())
    assert parse_genotype(bert_genotype_text(12)).canonical() == shipped.canonical()


def test_decoder_bert_is_rejected() -> None:
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=37, is_decoder=True)
    with pytest.raises(CompileError, match="decoder"):
        from_hf_bert(BertModel(config))
