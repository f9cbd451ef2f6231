"""Masked-LM pre-training of a genotype (`abz pretrain`), resumable bit for bit.

`pretrain()` writes into its output folder: `metrics.jsonl` (one line per logged step: step, loss, lr,
tokens/s), `checkpoints/` (see `checkpoint.py`), `config.json` (the resolved config), `final/` (the model
and tokenizer as a Hugging Face folder) and `summary.json`. `max_steps` stops the run early without
changing the learning-rate schedule, which always spans `pretrain.max_steps`; a run stopped at step k and
resumed with `resume=True` produces the same losses after k as a run that never stopped. The run itself is
`mlm.run_mlm`, shared with supernet training.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from autobert_zero.config.schema import Config
from autobert_zero.grammar import Genotype
from autobert_zero.run_dir import check_out_dir
from autobert_zero.train.engine import init_distributed
from autobert_zero.train.mlm import MlmHooks, PreparedMlm, prepare_or_check, resolve_config, run_mlm, stop_step
from autobert_zero.train.models import build_mlm_model, resolve_genotype


def pretrain(config: Config | str | os.PathLike[str], out_dir: str | os.PathLike[str],
             genotype: Genotype | str | None = None, corpus: str | list[str] | None = None,
             max_steps: int | None = None, resume: bool = False,
             prepared: PreparedMlm | None = None, force: bool = False) -> dict[str, Any]:
    """Pre-train with masked LM; returns the run summary (also written to `<out_dir>/summary.json`).

    `genotype` is a genotype file or a `Genotype` object (default: the config's `genotype`; a file
    given here is recorded as the config's `genotype` in `config.json` and the summary);
    `prepared` reuses data prepared by `prepare_mlm_data` for this config instead of preparing it again.
    """
    cfg = resolve_config(config)
    if corpus is not None:
        cfg.data = dataclasses.replace(cfg.data, corpus=corpus)
    if genotype is not None and not isinstance(genotype, Genotype):
        cfg.genotype = str(genotype)
    stop = stop_step(cfg, max_steps)
    out = Path(out_dir)
    check_out_dir(out, "abz pretrain", force=force, resume=resume)  # early: before data and model
    rank, _ = init_distributed()
    resolved = resolve_genotype(cfg, genotype)
    prepared = prepare_or_check(cfg, prepared if corpus is None else None, rank)
    tokenizer = prepared.tokenizer
    assert tokenizer.pad_token_id is not None
    model = build_mlm_model(resolved, cfg.model, len(tokenizer), tokenizer.pad_token_id, cfg.seed)
    hooks = MlmHooks(summary={"genotype": cfg.genotype if not isinstance(genotype, Genotype) else None,
                              "genotype_id": resolved.id})
    return run_mlm(cfg, out, model, prepared, stop, resume, "pretrain", hooks, force=force)
