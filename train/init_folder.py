"""What `abz finetune --init` accepts: an autobert-zero model folder whose weights are exactly its genotype's.

`check_init_folder` reads only `config.json`, the safetensors headers and the tokenizer (no weights are
loaded) and refuses, with a `DataError` naming the folder and what is wrong:
- a folder without `config.json`, or whose `model_type` is not `autobert-zero` (e.g. a plain `BertModel`);
- backbone weights (`autobert.embeddings.*`, `autobert.encoder.*`) that differ from those the genotype in
  `config.json` builds at its sizes: missing, unexpected or of another shape (heads and pooler may differ,
  since fine-tuning replaces them);
- a folder without a loadable tokenizer, or one whose vocabulary size is not the embedding's row count.
An invalid genotype in `config.json` is a `GenotypeError` (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from autobert_zero.errors import DataError

BACKBONE = ("embeddings.", "encoder.")
"""Weight-name prefixes (under the base model) that must match the genotype exactly."""
PREFIX = "autobert."
"""The base model's weight-name prefix inside the task models (`base_model_prefix`)."""
EXPECTED = "expected the DIR/final folder written by `abz pretrain` (an autobert-zero model and its tokenizer)"


def _read_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise DataError(f"--init folder not found: {folder} ({EXPECTED})")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"--init folder {folder} holds no config.json ({EXPECTED})") from None
    except (OSError, ValueError) as exc:
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
    """Check `folder` as described in the module docstring; returns its tokenizer."""
    folder = Path(folder)
    config = _read_config(folder)
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
