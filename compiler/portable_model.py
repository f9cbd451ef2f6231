"""Hugging Face models: base model, masked LM, sequence classification (shipped in every exported folder).

Thin on purpose: the backbone comes from `compile_encoder(config)` and BERT's embeddings/heads
(`portable_heads`); these classes wire them, turn HF's `attention_mask` (B, L) of 1/0 into the backbone's
`keep` mask, compute losses and return HF output objects. Here `compile_encoder` interprets
`config.compiled_genotype` (`portable_backbone`), which is what an exported folder runs; the package's
classes (`hf_model`) subclass these and build the encoder from the genotype text instead. The module
imports only torch, transformers and the portable modules beside it, and `remote_code` copies it verbatim.

Loading checks that the folder's encoder weights fit the architecture `config.json` describes: a missing,
unexpected or wrongly shaped encoder weight (`compiled_genotype` edited after saving) is an error naming the
files, where transformers would otherwise initialise the missing weights at random. (The package's classes
load as transformers does, `check_weights_on_load = False`: their callers refuse unmatched weights.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

from .portable_backbone import build_compiled_encoder
from .portable_config import AutoBertZeroConfig
from .portable_custom_ops import CUSTOM_IMPLS
from .portable_heads import Embeddings, MaskedLMHead, Pooler
from .portable_layers import init_encoder_module
from .portable_ops import BUILTIN_IMPLS

ENCODER_WEIGHTS = "encoder."
"""Weight names containing this belong to the backbone the config describes."""


class ArchitectureMismatchError(ValueError):
    """The weights of a folder do not fit the architecture its `config.json` describes."""


class AutoBertZeroPreTrainedModel(PreTrainedModel):
    """Shared HF plumbing: config class, weight-name prefix, BERT's initialisation, the load check."""

    config_class = AutoBertZeroConfig
    config: AutoBertZeroConfig
    base_model_prefix = "autobert"
    _no_split_modules = ["Embeddings", "EncoderLayer"]  # noqa: RUF012
    accepts_loss_kwargs = False  # the loss is a plain mean: Trainer must not rescale it
    supports_gradient_checkpointing = True  # the Encoder's `gradient_checkpointing`
    check_weights_on_load: ClassVar[bool] = True
    """`from_pretrained` refuses encoder weights that do not fit `config.json` (`check_loaded_weights`)."""

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            super()._init_weights(module)  # normal(0, initializer_range), padding row zero
        else:
            init_encoder_module(module, self.config.initializer_range)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str] | None, *args: Any,
                        **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, refusing encoder weights that do not fit `config.json`.

        Weights of another shape are reported by transformers (`ignore_mismatched_sizes=True` underneath)
        and refused here, naming the files; with `ignore_mismatched_sizes=True` from the caller, those
        outside the encoder (e.g. a classifier of another label count) are re-initialised as usual.
        """
        if not cls.check_weights_on_load:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        wants_info = bool(kwargs.pop("output_loading_info", False))
        ignore_others = bool(kwargs.pop("ignore_mismatched_sizes", False))
        loaded: Any = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                              ignore_mismatched_sizes=True, **kwargs)
        model, info = loaded
        check_loaded_weights(info, str(pretrained_model_name_or_path), ignore_others)
        return (model, info) if wants_info else model


def check_loaded_weights(info: dict[str, Any], folder: str, ignore_mismatched_heads: bool = False) -> None:
    """Raise `ArchitectureMismatchError` when loading left an encoder weight missing, unused or misshapen, or
    (unless `ignore_mismatched_heads`) any other weight misshapen."""
    mismatched = [f"{key} ({'×'.join(map(str, saved))} saved, {'×'.join(map(str, built))} built)"
                  for key, saved, built in sorted(info.get("mismatched_keys", ()))
                  if ENCODER_WEIGHTS in key or not ignore_mismatched_heads]
    problems = {
        "missing from the weights": sorted(k for k in info.get("missing_keys", ()) if ENCODER_WEIGHTS in k),
        "in the weights but not in the architecture": sorted(
            k for k in info.get("unexpected_keys", ()) if ENCODER_WEIGHTS in k),
        "of another shape": mismatched,
    }
    found = {what: keys for what, keys in problems.items() if keys}
    if found:
        listed = "; ".join(f"{what}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                           for what, keys in found.items())
        raise ArchitectureMismatchError(
            f"{os.path.join(folder, 'config.json')} describes a model that the weights in {folder} do not fit "
            f"(was the genotype in config.json edited after saving?): {listed}")


class AutoBertZeroModel(AutoBertZeroPreTrainedModel):
    """Embeddings → compiled encoder → (optional) pooler."""

    def __init__(self, config: AutoBertZeroConfig, add_pooling_layer: bool = True,
                 encoder: nn.Module | None = None) -> None:
        """`encoder` replaces the one `compile_encoder` builds (a supernet's, or one compiled with a custom
        language); it is given uninitialised and initialised here like every other weight."""
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.encoder = encoder if encoder is not None else self.compile_encoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.post_init()

    @staticmethod
    def compile_encoder(config: AutoBertZeroConfig) -> nn.Module:
        """The backbone `config` describes, uninitialised: here from `config.compiled_genotype`."""
        impls: dict[str, Callable[..., torch.Tensor]] = {**BUILTIN_IMPLS, **CUSTOM_IMPLS}
        return build_compiled_encoder(config.compiled_genotype, config, impls)

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

    backbone_class: ClassVar[type[AutoBertZeroModel]] = AutoBertZeroModel
    """The base model class this head wraps (the package's subclass names its own)."""
    _tied_weights_keys = {"lm_head.decoder.weight": "autobert.embeddings.word_embeddings.weight"}  # noqa: RUF012

    def __init__(self, config: AutoBertZeroConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config)
        self.autobert = self.backbone_class(config, add_pooling_layer=False, encoder=encoder)
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

    backbone_class: ClassVar[type[AutoBertZeroModel]] = AutoBertZeroModel
    """The base model class this head wraps (the package's subclass names its own)."""

    def __init__(self, config: AutoBertZeroConfig) -> None:
        super().__init__(config)
        assert config.num_labels is not None  # PretrainedConfig defaults it to 2
        self.num_labels: int = config.num_labels
        self.autobert = self.backbone_class(config)
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
