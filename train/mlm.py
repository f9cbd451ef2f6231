"""The shared masked-LM run: data prepared once, one optimizer step, the held-out loss, the HF export, and
`run_mlm` — the whole resumable run that `pretrain.pretrain` (a genotype's model) and
`supernet.train_supernet` (the supernet plus `MlmHooks`) both drive.

A run is resumable bit for bit: `run_mlm` stops at `stop` without changing the learning-rate schedule,
which always spans `pretrain.max_steps`; so a run stopped at step k (or killed after its checkpoint at k)
and resumed produces the same losses after k as a run that never stopped: the data order and the masking
are functions of the step (`data/order.py`, `data/mlm_blocks.py`), and the weights, optimizer, scheduler
and RNG states come back from the checkpoint (`checkpoint.py`). The prepared corpus/tokenizer/blocks
(`PreparedMlm`) may be passed in, so a search or an audit prepares its data once; the candidate evaluator
(`evaluate.py`) reuses `mlm_step`, `mean_loss` and `export_model` for its short runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from autobert_zero.config.load import BatchPlan, batch_plan, load_config
from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError
from autobert_zero.io import atomic_directory, atomic_write_text
from autobert_zero.json_files import flatten
from autobert_zero.run_dir import open_run_dir
from autobert_zero.train import checkpoint
from autobert_zero.train.data.corpus import Corpus, load_corpus, without_texts_of
from autobert_zero.train.data.mlm_blocks import MlmData
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.data.seeds import DROPOUT, derived_seed
from autobert_zero.train.data.tokenizer import build_tokenizer
from autobert_zero.train.engine import build_engine, full_weights, init_distributed, parameter_count, unwrap
from autobert_zero.train.loop import LoopSettings, TrainLoop, accumulate, to_device
from autobert_zero.train.run_log import RunLog, logged_loss


def resolve_config(config: Config | str | os.PathLike[str]) -> Config:
    """A config object as is, or loaded strictly from a YAML path (a copy, so overrides stay local)."""
    if isinstance(config, Config):
        return dataclasses.replace(config)
    return load_config(config)


@dataclass(frozen=True)
class PreparedMlm:
    """A config's corpus, tokenizer and MLM blocks, prepared once and reused (e.g. across candidates)."""

    corpus: Corpus
    tokenizer: PreTrainedTokenizerBase
    data: MlmData
    eval_corpus: Corpus | None = None
    """The document-disjoint held-out text (`data.eval_corpus`), if any; `corpus` is then training text only."""


def prepare_mlm_data(cfg: Config, show_progress: bool = False,
                     tokenizer: PreTrainedTokenizerBase | None = None) -> PreparedMlm:
    """The corpus, the tokenizer (the argument, else the config's, else trained and cached) and the MLM
    blocks of a config."""
    text = load_corpus(cfg.data.corpus, cfg.data.text_column)
    held_out = None
    if cfg.data.eval_corpus is not None:
        held_out = load_corpus(cfg.data.eval_corpus, cfg.data.text_column)
        text = without_texts_of(text, held_out)
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg.data.tokenizer, text, cfg.data.vocab_size, cfg.data.lowercase,
                                    cfg.data.tokenizer_cache_dir, show_progress=show_progress)
    tokenizer.model_max_length = cfg.model.max_position_embeddings
    data = MlmData.build(text, tokenizer, cfg.data.max_seq_length, cfg.data.mlm_probability,
                         cfg.data.eval_blocks, cfg.seed, held_out)
    return PreparedMlm(text, tokenizer, data, held_out)


def check_prepared(cfg: Config, prepared: PreparedMlm) -> None:
    """Refuse prepared data that does not fit the config (another block length or seed)."""
    data = prepared.data
    if data.block_length != cfg.data.max_seq_length or data.seed != cfg.seed:
        raise ConfigError(f"prepared MLM data has block length {data.block_length} and seed {data.seed}, but "
                          f"{cfg.source} asks for data.max_seq_length {cfg.data.max_seq_length} and seed "
                          f"{cfg.seed}; prepare the data from this config")


def prepare_or_check(cfg: Config, prepared: PreparedMlm | None, rank: int,
                     tokenizer: PreTrainedTokenizerBase | None = None) -> PreparedMlm:
    """`prepared` checked against the config, or the config's data prepared now."""
    if prepared is None:
        prepared = prepare_mlm_data(cfg, cfg.logging.progress_bar and rank == 0, tokenizer)
    check_prepared(cfg, prepared)
    return prepared


def mlm_step(engine: Any, data: MlmData, order: StreamOrder, plan: BatchPlan, step: int, rank: int) -> float:
    """One optimizer step (all its micro-batches) at 0-based `step`; returns this rank's mean loss."""
    return accumulate(engine, lambda micro: data.train_batch(order, plan, step, micro, rank),
                      plan.gradient_accumulation_steps)


