"""Masked-LM pre-training of a genotype through a DeepSpeed engine, resumable bit for bit.

`pretrain()` writes into its output folder: `metrics.jsonl` (one line per logged step: step, loss, lr,
tokens/s), `checkpoints/` (see `checkpoint.py`), `config.json` (the resolved config), `final/` (the model
and tokenizer as a Hugging Face folder) and `summary.json`. `max_steps` stops the run early without
changing the learning-rate schedule, which always spans `pretrain.max_steps`; so a run stopped at step k
(or killed after its checkpoint at k) and resumed with `resume=True` produces the same losses after k as
a run that never stopped: the data order and the masking are functions of the step, and the weights,
optimizer, scheduler and RNG states come back from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from autobert_zero.errors import ConfigError, TrainingError
from autobert_zero.io import atomic_directory, atomic_write_text

from . import checkpoint
from .config import BatchPlan, batch_plan, load_config
from .config_schema import TrainConfig
from .corpus import Corpus, load_corpus
from .data_order import StreamOrder, derived_seed
from .engine import build_engine, init_distributed, mean_over_ranks, unwrap
from .mlm_data import MlmData
from .model_factory import build_mlm_model, read_genotype
from .run_log import RunLog
from .tokenizer import build_tokenizer


def resolve_config(config: TrainConfig | str | os.PathLike[str]) -> TrainConfig:
    """A config object as is, or loaded strictly from a YAML path (a copy, so overrides stay local)."""
    if isinstance(config, TrainConfig):
        return dataclasses.replace(config)
    return load_config(config)


def prepare_mlm_data(cfg: TrainConfig, show_progress: bool = False
                     ) -> tuple[Corpus, PreTrainedTokenizerBase, MlmData]:
    """The corpus, the tokenizer (given, or trained and cached) and the MLM blocks of a config."""
    text = load_corpus(cfg.data.corpus, cfg.data.text_column)
    tokenizer = build_tokenizer(cfg.data.tokenizer, text, cfg.data.vocab_size, cfg.data.lowercase,
                                cfg.data.tokenizer_cache_dir, show_progress=show_progress)
    tokenizer.model_max_length = cfg.model.max_position_embeddings
    data = MlmData.build(text, tokenizer, cfg.data.max_seq_length, cfg.data.mlm_probability,
                         cfg.data.eval_blocks, cfg.seed)
    return text, tokenizer, data


def mlm_step(engine: Any, data: MlmData, order: StreamOrder, plan: BatchPlan, step: int, rank: int) -> float:
    """One optimizer step (all its micro-batches) at 0-based `step`; returns this rank's mean loss."""
    total = 0.0
    for micro in range(plan.gradient_accumulation_steps):
        batch = {k: v.to(engine.device) for k, v in data.train_batch(order, plan, step, micro, rank).items()}
        loss = engine(**batch).loss
        engine.backward(loss)
        engine.step()
        total += float(loss.detach().float())
    return total / plan.gradient_accumulation_steps


@torch.no_grad()
def evaluate_mlm(engine: Any, data: MlmData, batch_size: int) -> float | None:
    """Mean MLM loss over the held-out blocks (None when there are none)."""
    batches = data.eval_batches(batch_size)
    if not batches:
        return None
    model = unwrap(engine)
    was_training = model.training
    model.eval()
    losses = [float(model(**{k: v.to(engine.device) for k, v in b.items()}).loss.float()) for b in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def _export(engine: Any, tokenizer: Any, folder: Path) -> None:
    model = unwrap(engine)
    model.config.sparse_mlm_logits = False  # the exported model gives the usual (B, L, vocab) logits
    with atomic_directory(folder) as tmp:
        model.float().save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))


