"""BERT's parts around the backbone: embeddings, pooler and the masked-LM head.

They match `transformers.BertModel` term for term (so `from_hf_bert` copies weights one to one) but
keep no buffers: position ids are made with `torch.arange` in `forward`, token types default to zeros.
This module is portable (torch and transformers only): `remote_code` copies it verbatim into exported folders.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN

from .portable_config import AutoBertZeroConfig


class Embeddings(nn.Module):
    """word + position + token-type embeddings → LayerNorm → dropout."""

    def __init__(self, config: AutoBertZeroConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, L) or inputs_embeds (B, L, h) → (B, L, h)."""
        if inputs_embeds is None:
            assert input_ids is not None
            inputs_embeds = self.word_embeddings(input_ids)  # (B, L, h)
        length = inputs_embeds.shape[1]
        if position_ids is None:
            position_ids = torch.arange(length, device=inputs_embeds.device).unsqueeze(0)  # (1, L)
        if token_type_ids is None:
            token_type_ids = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        hidden = inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.norm(hidden))


class Pooler(nn.Module):
    """tanh(Linear(h→h)) of the first token ([CLS])."""

    def __init__(self, config: AutoBertZeroConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, h)


class MaskedLMHead(nn.Module):
    """Linear(h→h) → activation → LayerNorm → decoder Linear(h→vocab) (weight tied to the word embeddings)."""

    def __init__(self, config: AutoBertZeroConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(hidden))))  # (B, L, vocab)
