"""The one place where training gets its models: a genotype + sizes → a masked-LM model, and a
pre-trained folder → a sequence classifier (the compiler's AutoBertZero classes behind the HF Auto API);
and the checks of a folder `abz finetune --init` accepts (`check_init_folder`, below)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroForMaskedLM, register_auto_classes
from autobert_zero.config.paths import resolve_shipped
from autobert_zero.config.schema import Config, ModelSizes
from autobert_zero.errors import DataError, GenotypeError
from autobert_zero.grammar import Genotype, Language, current_language, load_genotype
from autobert_zero.grammar.diagnostics import Diagnostic
from autobert_zero.json_files import read_json


def load_genotype_file(path: str | os.PathLike[str], language: Language | None = None) -> Genotype:
    """The genotype of a file (relative paths: the working directory, then the shipped copy) in `language` (default:
    the active one, `grammar.using_language`); GenotypeError (exit 2, as for `abz compile`) when it is missing,
    unreadable, or does not parse or validate."""
    resolved = resolve_shipped(path)
    if not resolved.is_file():
        problem = Diagnostic("io", f"genotype file not found: {path} (expected a .abz file such as "
                                   f"genotypes/bert.abz)")
        raise GenotypeError([problem], str(path))
    return load_genotype(resolved, language=language)


def resolve_genotype(cfg: Config, genotype: Genotype | str | os.PathLike[str] | None = None) -> Genotype:
    """The genotype to train: an object as is, else a file (the argument, or the config's `genotype`) in the
    config's language (`language:`). The config is only read."""
    if isinstance(genotype, Genotype):
        return genotype
    from autobert_zero.config.language import language_from_config

    return load_genotype_file(cfg.genotype if genotype is None else genotype, language_from_config(cfg))


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
    """The model config of a masked-LM model (sparse MLM logits for training) of a genotype (IR, or text of the
    active language), recording the genotype's language."""
    if isinstance(genotype, Genotype):
        return AutoBertZeroConfig.from_genotype(genotype, sparse_mlm_logits=True,
                                                **model_kwargs(sizes, vocab_size, pad_token_id))
    return AutoBertZeroConfig(genotype=genotype, language=current_language().record, sparse_mlm_logits=True,
                              **model_kwargs(sizes, vocab_size, pad_token_id))


def build_mlm_model(genotype: Genotype | str, sizes: ModelSizes, vocab_size: int, pad_token_id: int,
                    seed: int = 0) -> PreTrainedModel:
    """A freshly initialised masked-LM model of the genotype (IR or text) at the given sizes (seeded), with
    activation checkpointing if `sizes.gradient_checkpointing`."""
    torch.manual_seed(seed)
    model = AutoBertZeroForMaskedLM(mlm_config(genotype, sizes, vocab_size, pad_token_id))
    set_gradient_checkpointing(model, sizes.gradient_checkpointing)
    return model


def set_gradient_checkpointing(model: torch.nn.Module, enabled: bool) -> None:
    """Switch activation checkpointing (`model.gradient_checkpointing`) on or off in every encoder of `model`:
    the modules with a `gradient_checkpointing` flag (`portable_layers.Encoder`). It acts in training mode only."""
    for module in model.modules():
        if hasattr(module, "gradient_checkpointing"):
            setattr(module, "gradient_checkpointing", enabled)  # noqa: B010 (mypy: nn.Module attributes are modules)


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


# --- `abz finetune --init` folders ------------------------------------------------------------

BACKBONE = ("embeddings.", "encoder.")
"""Weight-name prefixes (under the base model) that must match the genotype exactly."""
PREFIX = "autobert."
"""The base model's weight-name prefix inside the task models (`base_model_prefix`)."""
EXPECTED = "expected the DIR/final folder written by `abz pretrain` (an autobert-zero model and its tokenizer)"


def _read_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise DataError(f"--init folder not found: {folder} ({EXPECTED})")
    if not (folder / "config.json").is_file():
        raise DataError(f"--init folder {folder} holds no config.json ({EXPECTED})")
    try:  # bounded in depth and size, like every JSON file read
        config = read_json(folder / "config.json", DataError)
    except DataError as exc:
        raise DataError(f"--init folder {folder}: config.json is not readable JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("model_type") != "autobert-zero":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise DataError(f"--init folder {folder} is not an autobert-zero model (config.json model_type is {kind!r}, "
                        f"expected 'autobert-zero'); {EXPECTED}")
    return config


def _saved_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Weight name → shape from the safetensors header(s), without reading the tensors."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    try:
        if index.is_file():
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        shapes: dict[str, tuple[int, ...]] = {}
        for name in files:
            with safe_open(str(folder / name), framework="pt") as f:
                shapes.update({key: tuple(f.get_slice(key).get_shape()) for key in f.keys()})  # noqa: SIM118
    except FileNotFoundError as exc:
        raise DataError(f"--init folder {folder} holds no weights ({Path(exc.filename or 'model.safetensors').name} "
                        f"missing); {EXPECTED}") from None
    except Exception as exc:  # a damaged header: safetensors raises its own error types
        raise DataError(f"--init folder {folder}: the safetensors weights are unreadable ({exc})") from None
    return shapes


def _genotype_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Backbone weight name → shape of the genotype in `config` at its sizes (built on the meta device)."""
    from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroModel

    fields = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version", "model_type")}
    hf_config = AutoBertZeroConfig(**fields)
    hf_config.parsed_genotype()  # GenotypeError (exit 2) for an invalid genotype text
    with torch.device("meta"):
        model = AutoBertZeroModel(hf_config, add_pooling_layer=False)
    return {name: tuple(t.shape) for name, t in model.state_dict().items() if name.startswith(BACKBONE)}


def _backbone(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {name[len(PREFIX):] if name.startswith(PREFIX) else name: shape for name, shape in shapes.items()
            if (name[len(PREFIX):] if name.startswith(PREFIX) else name).startswith(BACKBONE)}


def _listing(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_init_folder(folder: str | Path) -> PreTrainedTokenizerBase:
    """Check `folder` as described in the module docstring; returns its tokenizer. A custom language recorded
    in its config.json is rebuilt first (its op code runs only under `grammar.loading.trust_language_code`)."""
    from autobert_zero.grammar.loading import language_from_record

    folder = Path(folder)
    config = _read_config(folder)
    language_from_record(config.get("language"), where=f"--init folder {folder / 'config.json'}")
    saved, expected = _backbone(_saved_shapes(folder)), _genotype_shapes(config)
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    reshaped = sorted(n for n in set(saved) & set(expected) if saved[n] != expected[n])
    if missing or unexpected or reshaped:
        problems = [f"missing {_listing(missing)}" if missing else "",
                    f"unexpected {_listing(unexpected)}" if unexpected else "",
                    "other shapes: " + _listing([f"{n} {saved[n]} vs {expected[n]}" for n in reshaped])
                    if reshaped else ""]
        raise DataError(f"--init folder {folder}: the weights do not match the genotype in its config.json "
                        f"({'; '.join(p for p in problems if p)}); {EXPECTED}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # transformers raises many types for a missing or broken tokenizer
        raise DataError(f"--init folder {folder}: no loadable tokenizer ({type(exc).__name__}: "
                        f"{str(exc).strip()[:200]}); {EXPECTED}") from None
    rows = expected["embeddings.word_embeddings.weight"][0]
    if len(tokenizer) != rows:
        raise DataError(f"--init folder {folder}: the tokenizer has {len(tokenizer)} tokens but the model's "
                        f"embedding has {rows} rows; the tokenizer does not belong to this model ({EXPECTED})")
    return tokenizer