def pretrain(config: TrainConfig | str | os.PathLike[str], out_dir: str | os.PathLike[str],
             genotype_path: str | None = None, corpus: str | list[str] | None = None,
             max_steps: int | None = None, resume: bool = False) -> dict[str, Any]:
    """Pre-train with masked LM; returns the run summary (also written to `<out_dir>/summary.json`)."""
    cfg = resolve_config(config)
    if genotype_path is not None:
        cfg.genotype = genotype_path
    if corpus is not None:
        cfg.data = dataclasses.replace(cfg.data, corpus=corpus)
    stop = cfg.pretrain.max_steps if max_steps is None else max_steps
    if not 0 < stop <= cfg.pretrain.max_steps:
        raise ConfigError(f"--max-steps {stop} must be in 1..pretrain.max_steps = {cfg.pretrain.max_steps} "
                          f"(the schedule length in {cfg.source}); raise pretrain.max_steps for a longer run")
    out = Path(out_dir)
    ckpt_root = out / "checkpoints"
    if not resume and checkpoint.read_latest(ckpt_root) is not None:
        raise TrainingError(f"{out} already holds checkpoints of an earlier run; pass --resume to continue it "
                            f"or choose another --out folder")
    rank, world = init_distributed()
    plan = batch_plan(cfg, "pretrain", world)
    genotype_text = read_genotype(cfg.genotype)
    show = cfg.logging.progress_bar and rank == 0

    text, tokenizer, data = prepare_mlm_data(cfg, show)
    order = StreamOrder(len(data.train_blocks), cfg.seed)

    assert tokenizer.pad_token_id is not None
    model = build_mlm_model(genotype_text, cfg.model, len(tokenizer), tokenizer.pad_token_id, cfg.seed)
    engine = build_engine(model, cfg.deepspeed, plan, cfg.pretrain.lr, cfg.pretrain.weight_decay,
                          cfg.pretrain.max_steps, cfg.pretrain.warmup_steps)
    torch.manual_seed(derived_seed(cfg.seed, rank, 1))  # dropout differs per rank
    identity = {"world_size": world, "train_batch_size": plan.train_batch_size, "seed": cfg.seed,
                "schedule_steps": cfg.pretrain.max_steps, "block_length": data.block_length,
                "train_blocks": len(data.train_blocks)}
    start = checkpoint.load_checkpoint(engine, ckpt_root, rank, identity) if resume else 0
    if start > stop:
        raise TrainingError(f"--resume: the last checkpoint in {ckpt_root} is at step {start}, beyond "
                            f"--max-steps {stop}; give a larger --max-steps (at most pretrain.max_steps = "
                            f"{cfg.pretrain.max_steps})")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=1))

    tokens_per_step = plan.train_batch_size * data.block_length
    last_loss: float | None = None
    with RunLog(out, rank == 0, cfg.logging.tensorboard, start if resume else None) as log:
        bar = tqdm(total=stop, initial=start, desc="pretrain", unit="step", disable=not show)
        tick, tick_step, t0 = time.perf_counter(), start, time.perf_counter()
        for step in range(start, stop):
            last_loss = mean_over_ranks(mlm_step(engine, data, order, plan, step, rank))
            done = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            if done % cfg.logging.log_every == 0 or done == stop:
                now = time.perf_counter()
                log.write({"step": done, "loss": last_loss, "lr": float(engine.get_lr()[0]),
                           "tokens_per_s": tokens_per_step * (done - tick_step) / max(now - tick, 1e-9)})
                tick, tick_step = now, done
            if done % cfg.pretrain.checkpoint_every == 0 or done == stop:
                checkpoint.save_checkpoint(engine, ckpt_root, done, identity, rank, cfg.pretrain.keep_checkpoints)
        bar.close()
        elapsed = time.perf_counter() - t0
        eval_loss = evaluate_mlm(engine, data, plan.micro_batch_size)  # reported in summary.json
        if eval_loss is not None:
            log.scalars({"step": stop, "loss": eval_loss}, prefix="eval")

    summary = {
        "steps": stop, "resumed_from": start if resume else None, "final_loss": last_loss, "eval_loss": eval_loss,
        "tokens_per_s": tokens_per_step * (stop - start) / elapsed if stop > start else None,
        "world_size": world, "train_batch_size": plan.train_batch_size, "block_length": data.block_length,
        "train_blocks": len(data.train_blocks), "vocab_size": len(tokenizer),
        "num_parameters": sum(p.numel() for p in unwrap(engine).parameters()),
        "genotype": cfg.genotype, "corpus": text.description, "final_dir": str(out / "final"),
    }
    if rank == 0:
        _export(engine, tokenizer, out / "final")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
