"""The runs of a retrain, each an ordinary `pretrain` / `finetune` folder under `OUT/runs/`, run in phases:

1. `sweep`: per arm and learning rate (when more than one is given), a short pre-training run of
   `sweep_steps` (its own schedule, warm-up scaled) at the base seed; the lr is chosen by the mean
   training loss over the run's last fifth — batches of blocks seen for the first time
   while the sweep stays within one pass over the training blocks (recorded as `fresh`), so a held-out
   estimate drawn from training text; the document-disjoint held-out text is never used to choose.
2. `pretrain`: per arm and seed (`seed + i`), the configured budget at the arm's lr and FFN width.
3. `heldout`: each final model's MLM loss on one fixed set of held-out blocks and masks (the base seed's,
   from `evaluate.eval_offset`, `eval_limit` of them), the same for every arm and seed, so differences are
   paired by construction.
4. `select`: per GLUE task and arm, fine-tuning lrs tried on the base seed's model, scored on a slice of the
   task's training split (`finetune(select_examples=...)`), never on dev.
5. `finetune`: per task, arm, pre-training seed and fine-tuning seed, dev metrics at the chosen lr.

Every run's result lives in its folder (`summary.json`, `heldout.json`, `eval.json`), so a killed retrain
continues from what is there: a pre-training run resumes from its checkpoint (bit for bit, see `mlm.py`), a
fine-tune without `eval.json` starts again (they are short and deterministic). Only those small files are
needed to continue: a model a later phase needs and no longer finds (`final/`) is trained again, to the same
weights, so a retrain can continue on another machine from its committed result files. Several workers may run one
retrain at once (the same command started again with `--resume`): each run is claimed by a lock file beside
its folder, a worker skips what another holds and, before a phase that needs it, waits for it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError
from autobert_zero.io import atomic_write_text
from autobert_zero.json_files import read_json
from autobert_zero.train.retrain.arms import Arm
from autobert_zero.train.run_log import read_metrics

LAST_SHARE = 0.2
"""Share of a sweep run's last steps whose mean training loss scores its learning rate."""


@dataclass(frozen=True)
class RetrainSettings:
    """What a retrain runs (all but the arms): seeds, learning rates, GLUE tasks."""

    seeds: int
    lrs: tuple[float, ...]
    sweep_steps: int
    glue_tasks: tuple[str, ...]
    glue_data_dir: str | None
    finetune_seeds: int
    finetune_lrs: tuple[float, ...]
    select_examples: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def seeds_of(cfg: Config, settings: RetrainSettings) -> list[int]:
    return [cfg.seed + i for i in range(settings.seeds)]


def lr_tag(lr: float) -> str:
    """A learning rate as a run-folder suffix: `lr0.001`."""
    return f"lr{lr:g}"


