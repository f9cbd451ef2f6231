"""autobert_zero.train — DeepSpeed masked-LM pre-training and GLUE fine-tuning of genotypes.

Read top to bottom, the files follow the data: `config_schema`/`config` (strict YAML configs),
`corpus`/`default_corpus` (text), `tokenizer`, `mlm_data` + `data_order` (masked batches), `glue` +
`metrics` (GLUE tasks and official metrics), `model_factory` (genotype → model), `engine` (DeepSpeed),
`checkpoint` (crash-safe resume), `run_log` (metrics.jsonl / TensorBoard), `loop` (the one training loop),
what drives it — `pretrain` (MLM runs), `finetune` (GLUE), `biws` (supernet training, candidate schedule)
and `evaluate` (candidate scores: the search's fitness) — the ranking audit (`audit_candidates`,
`audit_stats`, `audit_report`, `audit_plot`, `audit`), and `cli` / `biws_cli` / `audit_cli` (the
`abz pretrain`, `finetune`, `supernet`, `evaluate` and `audit` sub-commands).

The public functions are imported lazily: importing this package does not import deepspeed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import load_config
    from .finetune import finetune
    from .pretrain import pretrain

__all__ = ["finetune", "load_config", "pretrain"]


def __getattr__(name: str) -> Any:
    if name == "pretrain":
        from .pretrain import pretrain

        return pretrain
    if name == "finetune":
        from .finetune import finetune

        return finetune
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
