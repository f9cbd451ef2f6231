"""The model config the compiler tests share: microscopic sizes, so a forward pass takes milliseconds."""

from __future__ import annotations

from autobert_zero.compiler import AutoBertZeroConfig

TINY_SIZES: dict[str, int] = dict(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
                                  max_position_embeddings=64)
"""Hidden 32 over 4 heads (head dim 8); an odd intermediate size, so a mix-up of sizes cannot go unnoticed."""


def tiny_model_config(genotype: str = "", /, **overrides: object) -> AutoBertZeroConfig:
    """An `AutoBertZeroConfig` of `genotype` (text; "" for a caller that builds layers itself) at `TINY_SIZES`,
    with `overrides` (any config field) applied."""
    return AutoBertZeroConfig(genotype=genotype, **{**TINY_SIZES, **overrides})