class Runner:
    """Runs (or reads back) every run of a retrain in `out / "runs"`; `prepared(seed)` gives the MLM data of
    a config seed (prepared once per process)."""

    def __init__(self, cfg: Config, arms: Sequence[Arm], settings: RetrainSettings, out: Path,
                 prepared: Callable[[int], Any], log: Callable[[str], None]) -> None:
        self.cfg, self.arms, self.settings, self.out = cfg, list(arms), settings, out
        self.prepared, self.log = prepared, log
        self.runs = out / "runs"
        self.chosen_lr: dict[str, float] = {}
        self.chosen_finetune_lr: dict[tuple[str, str], float] = {}

    # -- folders --------------------------------------------------------------------------------------------
    def run_dir(self, arm: str, run: str) -> Path:
        """`OUT/runs/ARM/RUN`: a pre-training run (`seedS`, `sweep-lrX`)."""
        return self.runs / arm / run

    def glue_dir(self, arm: str, seed: int, run: str = "") -> Path:
        """`OUT/runs/ARM/seedS/glue/RUN`: the fine-tunes of one pre-trained model."""
        return self.run_dir(arm, f"seed{seed}") / "glue" / run

    # -- configs --------------------------------------------------------------------------------------------
    def arm_config(self, arm: Arm, seed: int, lr: float, steps: int | None = None) -> Config:
        cfg = dataclasses.replace(self.cfg, seed=seed, genotype=f"<{arm.name}>")
        cfg.model = dataclasses.replace(cfg.model, intermediate_size=arm.intermediate_size)
        pre = cfg.pretrain
        if steps is None:
            cfg.pretrain = dataclasses.replace(pre, lr=lr)
        else:
            warmup = min(steps - 1, round(pre.warmup_steps * steps / pre.max_steps))
            cfg.pretrain = dataclasses.replace(pre, lr=lr, max_steps=steps, warmup_steps=max(0, warmup),
                                               checkpoint_every=steps)
            cfg.logging = dataclasses.replace(cfg.logging, log_every=1)
        return cfg

    # -- one run --------------------------------------------------------------------------------------------
    @contextmanager
    def claimed(self, folder: Path, wait: bool) -> Iterator[bool]:
        """Hold the run's claim (a lock file beside its folder) while the body runs; False if another worker
        holds it and `wait` is False."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder.parent / f".{folder.name}.claim"), timeout=-1 if wait else 0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def pretrain_run(self, folder: Path, arm: Arm, cfg: Config, need_model: bool = False) -> dict[str, Any]:
        """The run's summary: read back when finished (and, with `need_model`, its `final/` model is there), else
        trained (resumed where it stopped). A finished run whose model is gone (only its small result files were
        kept, e.g. committed from another machine) is trained again: runs are bit-for-bit reproducible, so it
        is the same model."""
        summary = _finished_pretrain(folder, cfg.pretrain.max_steps, need_model)
        if summary is not None:
            return summary
        from autobert_zero.train.pretrain import pretrain

        resume = (folder / "checkpoints").is_dir() and not (folder / "summary.json").is_file()
        return pretrain(cfg, folder, genotype=arm.candidate.genotype, resume=resume, prepared=self.prepared(cfg.seed),
                        force=folder.exists() and not resume)

    def each(self, jobs: Sequence[tuple[str, Path, Callable[[], bool]]]) -> None:
        """Run every job not finished and not claimed elsewhere, then wait for those claimed elsewhere; a job
        returns whether it had work to do (False: its result was already there), and each that had is logged."""
        total = len(jobs)
        for attempt in (False, True):
            for i, (label, folder, job) in enumerate(jobs):
                with self.claimed(folder, wait=attempt) as mine:
                    if not mine:
                        continue
                    started = time.perf_counter()
                    if job():
                        self.log(f"[{i + 1}/{total}] {label}: {time.perf_counter() - started:.1f} s "
                                 f"(worker pid {os.getpid()})")

    # -- phases ---------------------------------------------------------------------------------------------
    def sweep(self) -> dict[str, list[dict[str, Any]]]:
        """Phase 1; returns per arm the lr table and sets `chosen_lr`."""
        s = self.settings
        tables: dict[str, list[dict[str, Any]]] = {}
        if len(s.lrs) == 1:
            self.chosen_lr = {arm.name: s.lrs[0] for arm in self.arms}
            return tables
        jobs = []
        for arm in self.arms:
            for lr in s.lrs:
                folder = self.run_dir(arm.name, f"sweep-{lr_tag(lr)}")
                cfg = self.arm_config(arm, self.cfg.seed, lr, s.sweep_steps)
                jobs.append((f"lr sweep {arm.name} {lr_tag(lr)}", folder,
                             partial(self.sweep_run, folder, arm, cfg)))
        self.each(jobs)
        plan_blocks = len(self.prepared(self.cfg.seed).data.train_blocks)
        for arm in self.arms:
            rows = []
            for lr in s.lrs:
                folder = self.run_dir(arm.name, f"sweep-{lr_tag(lr)}")
                summary = read_json(folder / "summary.json")
                rows.append({"lr": lr, "score": sweep_score(folder),
                             "fresh": s.sweep_steps * summary["train_batch_size"] <= plan_blocks,
                             "folder": str(folder.relative_to(self.out))})
            self.chosen_lr[arm.name] = pick_lr({r["lr"]: r["score"] for r in rows})
            tables[arm.name] = rows
        return tables

    def pretrain(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Phases 2 and 3; per arm and seed: the summary and the fixed held-out loss."""
        jobs = []
        for arm in self.arms:
            for seed in seeds_of(self.cfg, self.settings):
                folder = self.run_dir(arm.name, f"seed{seed}")
                cfg = self.arm_config(arm, seed, self.chosen_lr[arm.name])
                jobs.append((f"pre-train {arm.name} seed {seed}", folder,
                             partial(self.pretrain_and_score, folder, arm, cfg)))
        self.each(jobs)
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for arm in self.arms:
            for seed in seeds_of(self.cfg, self.settings):
                folder = self.run_dir(arm.name, f"seed{seed}")
                out.setdefault(arm.name, {})[seed] = {**read_json(folder / "summary.json"),
                                                      **read_json(folder / "heldout.json")}
        return out

    def sweep_run(self, folder: Path, arm: Arm, cfg: Config) -> bool:
        if _finished_pretrain(folder, cfg.pretrain.max_steps):
            return False
        self.pretrain_run(folder, arm, cfg)
        return True

    def pretrain_and_score(self, folder: Path, arm: Arm, cfg: Config) -> bool:
        if (folder / "heldout.json").is_file() and _finished_pretrain(folder, cfg.pretrain.max_steps):
            return False
        self.pretrain_run(folder, arm, cfg, need_model=True)
        atomic_write_text(folder / "heldout.json", json.dumps(self.heldout(folder), indent=1))
        return True

    def heldout(self, folder: Path) -> dict[str, Any]:
        """The final model's MLM loss on the base seed's held-out blocks [evaluate.eval_offset, + eval_limit)
        (all by default; an offset keeps blocks a search scored on out of the retrain's endpoint) and masks,
        in batches of `pretrain.micro_batch_size` (as `abz pretrain` scores its held-out loss)."""
        from autobert_zero.compiler.hf_model import AutoBertZeroForMaskedLM
        from autobert_zero.train.mlm import mean_loss

        data = self.prepared(self.cfg.seed).data
        ev = self.cfg.evaluate
        batches = data.eval_batches(self.cfg.pretrain.micro_batch_size, ev.eval_offset, ev.eval_limit)
        if not batches:
            raise ConfigError(f"{self.cfg.source}: no held-out block from evaluate.eval_offset = {ev.eval_offset} "
                              f"(data.eval_blocks = {len(data.eval_blocks)}); the retrain scores its models there")
        model = AutoBertZeroForMaskedLM.from_pretrained(str(folder / "final"))
        blocks = sum(len(b["input_ids"]) for b in batches)
        return {"heldout_loss": mean_loss(model, batches), "heldout_blocks": blocks,
                "heldout_offset": ev.eval_offset, "heldout_document_disjoint": self.cfg.data.eval_corpus is not None}

    def finetune_config(self, seed: int, lr: float) -> Config:
        cfg = dataclasses.replace(self.cfg, seed=seed)
        cfg.finetune = dataclasses.replace(cfg.finetune, lr=lr)
        return cfg

    def finetune_run(self, folder: Path, arm: Arm, seed: int, task: str, cfg: Config, select: bool) -> bool:
        """A fine-tune's eval.json, made unless it is there (a killed fine-tune starts again: it is short), from
        the arm's pre-trained model of `seed` (trained again if only its result files are left)."""
        if (folder / "eval.json").is_file():
            return False
        from autobert_zero.train.finetune import finetune

        init = self.run_dir(arm.name, f"seed{seed}")
        self.pretrain_run(init, arm, self.arm_config(arm, seed, self.chosen_lr[arm.name]), need_model=True)
        finetune(cfg, task, self.settings.glue_data_dir, init / "final", folder, force=folder.exists(),
                 select_examples=self.settings.select_examples if select else None)
        return True

    def glue(self) -> dict[str, Any]:
        """Phases 4 and 5; per task: the lr tables and, per arm and pre-training seed, the dev scores."""
        s = self.settings
        base = self.cfg.seed
        result: dict[str, Any] = {}
        for task in s.glue_tasks:
            if len(s.finetune_lrs) > 1:
                jobs = []
                for arm in self.arms:
                    for lr in s.finetune_lrs:
                        folder = self.glue_dir(arm.name, base, f"{task}-select-{lr_tag(lr)}")
                        jobs.append((f"{task} lr selection {arm.name} {lr_tag(lr)}", folder,
                                     partial(self.finetune_run, folder, arm, base, task, self.finetune_config(base, lr),
                                           True)))
                self.each(jobs)
            tables: dict[str, list[dict[str, Any]]] = {}
            for arm in self.arms:
                rows = []
                for lr in s.finetune_lrs if len(s.finetune_lrs) > 1 else ():
                    folder = self.glue_dir(arm.name, base, f"{task}-select-{lr_tag(lr)}")
                    rows.append({"lr": lr, "score": read_json(folder / "eval.json")["score"]})
                best = max(rows, key=lambda r: (r["score"], -r["lr"]))["lr"] if rows else s.finetune_lrs[0]
                self.chosen_finetune_lr[task, arm.name] = best
                tables[arm.name] = rows
            jobs = []
            for arm in self.arms:
                lr = self.chosen_finetune_lr[task, arm.name]
                for seed in seeds_of(self.cfg, s):
                    for f in range(s.finetune_seeds):
                        folder = self.glue_dir(arm.name, seed, f"{task}-ft{f}")
                        ft = self.finetune_config(base + f, lr)
                        jobs.append((f"{task} {arm.name} seed {seed} fine-tune {f}", folder,
                                     partial(self.finetune_run, folder, arm, seed, task, ft, False)))
            self.each(jobs)
            scores: dict[str, dict[int, list[float]]] = {}
            for arm in self.arms:
                for seed in seeds_of(self.cfg, s):
                    glue = self.glue_dir(arm.name, seed)
                    scores.setdefault(arm.name, {})[seed] = [read_json(glue / f"{task}-ft{f}" / "eval.json")["score"]
                                                             for f in range(s.finetune_seeds)]
            result[task] = {"lr_tables": tables,
                            "chosen_lr": {arm.name: self.chosen_finetune_lr[task, arm.name] for arm in self.arms},
                            "scores": scores}
        return result


