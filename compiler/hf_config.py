"""`AutoBertZeroConfig`: the Hugging Face config of a compiled genotype — its text plus the sizes.

The genotype is stored as TEXT in `config.json` (persist text, never pickled objects), so a saved model
is rebuilt from the config alone; sizes are not part of the genotype, so one genotype runs at any size.
`num_hidden_layers` is derived from the genotype, never stored.
"""

from __future__ import annotations

import functools
from typing import Any

from transformers import PretrainedConfig

from autobert_zero.errors import ConfigError
from autobert_zero.grammar import Genotype, parse_genotype


class AutoBertZeroConfig(PretrainedConfig):
    """Config of an AutoBERT-Zero model (field names and defaults follow `BertConfig`, base size).

    Fields:
        genotype: the genotype text (the language of `grammar/genotype.lark`); layers come from it.
        vocab_size, hidden_size, num_attention_heads, intermediate_size: sizes, as in BERT.
        hidden_act: FFN (and MLM head) activation, a `transformers.activations.ACT2FN` name.
        hidden_dropout_prob: dropout on embeddings and on every residual branch.
        attention_probs_dropout_prob: dropout on attention probabilities (softmax over positions).
        max_position_embeddings, type_vocab_size: learned position / segment embedding table sizes.
        initializer_range: std of the normal initialisation of Linear, Embedding and conv kernels.
        layer_norm_eps: LayerNorm epsilon.
        pad_token_id: the padding token (its word embedding is initialised to zero).
        layer_norm_position: "post" (BERT) or "pre" (LayerNorm before each branch, plus a final one).
        fused_attention: lower recognised scaled-dot-product attention to
            `F.scaled_dot_product_attention` (same outputs, faster).
        classifier_dropout: dropout before the classification head (None: `hidden_dropout_prob`).
        tie_word_embeddings: the MLM decoder shares the word-embedding matrix.
        sparse_mlm_logits: when labels are given, run the MLM head only at the labelled positions
            (labels != -100): the same loss with about 85% less head compute; `logits` is then
            (N_labelled, vocab) instead of (B, L, vocab). Off by default (HF's usual output shape);
            `abz pretrain` turns it on.
    """

    model_type = "autobert-zero"

    genotype: str = ""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    layer_norm_position: str = "post"
    fused_attention: bool = True
    classifier_dropout: float | None = None
    tie_word_embeddings: bool = True
    sparse_mlm_logits: bool = False

    @classmethod
    def from_genotype(cls, genotype: Genotype, **kwargs: Any) -> AutoBertZeroConfig:
        """A config holding `genotype` (printed to text) and the given sizes."""
        return cls(genotype=genotype.to_text(), **kwargs)

    def parsed_genotype(self) -> Genotype:
        """The genotype IR (parsed and validated once per distinct text; raises `GenotypeError`)."""
        if not self.genotype.strip():
            raise ConfigError("AutoBertZeroConfig.genotype is empty: set it to a genotype text, e.g. the "
                              "contents of genotypes/bert.abz, or use AutoBertZeroConfig.from_genotype(ir)")
        return _parse(self.genotype)

    @property
    def num_hidden_layers(self) -> int:
        """Number of backbone layers, derived from the genotype (0 while no genotype is set)."""
        return self.parsed_genotype().num_layers if self.genotype.strip() else 0

    @num_hidden_layers.setter
    def num_hidden_layers(self, value: int) -> None:
        if value != self.num_hidden_layers:
            raise ConfigError(f"num_hidden_layers={value} disagrees with the genotype, which has "
                              f"{self.num_hidden_layers} layers; the layer count comes from the genotype")


@functools.lru_cache(maxsize=64)
def _parse(text: str) -> Genotype:
    return parse_genotype(text, "<config.genotype>")
