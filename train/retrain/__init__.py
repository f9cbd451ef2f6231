"""`abz retrain`: a search's best genotypes against baselines, trained from scratch at equal size.

`retrain()` picks the arms (`arms.py`: the search's top K re-scored on held-out blocks it never used, and the
baselines, each sized to the first baseline's parameters), runs every pre-training and fine-tuning run as an
ordinary run folder (`runs.py`: an lr sweep per arm, N seeds, the fixed held-out loss, GLUE with the
fine-tuning lr chosen on a slice of train), and writes `OUT/results.json`, `OUT/report.md` and plots
(`report.py`). `OUT/retrain.json`, written before the first run, records what the retrain is (the config,
the text and vocabulary hashes, the arms, the settings; and, not compared, where the search and the GLUE data
were); `--resume` refuses a folder whose record differs from the command's, naming each difference, and
otherwise continues exactly where a killed retrain stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError, DataError, SearchError
from autobert_zero.io import atomic_write_text
from autobert_zero.json_files import read_json
from autobert_zero.train.retrain.arms import (
    DEFAULT_BASELINES,
    Arm,
    Candidate,
    baseline_candidates,
    equal_size,
    found_candidates,
    recorded_candidates,
)
from autobert_zero.train.retrain.report import analyse, caveat, plot, report_text
from autobert_zero.train.retrain.runs import RetrainSettings, Runner, loss_curve, mlm_data_by_seed, say, seeds_of

RECORD_FILE = "retrain.json"
RECORD_VERSION = 1
DEFAULT_GLUE = ("SST-2", "STS-B", "CoLA")
__all__ = ["DEFAULT_BASELINES", "DEFAULT_GLUE", "RetrainSettings", "retrain"]


def check_glue(tasks: Sequence[str], data_dir: str | None) -> None:
    """Every task known and its train and dev files present (when read from a folder)."""
    from autobert_zero.train.data.glue import get_task

    for task in tasks:
        spec = get_task(task)
        if data_dir is None:
            continue
        for split in ("train", "dev"):
            path = Path(data_dir) / spec.folder / f"{split}.tsv"
            if not path.is_file():
                raise DataError(f"GLUE task {task}: {path} not found (expected the GLUE TSV folders under "
                                f"{data_dir}); drop the task from --glue or point --glue-data at them")


def _record(search: Path, cfg: Config, arms: Sequence[Arm], settings: RetrainSettings, prepared: Any
            ) -> dict[str, Any]:
    from autobert_zero.train.checkpoint import vocabulary_sha256
    from autobert_zero.train.mlm import config_identity

    held_out = prepared.eval_corpus.fingerprint if prepared.eval_corpus is not None else None
    settings_json = settings.to_json()
    glue_data = settings_json.pop("glue_data_dir")
    record = {"version": RECORD_VERSION, "about": {"search": str(search.resolve()), "glue_data_dir": glue_data},
              "config": config_identity(cfg, "pretrain"),
              "data": {"corpus": cfg.data.corpus, "eval_corpus": cfg.data.eval_corpus,
                       "corpus_sha256": prepared.corpus.fingerprint, "eval_corpus_sha256": held_out,
                       "vocab_sha256": vocabulary_sha256(prepared.tokenizer)},
              "arms": [arm.to_json() for arm in arms], "settings": settings_json}
    return dict(json.loads(json.dumps(record)))  # as it reads back (tuples become lists)


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    from autobert_zero.json_files import flatten

    before, after = flatten(saved), flatten(current)
    return [f"{key}: {before.get(key, '(absent)')!r:.60} -> {after.get(key, '(absent)')!r:.60}"
            for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key) and not key.startswith("about.")]


def retrain(search: str | os.PathLike[str], config: Config | str | os.PathLike[str], out: str | os.PathLike[str],
            settings: RetrainSettings, top: int = 1, baselines: Sequence[str] = DEFAULT_BASELINES,
            rescore: bool = True, resume: bool = False, found: Sequence[Candidate] | None = None) -> dict[str, Any]:
    """Run (or continue, `resume`) a retrain; returns the results (also `OUT/results.json`). `found`: the found
    arms chosen by the caller (e.g. across several searches) instead of the search's top `top`; `search` then
    only labels the retrain."""
    from autobert_zero.train.mlm import resolve_config

    cfg = resolve_config(config)
    search_dir, out_dir = Path(search), Path(out)
    record_path = out_dir / RECORD_FILE
    if settings.seeds > 1 and cfg.data.eval_corpus is None:
        raise ConfigError(f"--seeds {settings.seeds} needs data.eval_corpus in {cfg.source} (document-disjoint "
                          f"held-out text): without it each seed holds out other blocks of the corpus, so one "
                          f"seed's held-out blocks are another's training data; set it, or use --seeds 1")
    if top < 1:
        raise ConfigError(f"--top {top}: expected 1 or more")
    check_glue(settings.glue_tasks, settings.glue_data_dir)
    if resume:
        if not record_path.is_file():
            raise SearchError(f"{out_dir} holds no retrain to resume ({RECORD_FILE} missing); start one without "
                              f"--resume")
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise SearchError(f"{out_dir} is not empty; give a new --out, or --resume to continue the retrain in it")
    names = [c.name for c in found] if found is not None else [f"found-{i + 1}" for i in range(top)]
    fixed = baseline_candidates(baselines, names)  # parsed before any work
    if resume:
        found = recorded_candidates(read_json(record_path), kinds=("found",))
    elif found is None:
        found = found_candidates(search_dir, top, rescore, cfg.logging.progress_bar)
    candidates = [*found, *fixed]

    prepared = mlm_data_by_seed(cfg)
    vocab = len(prepared(cfg.seed).tokenizer)
    arms = equal_size(candidates, cfg, vocab)
    for arm in arms:
        if not arm.within_tolerance:
            raise ConfigError(f"{arm.name} cannot be sized to within ±2% of {arms_reference(arms)}'s parameters "
                              f"({arm.params:,} at FFN width {arm.intermediate_size}, {arm.params_ratio - 1:+.1%}); "
                              f"its token mixers alone outweigh the budget: raise model.intermediate_size in "
                              f"{cfg.source}")
    record = _record(search_dir, cfg, arms, settings, prepared(cfg.seed))
    if resume:
        changes = _differences(read_json(record_path), record)
        if changes:
            raise SearchError(f"{out_dir} is a retrain of another search, config or settings; changed: "
                              f"{'; '.join(changes[:8])}{' …' if len(changes) > 8 else ''}")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record_path, json.dumps(record, indent=1))
    say(f"retrain {out_dir}: {len(arms)} arms × {settings.seeds} seed(s), {cfg.pretrain.max_steps} steps each; "
        f"lr {'sweep ' if len(settings.lrs) > 1 else ''}{', '.join(f'{lr:g}' for lr in settings.lrs)}; "
        f"GLUE {', '.join(settings.glue_tasks) or 'none'}")
    runner = Runner(cfg, arms, settings, out_dir, prepared, say)
    sweep = runner.sweep()
    pretrain = runner.pretrain()
    glue = runner.glue()
    return write_results(out_dir, search_dir, cfg, arms, settings, runner, sweep, pretrain, glue)


def arms_reference(arms: Sequence[Arm]) -> str:
    return next(a.name for a in arms if a.candidate.kind == "baseline")


def write_results(out: Path, search: Path, cfg: Config, arms: Sequence[Arm], settings: RetrainSettings,
                  runner: Runner, sweep: dict[str, Any], pretrain: dict[str, Any], glue: dict[str, Any]
                  ) -> dict[str, Any]:
    """results.json, report.md and the plots of a finished retrain."""
    seeds = seeds_of(cfg, settings)
    arm_rows = []
    for arm in arms:
        runs = pretrain[arm.name]
        per_step = [r["train_batch_size"] * r["block_length"] / r["tokens_per_s"] for r in runs.values()
                    if r.get("tokens_per_s")]
        arm_rows.append({**arm.to_json(), "lr": runner.chosen_lr[arm.name],
                         "seconds_per_step": sum(per_step) / len(per_step) if per_step else None})
    first = pretrain[arms[0].name][seeds[0]]
    document_disjoint = cfg.data.eval_corpus is not None
    results = {
        "search": str(search), "config": cfg.source, "arms_reference": arms_reference(arms),
        "pretrain_steps": cfg.pretrain.max_steps, "heldout_blocks": first["heldout_blocks"],
        "heldout_document_disjoint": document_disjoint, "settings": settings.to_json(), "seeds": seeds,
        "arms": arm_rows, "lr_sweep": sweep,
        "pretrain": {a: {str(s): r for s, r in by.items()} for a, by in pretrain.items()},
        "glue": {t: {**r, "scores": {a: {str(s): v for s, v in by.items()} for a, by in r["scores"].items()}}
                 for t, r in glue.items()},
        "analysis": analyse(arm_rows, pretrain, glue, seeds),
        "caveat": caveat(len(seeds), cfg.pretrain.max_steps, document_disjoint),
    }
    curves = {arm.name: {s: loss_curve(runner.run_dir(arm.name, f"seed{s}")) for s in seeds} for arm in arms}
    results["plots"] = plot(results, curves, out)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out / "report.md", report_text(results))
    return results
