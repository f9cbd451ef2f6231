"""The `abz supernet` and `abz evaluate` sub-commands (registered into the `abz` parser by `register`).

    abz supernet --config configs/tiny.yaml --out runs/supernet [--max-steps N] [--resume]
    abz evaluate --supernet runs/supernet genotypes/bert.abz genotypes/autobert_zero.abz [--json]
    abz evaluate --config configs/tiny.yaml --estimator scratch --steps 50 genotypes/*.abz

Both run under the `deepspeed` launcher like `abz pretrain` (every rank evaluates every candidate).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from autobert_zero.cli.train import _corpus, _report

if TYPE_CHECKING:
    from autobert_zero.train.evaluate import CandidateResult


def _supernet(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    config = load_config(args.config)  # config mistakes surface before the heavy imports
    from autobert_zero.train.supernet import train_supernet

    summary = train_supernet(config, args.out, corpus=_corpus(args.corpus), max_steps=args.max_steps,
                             resume=args.resume, force=args.force)
    _report(f"trained the supernet {summary['steps']} steps ({summary['strategy']} candidates); final loss "
            f"{summary['final_loss']:.4f}"
            + (f", held-out loss {summary['eval_loss']:.4f}" if summary["eval_loss"] is not None else "")
            + f"; supernet and tokenizer in {summary['final_dir']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from autobert_zero.errors import ConfigError

    if args.config is None and args.supernet is None:
        raise ConfigError("abz evaluate needs --config FILE, or --supernet DIR (whose config.json is then used)")
    if not args.genotypes:
        raise ConfigError("no candidates to evaluate: give one or more genotype files (.abz), folders of them, or "
                          ".txt files listing them")
    with _stdout_to_stderr(args.json):  # libraries' log lines must not mix into the JSON
        results, heading = _evaluate_genotypes(args)
    from autobert_zero.train.evaluate import results_table

    _report(json.dumps([r.to_dict() for r in results], indent=1) if args.json
            else f"{heading}\n{results_table(results)}")
    return 0


def _evaluate_genotypes(args: argparse.Namespace) -> tuple[list[CandidateResult], str]:
    """The results, and a line saying how they were scored."""
    import dataclasses

    from autobert_zero.config.load import load_config
    from autobert_zero.errors import ConfigError
    from autobert_zero.train.evaluate import Evaluator
    from autobert_zero.train.supernet import read_population, saved_config

    cfg = load_config(args.config) if args.config is not None else saved_config(args.supernet)
    genotypes = read_population(args.genotypes, "abz evaluate")
    if not genotypes:
        raise ConfigError(f"no candidates to evaluate: {' '.join(args.genotypes)} list no genotype")
    estimator = args.estimator or ("biws" if args.supernet is not None else cfg.evaluate.estimator)
    steps = cfg.evaluate.steps if args.steps is None else args.steps
    cfg.evaluate = dataclasses.replace(cfg.evaluate, estimator=estimator, steps=steps)
    evaluator = Evaluator(cfg, args.supernet, show_progress=cfg.logging.progress_bar)
    held_out = evaluator.prepared.data.eval_blocks
    heading = (f"estimator {estimator}, {steps} training steps per candidate; scored on {len(held_out)} held-out "
               f"blocks of {held_out.shape[1]} tokens (score: higher is better)")
    return evaluator.evaluate(genotypes), heading


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """While active, whatever is written to file descriptor 1 goes to stderr instead."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `supernet` and `evaluate` to the `abz` sub-command parser."""
    s = subparsers.add_parser(
        "supernet", help="train the BIWS weight-sharing supernet (DeepSpeed)",
        description="Train the bi-branch weight-sharing supernet with masked LM through DeepSpeed, one candidate "
                    "per step (supernet.strategy: uniform samples, or a population of genotypes). Same loop, "
                    "checkpoints and outputs as `abz pretrain`; OUT/final holds the supernet and tokenizer.")
    s.add_argument("--config", required=True, help="YAML config (genotype fixes the layer count; model: sizes)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--corpus", action="append", metavar="PATH|NAME",
                   help="text/JSON/TSV file or folder, or hub dataset name[:config]; repeat for several")
    s.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after step N (≤ pretrain.max_steps); --resume later continues the same curve")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    s.add_argument("--force", action="store_true",
                   help="write into a non-empty OUT, replacing only this command's outputs")
    s.set_defaults(func=_supernet)

    e = subparsers.add_parser(
        "evaluate", help="score candidate genotypes (BIWS supernet or short scratch training)",
        description="Score genotypes on the same fixed held-out MLM batches: inherited from a supernet (biws) "
                    "or trained from scratch (scratch), then --steps MLM steps. Prints id, status, score "
                    "(higher is better), held-out loss, parameters, MFLOPs per token, seconds and reason.")
    e.add_argument("genotypes", nargs="*", metavar="GENOTYPE",
                   help=".abz file, folder of .abz files, or .txt file listing .abz paths")
    e.add_argument("--supernet", metavar="DIR", help="--out folder of `abz supernet` (implies --estimator biws)")
    e.add_argument("--config", help="YAML config (default: DIR/config.json of --supernet)")
    e.add_argument("--estimator", choices=("scratch", "biws"), help="overrides evaluate.estimator")
    e.add_argument("--steps", type=int, metavar="K", help="training steps per candidate (overrides evaluate.steps)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.set_defaults(func=_evaluate)
