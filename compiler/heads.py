"""BERT's parts around the backbone: embeddings, pooler and the masked-LM head (defined in `portable_heads`)."""

from __future__ import annotations

from .portable_heads import Embeddings, MaskedLMHead, Pooler

__all__ = ["Embeddings", "MaskedLMHead", "Pooler"]
