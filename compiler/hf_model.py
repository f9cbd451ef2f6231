"""Hugging Face models of the package: base model, masked LM, sequence classification.

The classes are `portable_model`'s (the code exported folders run, so the two cannot drift apart), with
two differences: the backbone comes from `build_encoder(config.parsed_genotype(), config)` (the genotype
text, parsed by the grammar), and `save_pretrained` also writes the remote code (`remote_code`), so a saved
folder loads with plain transformers and `trust_remote_code=True`. `register_auto_classes()` makes
`AutoConfig`/`AutoModel*` know the `autobert-zero` model type.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from autobert_zero.grammar.loading import trust_language_code

from . import portable_model
from .backbone import build_encoder
from .hf_config import AutoBertZeroConfig
from .remote_code import write_remote_code


class AutoBertZeroPreTrainedModel(portable_model.AutoBertZeroPreTrainedModel):
    """Shared HF plumbing (`portable_model`), the package's config class, and saving with remote code."""

    config_class = AutoBertZeroConfig
    config: AutoBertZeroConfig
    check_weights_on_load = False  # as before: `abz finetune` / `abz evaluate` refuse unmatched weights themselves

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`; with `trust_remote_code=True`, a custom language whose record in
        config.json holds op code is rebuilt from it (without, its loading is refused naming config.json)."""
        with trust_language_code(bool(kwargs.get("trust_remote_code"))):
            return super().from_pretrained(*args, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.save_pretrained`, then the remote code that loads the folder without this package
        (`remote_code.write_remote_code`; skipped, with a warning, for a model it cannot describe)."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", args[0] if args else True):
            write_remote_code(self, save_directory)
        return result


class AutoBertZeroModel(AutoBertZeroPreTrainedModel, portable_model.AutoBertZeroModel):
    """Embeddings → compiled encoder → (optional) pooler."""

    @staticmethod
    def compile_encoder(config: portable_model.AutoBertZeroConfig) -> nn.Module:
        """The backbone of the genotype text (parsed, validated and compiled), uninitialised."""
        assert isinstance(config, AutoBertZeroConfig)
        return build_encoder(config.parsed_genotype(), config, init_std=None)


class AutoBertZeroForMaskedLM(AutoBertZeroPreTrainedModel, portable_model.AutoBertZeroForMaskedLM):
    """The backbone with BERT's masked-LM head; labels of -100 are ignored by the loss."""

    backbone_class = AutoBertZeroModel


class AutoBertZeroForSequenceClassification(AutoBertZeroPreTrainedModel,
                                            portable_model.AutoBertZeroForSequenceClassification):
    """The backbone's pooled [CLS] → dropout → Linear; `num_labels=1` is regression (MSE)."""

    backbone_class = AutoBertZeroModel


def register_auto_classes() -> None:
    """Register the `autobert-zero` model type with AutoConfig and the AutoModel classes (idempotent)."""
    AutoConfig.register(AutoBertZeroConfig.model_type, AutoBertZeroConfig, exist_ok=True)
    AutoModel.register(AutoBertZeroConfig, AutoBertZeroModel, exist_ok=True)
    AutoModelForMaskedLM.register(AutoBertZeroConfig, AutoBertZeroForMaskedLM, exist_ok=True)
    AutoModelForSequenceClassification.register(
        AutoBertZeroConfig, AutoBertZeroForSequenceClassification, exist_ok=True)


register_auto_classes()  # importing the model classes, by any path, makes the Auto API know them
