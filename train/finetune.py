"""GLUE fine-tuning of a pre-trained folder through a DeepSpeed engine, scored on the dev split.

`finetune()` writes into its output folder `metrics.jsonl` (training loss every `logging.log_every`
steps) and `eval.json`: the task's official metrics on the dev split, its primary score (the mean of its
metrics, as GLUE averages them), and the run's sizes. Training visits a seeded, optionally subsampled
training split in the same step-addressed order as pre-training (`data/order.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from autobert_zero.config.load import BatchPlan, batch_plan
from autobert_zero.errors import DataError
from autobert_zero.io import atomic_write_text
from autobert_zero.run_dir import open_run_dir
from autobert_zero.train.data.glue import GlueTask, get_task, load_glue_split
from autobert_zero.train.data.metrics import glue_metrics, primary_score
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.data.seeds import FINETUNE_DROPOUT, FINETUNE_ORDER, FINETUNE_SUBSAMPLE, derived_seed
from autobert_zero.train.engine import build_engine, init_distributed, unwrap
from autobert_zero.train.loop import LoopSettings, TrainLoop, accumulate
from autobert_zero.train.mlm import resolve_config
from autobert_zero.train.models import build_classifier, check_init_folder, set_gradient_checkpointing
from autobert_zero.train.run_log import RunLog


class EncodedSplit:
    """A tokenized GLUE split: features per example, labels, and padding into model batches."""

    def __init__(self, split: Any, task: GlueTask, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        columns = split.to_dict()
        pairs = task.text_b is not None
        self.encoding: BatchEncoding = tokenizer(columns["text_a"], columns["text_b"] if pairs else None,
                                                 truncation=True, max_length=max_length)
        self.labels = torch.tensor(columns["label"], dtype=torch.float32 if task.is_regression else torch.long)
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        features = [{k: self.encoding[k][i] for k in self.encoding} for i in indices]
        padded = self.tokenizer.pad(features, return_tensors="pt")
        return {**{k: v.to(device) for k, v in padded.items()}, "labels": self.labels[indices].to(device)}


def _subsample(split: Any, limit: int | None, seed: int) -> Any:
    if limit is None or limit >= len(split):
        return split
    g = torch.Generator().manual_seed(derived_seed(seed, FINETUNE_SUBSAMPLE))
    return split.select(sorted(torch.randperm(len(split), generator=g)[:limit].tolist()))


def train_step(engine: Any, data: EncodedSplit, order: StreamOrder, plan: BatchPlan, step: int, rank: int) -> float:
    """One optimizer step of fine-tuning; returns this rank's mean loss."""
    def batch(micro: int) -> dict[str, torch.Tensor]:
        return data.batch(order.micro_batch(plan, step, micro, rank).tolist(), engine.device)

    return accumulate(engine, batch, plan.gradient_accumulation_steps)


@torch.no_grad()
def predict(engine: Any, data: EncodedSplit, task: GlueTask, batch_size: int) -> np.ndarray:
    """Class indices (or STS-B scores) for every example of `data`, in order."""
    model = unwrap(engine)
    model.eval()
    outputs = []
    for start in range(0, len(data), batch_size):
        batch = data.batch(list(range(start, min(start + batch_size, len(data)))), engine.device)
        batch.pop("labels")
        logits = model(**batch).logits.float()
        outputs.append(logits.squeeze(-1) if task.is_regression else logits.argmax(-1))
    model.train()
    return torch.cat(outputs).cpu().numpy()


FINETUNE_OUTPUTS = ("metrics.jsonl", "eval.json", "tensorboard")
"""What `finetune` writes into its output folder (`--force` replaces these and nothing else)."""


