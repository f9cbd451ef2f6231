"""`AutoBertZeroConfig`'s fields, and the config class of exported folders (shipped in every exported folder).

The package's config (`hf_config.AutoBertZeroConfig`) subclasses this class, so both have the same fields
and defaults (`config.json` stores only values that differ from the defaults, so they must agree). The
package builds the backbone from the genotype TEXT; an exported folder, which cannot parse it (no grammar
there), builds it from `compiled_genotype`, the genotype pre-parsed and lowered into JSON by the exporter
(`remote_code`), whose format `portable_backbone` documents. The module imports only transformers.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class AutoBertZeroConfig(PretrainedConfig):
    """Config of an AutoBERT-Zero model (field names and defaults follow `BertConfig`, base size).

    Fields:
        genotype: the genotype text (the language of `grammar/genotype.lark`); layers come from it.
        compiled_genotype: the genotype as JSON layers and attention-core programs, written into exported
            folders (`portable_backbone`); the package ignores it and recomputes it on every save.
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
    compiled_genotype: dict[str, Any] | None = None
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

    @property
    def num_hidden_layers(self) -> int:
        """Number of backbone layers, derived from `compiled_genotype` (0 while there is none)."""
        return len(self.compiled_genotype.get("layers", ())) if self.compiled_genotype else 0

    @num_hidden_layers.setter
    def num_hidden_layers(self, value: int) -> None:
        if value != self.num_hidden_layers:
            raise ValueError(f"num_hidden_layers={value} disagrees with compiled_genotype, which has "
                             f"{self.num_hidden_layers} layers; the layer count comes from the genotype")
