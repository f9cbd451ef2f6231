"""The one training loop: pre-training, fine-tuning, supernet training and candidate evaluation drive it.

A loop is an engine (`engine.build_engine`), a step function `step_fn(step) -> loss` (one optimizer step at
0-based `step`, this rank's mean loss; `accumulate` builds one from a batch function) and `LoopSettings`
(where to stop, how often to log and checkpoint). `TrainLoop.begin(resume)` returns the step to start at
(0, or the step of the newest checkpoint, whose run identity must match); `TrainLoop.run(start, log)` takes
steps `start..stop-1`: the loss is averaged over ranks, a non-finite loss stops the run with
`NonFiniteLoss`, a record goes to the `RunLog` every `log_every` steps and at the stop, a checkpoint is
written every `checkpoint_every` steps and at the stop, and a progress bar shows the loss on rank 0.

What makes a resumed run exact lives outside the loop: batches and masks are functions of the step
(`data/order.py`, `data/mlm_blocks.py`), and anything else that varies per step (the supernet's candidate) must be too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from autobert_zero.errors import TrainingError
from autobert_zero.train import checkpoint
from autobert_zero.train.engine import mean_over_ranks
from autobert_zero.train.run_log import RunLog

StepFn = Callable[[int], float]
"""One optimizer step at the given 0-based step; returns this rank's mean loss."""


class NonFiniteLoss(TrainingError):
    """The training loss became NaN or infinite (every rank raises it at the same step)."""

    def __init__(self, step: int, loss: float) -> None:
        self.step, self.loss = step, loss
        super().__init__(f"training loss is {loss} at step {step}: the run diverged (lower the learning rate, "
                         f"enable gradient_clipping in the deepspeed: section, or check the genotype)")


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """A batch of tensors moved to `device`."""
    return {k: v.to(device) for k, v in batch.items()}


def accumulate(engine: Any, batch_of: Callable[[int], dict[str, torch.Tensor]], micro_steps: int) -> float:
    """One optimizer step over `micro_steps` micro-batches (`batch_of(micro)`); returns the mean loss.

    DeepSpeed's `engine.step()` only updates the weights at the accumulation boundary.
    """
    total = 0.0
    for micro in range(micro_steps):
        loss = engine(**to_device(batch_of(micro), engine.device)).loss
        engine.backward(loss)
        engine.step()
        total += float(loss.detach().float())
    return total / micro_steps


@dataclass(frozen=True)
class LoopSettings:
    """Where a loop stops and what it writes on the way."""

    stop: int
    """Run until this many steps are done (the schedule may be longer: see `pretrain.max_steps`)."""
    desc: str = "train"
    """Label of the progress bar."""
    log_every: int = 10
    """One RunLog record every this many steps (and at the stop)."""
    checkpoint_every: int | None = None
    """A checkpoint every this many steps (and at the stop); None = never (needs `TrainLoop.checkpoints`)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints stay on disk."""
    progress_bar: bool = False
    """Show a tqdm bar (only where the loop's `rank` is 0)."""
    tokens_per_step: int | None = None
    """Tokens per optimizer step, for a `tokens_per_s` field in the records; None = no such field."""


@dataclass
class LoopResult:
    """What a `run` did: steps start..stop, the loss after each (1-based step → rank-mean loss), seconds."""

    start: int
    stop: int
    losses: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def last_loss(self) -> float | None:
        return self.losses[max(self.losses)] if self.losses else None


class TrainLoop:
    """An engine, a step function and settings; optionally checkpoints under `checkpoints` (a folder).

    `identity` is the run identity saved in every checkpoint and compared on resume (everything that, if
    changed, would change the data, the candidates or the loss curve). `record_fields(step)` may add fields
    (e.g. the candidate id) to each metrics record of 1-based step `step`.
    """

    def __init__(self, engine: Any, step_fn: StepFn, settings: LoopSettings, *, rank: int = 0,
                 checkpoints: Path | None = None, identity: dict[str, Any] | None = None,
                 record_fields: Callable[[int], dict[str, Any]] | None = None) -> None:
        if settings.checkpoint_every is not None and checkpoints is None:
            raise ValueError("LoopSettings.checkpoint_every needs a checkpoints folder")
        self.engine, self.step_fn, self.settings, self.rank = engine, step_fn, settings, rank
        self.checkpoints, self.identity = checkpoints, dict(identity or {})
        self.record_fields = record_fields

    def begin(self, resume: bool) -> int:
        """The first step to run: 0, or (with `resume`) the step of the newest checkpoint, loaded."""
        if not resume:
            return 0
        if self.checkpoints is None:
            raise TrainingError("--resume needs a run with checkpoints")
        start = checkpoint.load_checkpoint(self.engine, self.checkpoints, self.rank, self.identity)
        if start > self.settings.stop:
            raise TrainingError(f"--resume: the last checkpoint in {self.checkpoints} is at step {start}, beyond "
                                f"--max-steps {self.settings.stop}; give a larger --max-steps")
        return start

    def run(self, start: int = 0, log: RunLog | None = None) -> LoopResult:
        """Take steps `start..stop-1`; returns their losses. Raises `NonFiniteLoss` on a NaN/inf loss."""
        s = self.settings
        result = LoopResult(start, s.stop)
        bar = tqdm(total=s.stop, initial=start, desc=s.desc, unit="step",
                   disable=not (s.progress_bar and self.rank == 0))
        tick, tick_step, t0 = time.perf_counter(), start, time.perf_counter()
        try:
            for step in range(start, s.stop):
                loss = mean_over_ranks(self.step_fn(step))
                done = step + 1
                if not math.isfinite(loss):
                    raise NonFiniteLoss(done, loss)
                result.losses[done] = loss
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if log is not None and (done % s.log_every == 0 or done == s.stop):
                    now = time.perf_counter()
                    record: dict[str, Any] = {"step": done, "loss": loss, "lr": float(self.engine.get_lr()[0])}
                    if s.tokens_per_step is not None:
                        record["tokens_per_s"] = s.tokens_per_step * (done - tick_step) / max(now - tick, 1e-9)
                    if self.record_fields is not None:
                        record.update(self.record_fields(done))
                    log.write(record)
                    tick, tick_step = now, done
                if self.checkpoints is not None and s.checkpoint_every is not None and (
                        done % s.checkpoint_every == 0 or done == s.stop):
                    checkpoint.save_checkpoint(self.engine, self.checkpoints, done, self.identity, self.rank,
                                               s.keep_checkpoints)
        finally:
            bar.close()
        result.seconds = time.perf_counter() - t0
        return result