def _finished_pretrain(folder: Path, steps: int, need_model: bool = False) -> dict[str, Any] | None:
    """The summary of a run finished at `steps` (with `need_model`: only if its `final/` model is there too)."""
    path = folder / "summary.json"
    if not path.is_file() or (need_model and not (folder / "final" / "config.json").is_file()):
        return None
    summary = read_json(path)
    return summary if summary.get("steps") == steps else None


def mlm_data_by_seed(cfg: Config) -> Callable[[int], Any]:
    """`prepared(seed)` for a `Runner`: the MLM data of `cfg` at a config seed, prepared once per seed and
    process, every seed with the tokenizer of `cfg.seed`'s (trained or read once)."""
    from autobert_zero.train.mlm import PreparedMlm, prepare_mlm_data

    cache: dict[int, PreparedMlm] = {}

    def prepared(seed: int) -> PreparedMlm:
        if seed not in cache:
            base = cache.get(cfg.seed)
            cache[seed] = prepare_mlm_data(dataclasses.replace(cfg, seed=seed), cfg.logging.progress_bar,
                                           base.tokenizer if base is not None else None)
        return cache[seed]

    return prepared


def sweep_score(folder: Path) -> float | None:
    """A sweep run's score: the mean training loss of its last `LAST_SHARE` of records; None when it diverged
    (a non-finite loss there) or logged nothing."""
    losses = [loss for _, loss in loss_curve(folder)]
    tail = losses[-max(1, math.ceil(len(losses) * LAST_SHARE)):]
    return statistics.fmean(tail) if tail and all(map(math.isfinite, tail)) else None


def pick_lr(scores: Mapping[float, float | None]) -> float:
    """The sweep's pick from {lr: `sweep_score`}: the lowest score, a diverged run (None) last, ties to the smaller
    lr."""
    return min(scores, key=lambda lr: (scores[lr] is None, scores[lr] or 0.0, lr))


def loss_curve(folder: Path) -> list[tuple[int, float]]:
    """(step, training loss) of each record of a run's metrics.jsonl."""
    return [(int(r["step"]), float(r["loss"])) for r in read_metrics(folder) if "loss" in r and "step" in r]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
