"""The one place where training gets its models: a genotype + sizes → a masked-LM model, and a
pre-trained folder → a sequence classifier (the compiler's AutoBertZero classes behind the HF Auto API)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from transformers.utils import logging as hf_logging

from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroForMaskedLM, register_auto_classes
from autobert_zero.errors import ConfigError, DataError
from autobert_zero.grammar import Genotype, load_genotype

from .config_schema import ModelSizes
from .paths import resolve_shipped


def load_genotype_file(path: str | os.PathLike[str]) -> Genotype:
    """The genotype of a file (relative paths: the working directory, then the repository); GenotypeError
    when it does not parse or validate."""
    resolved = resolve_shipped(path)
    if not resolved.is_file():
        raise ConfigError(f"genotype file not found: {path} (expected a .abz file such as genotypes/bert.abz)")
    return load_genotype(resolved)


def read_genotype(path: str | os.PathLike[str]) -> str:
    """The text of a genotype file, after checking that it parses and validates (else GenotypeError)."""
    load_genotype_file(path)
    return resolve_shipped(path).read_text(encoding="utf-8")


def model_kwargs(sizes: ModelSizes, vocab_size: int, pad_token_id: int) -> dict[str, Any]:
    """The size arguments shared by `AutoBertZeroConfig` and `transformers.BertConfig`."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": sizes.hidden_size,
        "num_attention_heads": sizes.num_attention_heads,
        "intermediate_size": sizes.intermediate_size,
        "hidden_dropout_prob": sizes.hidden_dropout_prob,
        "attention_probs_dropout_prob": sizes.attention_probs_dropout_prob,
        "max_position_embeddings": sizes.max_position_embeddings,
        "type_vocab_size": sizes.type_vocab_size,
        "initializer_range": sizes.initializer_range,
        "pad_token_id": pad_token_id,
    }


def mlm_config(genotype: Genotype | str, sizes: ModelSizes, vocab_size: int, pad_token_id: int
               ) -> AutoBertZeroConfig:
    """The model config of a masked-LM model (sparse MLM logits for training) of a genotype (IR or text)."""
    text = genotype.to_text() if isinstance(genotype, Genotype) else genotype
    return AutoBertZeroConfig(genotype=text, sparse_mlm_logits=True, **model_kwargs(sizes, vocab_size, pad_token_id))


def build_mlm_model(genotype: Genotype | str, sizes: ModelSizes, vocab_size: int, pad_token_id: int,
                    seed: int = 0) -> PreTrainedModel:
    """A freshly initialised masked-LM model of the genotype (IR or text) at the given sizes (seeded)."""
    torch.manual_seed(seed)
    return AutoBertZeroForMaskedLM(mlm_config(genotype, sizes, vocab_size, pad_token_id))


def build_classifier(init_dir: str | os.PathLike[str], num_labels: int, seed: int = 0) -> PreTrainedModel:
    """A sequence classifier (num_labels=1: regression) from a pre-trained HF folder; the head is new."""
    folder = Path(init_dir)
    if not (folder / "config.json").is_file():
        raise DataError(f"--init folder {folder} holds no config.json (expected a Hugging Face folder such as "
                        f"the DIR/final written by `abz pretrain`)")
    register_auto_classes()
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report would list the new head's weights as missing
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=num_labels)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"could not load a model from --init folder {folder}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model