def finetune(config: Any, task: str, data_dir: str | os.PathLike[str] | None, init_dir: str | os.PathLike[str],
             out_dir: str | os.PathLike[str], force: bool = False, select_examples: int | None = None,
             trust_language_code: bool = False) -> dict[str, Any]:
    """Fine-tune `init_dir` on GLUE `task` (TSV folders under `data_dir`, or the hub's `glue` if None);
    returns the dev evaluation (also written to `<out_dir>/eval.json`). `init_dir` must pass
    `check_init_folder`; `out_dir` is opened with `open_run_dir` (refused if non-empty unless `force`).

    `select_examples`: for choosing hyper-parameters without dev, that many examples of the training split
    (a fixed draw: seed 0, whatever the config's seed) are held out and scored instead of dev, and the run
    trains on the rest (`split` in eval.json says "train-slice").

    The genotype's language comes from `init_dir`'s config.json; op code it carries runs only with
    `trust_language_code` (or when the config's own `language:` is that language)."""
    from autobert_zero.config.language import language_from_config
    from autobert_zero.grammar.loading import trust_language_code as trusting

    cfg = resolve_config(config)
    spec = get_task(task)
    language_from_config(cfg)  # the user's own language: a folder made with it needs no consent
    with trusting(trust_language_code):
        tokenizer = check_init_folder(Path(init_dir))
        with open_run_dir(out_dir, "abz finetune", force=force, outputs=FINETUNE_OUTPUTS,
                          primary=os.environ.get("RANK", "0") == "0", can_resume=False):
            return _finetune(cfg, spec, data_dir, Path(init_dir), Path(out_dir), tokenizer, select_examples)


def _splits(spec: GlueTask, data_dir: str | os.PathLike[str] | None, select_examples: int | None) -> tuple[Any, Any]:
    """(training split, scored split): train and dev, or train less a fixed slice and that slice."""
    train_split = load_glue_split(spec, "train", data_dir)
    if select_examples is None:
        return train_split, load_glue_split(spec, "dev", data_dir)
    if not 0 < select_examples < len(train_split):
        raise DataError(f"GLUE task {spec.folder}: cannot hold out {select_examples} of its {len(train_split)} "
                        f"training examples for selection; expected 1..{len(train_split) - 1}")
    perm = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(0)).tolist()
    return train_split.select(sorted(perm[select_examples:])), train_split.select(sorted(perm[:select_examples]))


def _finetune(cfg: Any, spec: GlueTask, data_dir: str | os.PathLike[str] | None, init: Path, out: Path,
              tokenizer: PreTrainedTokenizerBase, select_examples: int | None = None) -> dict[str, Any]:
    rank, world = init_distributed()
    plan = batch_plan(cfg, "finetune", world)
    ft = cfg.finetune
    full_train, dev_split = _splits(spec, data_dir, select_examples)
    train_split = _subsample(full_train, ft.max_train_examples, cfg.seed)
    train = EncodedSplit(train_split, spec, tokenizer, ft.max_seq_length)
    dev = EncodedSplit(dev_split, spec, tokenizer, ft.max_seq_length)
    if len(train) == 0:
        raise DataError(f"GLUE task {spec.folder}: the training split is empty")

    steps = ft.epochs * math.ceil(len(train) / plan.train_batch_size)
    steps = min(steps, ft.max_steps) if ft.max_steps else steps
    model = build_classifier(init, spec.num_labels, cfg.seed)
    set_gradient_checkpointing(model, cfg.model.gradient_checkpointing)
    engine = build_engine(model, cfg.deepspeed, plan, ft.lr, ft.weight_decay, steps, int(steps * ft.warmup_ratio),
                          allow_zero3=True)
    torch.manual_seed(derived_seed(cfg.seed, rank, FINETUNE_DROPOUT))
    order = StreamOrder(len(train), derived_seed(cfg.seed, FINETUNE_ORDER))
    settings = LoopSettings(stop=steps, desc=f"finetune {spec.folder}", log_every=cfg.logging.log_every,
                            progress_bar=cfg.logging.progress_bar)
    loop = TrainLoop(engine, lambda step: train_step(engine, train, order, plan, step, rank), settings, rank=rank)
    with RunLog(out, rank == 0, cfg.logging.tensorboard) as log:
        loop.run(0, log)
        metrics = glue_metrics(spec, predict(engine, dev, spec, ft.eval_batch_size), dev.labels.numpy())
        log.scalars({"step": steps, **metrics}, prefix=f"dev_{spec.name}")
    result = {
        "task": spec.folder, "split": "dev" if select_examples is None else "train-slice", "metrics": metrics,
        "score": primary_score(spec, metrics),
        "dev_examples": len(dev), "train_examples": len(train), "steps": steps,
        "train_batch_size": plan.train_batch_size, "init": str(init),
        "config": dataclasses.asdict(cfg.finetune),
    }
    if rank == 0:
        atomic_write_text(out / "eval.json", json.dumps(result, indent=1))
    return result