@torch.no_grad()
def mean_loss(model: Any, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean loss of a model (or an engine's model) in eval mode over labelled batches."""
    module = unwrap(model) if hasattr(model, "module") else model
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    losses = [float(module(**to_device(b, device)).loss.float()) for b in batches]
    module.train(was_training)
    return sum(losses) / len(losses)


def evaluate_mlm(model: Any, data: MlmData, batch_size: int) -> float | None:
    """Mean MLM loss of a model (or an engine) over the held-out blocks (None when there are none).

    The batches and mask positions are fixed (`MlmData.eval_batches`): every model is scored on the same.
    """
    batches = data.eval_batches(batch_size)
    return mean_loss(model, batches) if batches else None


def export_model(model: Any, tokenizer: Any, folder: Path) -> None:
    """Write a model (or an engine's model) and tokenizer as a Hugging Face folder, atomically."""
    module = unwrap(model) if hasattr(model, "module") else model
    module.config.sparse_mlm_logits = False  # the exported model gives the usual (B, L, vocab) logits
    with atomic_directory(folder) as tmp:
        module.float().save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))


RESUME_EXEMPT: dict[str, str] = {
    "source": "where the config was read from",
    "genotype": "a path; the genotype itself is in the identity as genotype_id",
    "language.grammar": "a path; the grammar itself is in the identity as language.grammar_sha256",
    "language.ops": "a path or module; its source is in the identity as language.ops_sha256",
    "language.plugin": "a plugin name; its name, version and source are in the identity as language.ops_sha256",
    "data.corpus": "a path or name; the text itself is in the identity as data.corpus_sha256",
    "data.eval_corpus": "paths; the held-out text itself is in the identity as data.eval_corpus_sha256",
    "data.tokenizer": "a path or name; the vocabulary itself is in the identity as vocab_sha256",
    "data.tokenizer_cache_dir": "where a trained vocabulary is cached (vocab_sha256 holds the vocabulary)",
    "supernet.population": "paths; the genotypes themselves are in the identity as candidate_population",
    "pretrain.checkpoint_every": "when checkpoints are written, not what is trained",
    "pretrain.keep_checkpoints": "how many checkpoints stay on disk",
    "logging": "what is logged and shown (metrics.jsonl frequency, TensorBoard, progress bar)",
    "deepspeed.steps_per_print": "DeepSpeed's console logging",
    "model.gradient_checkpointing": "recomputes activations in the backward pass: the same losses, less memory",
    "deepspeed.wall_clock_breakdown": "DeepSpeed's timing report",
    "finetune": "read by `abz finetune` only",
    "search": "read by `abz search` only",
    "evaluate": "read by `abz evaluate`/`abz search` only",
    "audit": "read by `abz audit` only",
}
"""The config keys (a section name covers the whole section) that cannot change what an MLM run trains, with
why: the only keys `--resume` lets differ from the run's start. Every other key of the resolved config is
part of the run identity (`mlm_identity`). `--max-steps` is not a config key: a resumed run may stop later."""
UNUSED_SECTIONS: dict[str, tuple[str, ...]] = {"pretrain": ("supernet",), "supernet": ()}
"""Per run kind (`run_mlm`'s `desc`), the further config sections it never reads."""


def config_identity(cfg: Config, desc: str) -> dict[str, Any]:
    """Every key of the resolved config that shapes an MLM run of kind `desc`, flattened to dotted names
    ("supernet.conv_probability", "deepspeed.zero_optimization.stage"): all but `RESUME_EXEMPT` and the
    kind's `UNUSED_SECTIONS`."""
    exempt = (*RESUME_EXEMPT, *UNUSED_SECTIONS.get(desc, ()))
    flat = flatten(dataclasses.asdict(cfg))
    return {key: value for key, value in flat.items()
            if not any(key == name or key.startswith(f"{name}.") for name in exempt)}


def mlm_identity(cfg: Config, plan: BatchPlan, prepared: PreparedMlm, world: int,
                 model: PreTrainedModel, desc: str = "pretrain") -> dict[str, Any]:
    """The run identity of an MLM run (`checkpoint.run_identity`): every config key that shapes the run
    (`config_identity`), the genotype id, the vocabulary and corpus hashes and the batch layout — what, if
    changed, would continue other weights, or change the data order or the loss curve — so `--resume`
    refuses a change, naming each key. A custom language adds its grammar and op sha256s (`language.*_sha256`)."""
    from autobert_zero.grammar.loading import record_hashes

    data = prepared.data
    return checkpoint.run_identity(
        genotype_id=model.config.parsed_genotype().id, tokenizer=prepared.tokenizer,
        config=config_identity(cfg, desc),
        derived={"data.corpus_sha256": prepared.corpus.fingerprint, "data.block_length": data.block_length,
                 "data.train_blocks": len(data.train_blocks), "world_size": world,
                 "train_batch_size": plan.train_batch_size,
                 **record_hashes(getattr(model.config, "language", None)),
                 **({"data.eval_corpus_sha256": prepared.eval_corpus.fingerprint}
                    if prepared.eval_corpus is not None else {})})


def stop_step(cfg: Config, max_steps: int | None) -> int:
    """Where a run stops: `max_steps`, checked against the schedule length `pretrain.max_steps`."""
    stop = cfg.pretrain.max_steps if max_steps is None else max_steps
    if not 0 < stop <= cfg.pretrain.max_steps:
        raise ConfigError(f"--max-steps {stop} must be in 1..pretrain.max_steps = {cfg.pretrain.max_steps} "
                          f"(the schedule length in {cfg.source}); raise pretrain.max_steps for a longer run")
    return stop


