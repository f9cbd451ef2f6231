"""`from_hf_bert`: a `transformers.BertModel` as an AutoBERT-Zero model with the vanilla genotype.

The compiler's proof of correctness (tested in tests/test_hf_parity.py): the vanilla genotype
`matmul(softmax(scale(matmul(Q, transpose(K)))), V)` in every layer, with every weight copied from a
`BertModel` of the same sizes, gives the same outputs (max abs diff ≤ 1e-5 in float32).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertModel

from autobert_zero.errors import CompileError

from .hf_config import AutoBertZeroConfig
from .hf_model import AutoBertZeroModel
from .layers import role_path

VANILLA_GRAPH = "matmul(softmax(scale(matmul(Q, transpose(K)))), V)"

_SIZE_FIELDS = (
    "vocab_size", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps", "pad_token_id",
)

# BERT module path (inside encoder.layer.{i}) → (branch, role) of our layer.
_LAYER_ROLES = {
    "attention.self.query": ("attention", "query"),
    "attention.self.key": ("attention", "key"),
    "attention.self.value": ("attention", "value"),
    "attention.output.dense": ("attention", "output"),
    "attention.output.LayerNorm": ("norm", "mixer"),
    "intermediate.dense": ("ffn", "up"),
    "output.dense": ("ffn", "down"),
    "output.LayerNorm": ("norm", "ffn"),
}
_OUTER = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler.dense",
}


def bert_genotype_text(num_layers: int) -> str:
    """The vanilla-BERT genotype with `num_layers` layers, as text."""
    if num_layers < 1:
        raise CompileError(f"a BERT genotype needs at least one layer, got num_layers={num_layers}")
    layers = "\n".join("    attention vanilla" for _ in range(num_layers))
    return f"attention vanilla {{\n    return {VANILLA_GRAPH}\n}}\n\nbackbone {{\n{layers}\n}}\n"


def from_hf_bert(bert: BertModel, *, fused_attention: bool = True) -> AutoBertZeroModel:
    """An `AutoBertZeroModel` computing what `bert` computes, with every weight copied."""
    source = bert.config
    if getattr(source, "is_decoder", False) or getattr(source, "add_cross_attention", False):
        raise CompileError("from_hf_bert converts BERT encoders only; this BertModel is a decoder")
    position_type = getattr(source, "position_embedding_type", "absolute")
    if position_type != "absolute":
        raise CompileError(f"position_embedding_type={position_type!r} is not supported; expected 'absolute'")
    config = AutoBertZeroConfig(
        genotype=bert_genotype_text(source.num_hidden_layers),
        fused_attention=fused_attention,
        **{name: getattr(source, name) for name in _SIZE_FIELDS},
    )
    model = AutoBertZeroModel(config, add_pooling_layer=bert.pooler is not None)
    theirs = bert.state_dict()
    ours: dict[str, torch.Tensor] = {}
    for their_path, our_path in _OUTER.items():
        for kind in ("weight", "bias"):
            if f"{their_path}.{kind}" in theirs:
                ours[f"{our_path}.{kind}"] = theirs[f"{their_path}.{kind}"]
    for index in range(source.num_hidden_layers):
        for their_path, (branch, role) in _LAYER_ROLES.items():
            for kind in ("weight", "bias"):
                ours[f"encoder.{role_path(index, branch, role)}.{kind}"] = (
                    theirs[f"encoder.layer.{index}.{their_path}.{kind}"])
    model.load_state_dict(ours, strict=True)
    nn.Module.to(model, dtype=next(bert.parameters()).dtype)  # PreTrainedModel.to is mistyped for mypy
    model.train(bert.training)
    return model
