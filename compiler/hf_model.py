"""Hugging Face shells around the compiled backbone: base model, masked LM, sequence classification.

Thin on purpose (one place builds the architecture, so HF loading/saving adds no second copy of it): the
architecture comes from `build_encoder(config.parsed_genotype(), config)` and BERT's embeddings/heads
(`heads.py`); these classes wire them, turn HF's `attention_mask` (B, L) of
1/0 into the backbone's `keep` mask, compute losses and return HF output objects.
`register_auto_classes()` makes `AutoConfig`/`AutoModel*` know the `autobert-zero` model type.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

from .backbone import build_encoder, init_encoder_module
from .heads import Embeddings, MaskedLMHead, Pooler
from .hf_config import AutoBertZeroConfig


class AutoBertZeroPreTrainedModel(PreTrainedModel):
    """Shared HF plumbing: config class, weight-name prefix, BERT's initialisation."""

    config_class = AutoBertZeroConfig
    config: AutoBertZeroConfig
    base_model_prefix = "autobert"
    _no_split_modules = ["Embeddings", "EncoderLayer"]  # noqa: RUF012
    accepts_loss_kwargs = False  # the loss is a plain mean: Trainer must not rescale it

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            super()._init_weights(module)  # normal(0, initializer_range), padding row zero
        else:
            init_encoder_module(module, self.config.initializer_range)


class AutoBertZeroModel(AutoBertZeroPreTrainedModel):
    """Embeddings → compiled encoder → (optional) pooler."""

    def __init__(self, config: AutoBertZeroConfig, add_pooling_layer: bool = True,
                 encoder: nn.Module | None = None) -> None:
        """`encoder` replaces the one built from `config.genotype` (a supernet's, or one compiled with a
        custom language); it is given uninitialised and initialised here like every other weight."""
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.encoder = encoder if encoder is not None else build_encoder(config.parsed_genotype(), config,
                                                                         init_std=None)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        if not isinstance(value, nn.Embedding):
            raise TypeError(f"input embeddings must be an nn.Embedding, got {type(value).__name__}")
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: object,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions | tuple[torch.Tensor, ...]:
        """input_ids (B, L) (or inputs_embeds (B, L, h)); attention_mask (B, L), 1 real / 0 padding."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, L, h)
        if attention_mask is None:
            keep = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)  # (B, L)
        else:
            keep = attention_mask.to(hidden.device) != 0  # (B, L)
            # A row without any real token would make softmax over positions NaN: let it attend everywhere
            # (what BERT's additive mask amounts to), without a host sync.
            keep = keep | ~keep.any(dim=-1, keepdim=True)
        want_all = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        all_hidden: list[torch.Tensor] | None = [] if want_all else None
        sequence = self.encoder(hidden, keep, all_hidden)  # (B, L, h)
        output = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence,
            pooler_output=self.pooler(sequence) if self.pooler is not None else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )
        return output if _wants_dict(return_dict, self.config) else output.to_tuple()


class AutoBertZeroForMaskedLM(AutoBertZeroPreTrainedModel):
    """The backbone with BERT's masked-LM head; labels of -100 are ignored by the loss."""

    _tied_weights_keys = {"lm_head.decoder.weight": "autobert.embeddings.word_embeddings.weight"}  # noqa: RUF012

    def __init__(self, config: AutoBertZeroConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config)
        self.autobert = AutoBertZeroModel(config, add_pooling_layer=False, encoder=encoder)
        self.lm_head = MaskedLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: object,
    ) -> MaskedLMOutput | tuple[torch.Tensor, ...]:
        base = self.autobert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                             output_hidden_states=output_hidden_states, return_dict=True)
        hidden = base.last_hidden_state  # (B, L, h)
        if labels is not None and self.config.sparse_mlm_logits:
            labels = labels.to(hidden.device)
            picked = labels != -100
            hidden, labels = hidden[picked], labels[picked]  # (N, h), (N,): only the labelled positions
        logits = self.lm_head(hidden)  # (B, L, vocab), or (N, vocab) when sparse
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.config.vocab_size),
                                               labels.to(logits.device).view(-1), ignore_index=-100)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return output if _wants_dict(return_dict, self.config) else output.to_tuple()


class AutoBertZeroForSequenceClassification(AutoBertZeroPreTrainedModel):
    """The backbone's pooled [CLS] → dropout → Linear; `num_labels=1` is regression (MSE)."""

    def __init__(self, config: AutoBertZeroConfig) -> None:
        super().__init__(config)
        assert config.num_labels is not None  # PretrainedConfig defaults it to 2
        self.num_labels: int = config.num_labels
        self.autobert = AutoBertZeroModel(config)
        rate = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(rate)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: object,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        base = self.autobert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                             output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(base.pooler_output))  # (B, num_labels)
        loss = self._loss(logits, labels.to(logits.device)) if labels is not None else None
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return output if _wants_dict(return_dict, self.config) else output.to_tuple()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """BERT's rule: problem type from the config, else from num_labels and the label dtype."""
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return nn.functional.mse_loss(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def _wants_dict(return_dict: bool | None, config: AutoBertZeroConfig) -> bool:
    return return_dict if return_dict is not None else config.return_dict is not False


def register_auto_classes() -> None:
    """Register the `autobert-zero` model type with AutoConfig and the AutoModel classes (idempotent)."""
    AutoConfig.register(AutoBertZeroConfig.model_type, AutoBertZeroConfig, exist_ok=True)
    AutoModel.register(AutoBertZeroConfig, AutoBertZeroModel, exist_ok=True)
    AutoModelForMaskedLM.register(AutoBertZeroConfig, AutoBertZeroForMaskedLM, exist_ok=True)
    AutoModelForSequenceClassification.register(
        AutoBertZeroConfig, AutoBertZeroForSequenceClassification, exist_ok=True)


register_auto_classes()  # importing the model classes, by any path, makes the Auto API know them