@dataclass
class MlmHooks:
    """What an MLM run adds to the plain loop: pre-training needs none; supernet training sets the step's
    candidate before each step's forward (`before_step(step)`, on every rank), saves the candidate sequence
    in the run identity (`identity`), logs the candidate (`record_fields`) and adds to the summary."""

    before_step: Callable[[int], None] | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    record_fields: Callable[[int], dict[str, Any]] | None = None
    summary: dict[str, Any] = field(default_factory=dict)


MLM_OUTPUTS = ("checkpoints", "metrics.jsonl", "config.json", "final", "summary.json", "tensorboard")
"""What an MLM run writes into its output folder (`--force` replaces these and nothing else)."""


def run_mlm(cfg: Config, out: Path, model: PreTrainedModel, prepared: PreparedMlm, stop: int, resume: bool,
            desc: str, hooks: MlmHooks, force: bool = False) -> dict[str, Any]:
    """Train `model` with masked LM through the one loop (`pretrain` and `abz supernet` both run this):
    engine, checkpoints, metrics, held-out loss, the HF export and `summary.json`; returns the summary.

    The output folder is held with `open_run_dir` for the whole run (refused if non-empty unless `resume`
    or `force`; one run at a time). Resuming a run that already finished at `stop` changes nothing and
    returns its summary."""
    rank, _ = init_distributed()
    with open_run_dir(out, f"abz {desc}", force=force, resume=resume, outputs=MLM_OUTPUTS, primary=rank == 0) as run:
        summary = run.finished() if resume else None
        if summary is not None and summary.get("steps") == stop and (
                checkpoint.read_latest(out / "checkpoints") == checkpoint.tag_for(stop)):
            if rank == 0:
                print(f"{out}: this run already finished at step {stop} (see summary.json); nothing to do",
                      file=sys.stderr)
            return summary
        return _run_mlm(cfg, out, model, prepared, stop, resume, desc, hooks)


def _run_mlm(cfg: Config, out: Path, model: PreTrainedModel, prepared: PreparedMlm, stop: int, resume: bool,
             desc: str, hooks: MlmHooks) -> dict[str, Any]:
    rank, world = init_distributed()
    plan = batch_plan(cfg, "pretrain", world)
    show = cfg.logging.progress_bar and rank == 0
    text, tokenizer, data = prepared.corpus, prepared.tokenizer, prepared.data
    order = StreamOrder(len(data.train_blocks), cfg.seed)
    tokens_per_step = plan.train_batch_size * data.block_length
    engine = build_engine(model, cfg.deepspeed, plan, cfg.pretrain.lr, cfg.pretrain.weight_decay,
                          cfg.pretrain.max_steps, cfg.pretrain.warmup_steps, allow_zero3=desc == "pretrain")
    torch.manual_seed(derived_seed(cfg.seed, rank, DROPOUT))  # dropout differs per rank

    def step_fn(step: int) -> float:
        if hooks.before_step is not None:
            hooks.before_step(step)
        return mlm_step(engine, data, order, plan, step, rank)

    settings = LoopSettings(stop=stop, desc=desc, log_every=cfg.logging.log_every,
                            checkpoint_every=cfg.pretrain.checkpoint_every,
                            keep_checkpoints=cfg.pretrain.keep_checkpoints, progress_bar=show,
                            tokens_per_step=tokens_per_step)
    loop = TrainLoop(engine, step_fn, settings, rank=rank, checkpoints=out / "checkpoints",
                     identity={**mlm_identity(cfg, plan, prepared, world, model, desc), **hooks.identity},
                     record_fields=hooks.record_fields)
    start = loop.begin(resume)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=1))

    with RunLog(out, rank == 0, cfg.logging.tensorboard, start if resume else None) as log:
        result = loop.run(start, log)
        eval_loss = evaluate_mlm(engine, data, plan.micro_batch_size)  # reported in summary.json
        if eval_loss is not None:
            log.scalars({"step": stop, "loss": eval_loss}, prefix="eval")

    final_loss = result.last_loss
    if final_loss is None:  # resumed at `stop` (killed after its last checkpoint): the logged loss of that step
        final_loss = logged_loss(out, stop)
    summary = {
        "steps": stop, "resumed_from": start if resume else None, "final_loss": final_loss,
        "eval_loss": eval_loss,
        "tokens_per_s": tokens_per_step * (stop - start) / result.seconds if stop > start else None,
        "world_size": world, "train_batch_size": plan.train_batch_size, "block_length": data.block_length,
        "train_blocks": len(data.train_blocks), "vocab_size": len(tokenizer),
        "num_parameters": parameter_count(unwrap(engine)),
        **hooks.summary, "corpus": text.description, "final_dir": str(out / "final"),
    }
    with full_weights(engine):  # ZeRO-3: every rank gathers, rank 0 saves the whole model
        if rank == 0:
            export_model(engine, tokenizer, out / "final")
    if rank == 0:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
