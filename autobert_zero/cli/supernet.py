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
from typing import TYPE_CHECKING, Any

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.options import (
    SchemaInt,
    add_config,
    add_corpus,
    add_force,
    add_json,
    add_max_steps,
    add_out,
    add_resume,
    add_supernet,
    add_trust,
    corpus_argument,
    report,
    report_training,
)

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers
    from autobert_zero.train.evaluate import CandidateResult


def _supernet(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    config = load_config(args.config)  # config mistakes surface before the heavy imports
    from autobert_zero.train.supernet import train_supernet

    summary = train_supernet(config, args.out, corpus=corpus_argument(args.corpus), max_steps=args.max_steps,
                             resume=args.resume, force=args.force)
    report_training(f"trained the supernet {summary['steps']} steps ({summary['strategy']} candidates)", summary,
                    "supernet and tokenizer")
    return ExitCode.OK


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

    report(json.dumps([r.to_dict() for r in results], indent=1) if args.json
           else f"{heading}\n{results_table(results)}")
    return ExitCode.OK


def _evaluate_genotypes(args: argparse.Namespace) -> tuple[list[CandidateResult], str]:
    """The results, and a line saying how they were scored, in the language of --config, else the one
    --supernet's final/config.json records."""
    from autobert_zero.config.language import language_from_config
    from autobert_zero.config.load import load_config
    from autobert_zero.grammar import using_language
    from autobert_zero.grammar.loading import trust_language_code
    from autobert_zero.train.supernet import saved_config, supernet_language

    cfg = load_config(args.config) if args.config is not None else saved_config(args.supernet)
    with trust_language_code(args.trust_language_code):  # the language of --supernet's records, if no --config
        language = language_from_config(cfg) if args.config is not None else supernet_language(args.supernet)
        with using_language(language):
            return _score(args, cfg)


def _score(args: argparse.Namespace, cfg: Any) -> tuple[list[CandidateResult], str]:
    import dataclasses

    from autobert_zero.errors import ConfigError
    from autobert_zero.train.evaluate import Evaluator
    from autobert_zero.train.supernet import read_population

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


def register(subparsers: Subparsers) -> None:
    """Add `supernet` and `evaluate` to the `abz` sub-command parser."""
    s = subparsers.add_parser(
        "supernet", help="train the BIWS weight-sharing supernet (DeepSpeed)",
        description="Train the bi-branch weight-sharing supernet with masked LM through DeepSpeed, one candidate "
                    "per step (supernet.strategy: population, the default, draws from supernet.population — left "
                    "empty, from the config's genotype and the shipped genotypes of its depth; fair weights that "
                    "list by layer-choice exposure; uniform samples any layer choice). Same loop, checkpoints and "
                    "outputs as `abz pretrain`; OUT/final holds the supernet and tokenizer.")
    add_config(s, "YAML config (genotype fixes the layer count; model: sizes)", required=True)
    add_out(s, "output folder")
    add_corpus(s)
    add_max_steps(s, "stop after step N (≤ pretrain.max_steps); --resume later continues the same curve")
    add_resume(s)
    add_force(s, "write into a non-empty OUT, replacing only this command's outputs")
    s.set_defaults(func=_supernet)

    e = subparsers.add_parser(
        "evaluate", help="score candidate genotypes (BIWS supernet or short scratch training)",
        description="Score genotypes on the same fixed held-out MLM batches: inherited from a supernet (biws) "
                    "or trained from scratch (scratch), then --steps MLM steps. Prints id, status, score "
                    "(higher is better), held-out loss, parameters, MFLOPs per token, seconds and reason.")
    e.add_argument("genotypes", nargs="*", metavar="GENOTYPE",
                   help=".abz file, folder of .abz files, or .txt file listing .abz paths")
    add_supernet(e, "--out folder of `abz supernet` (implies --estimator biws)")
    add_config(e, "YAML config (default: DIR/config.json of --supernet)")
    e.add_argument("--estimator", choices=("scratch", "biws"), help="overrides evaluate.estimator")
    e.add_argument("--steps", type=SchemaInt("--steps", "EvaluateConfig", "steps"), metavar="K",
                   help="training steps per candidate (overrides evaluate.steps)")
    add_json(e, "print the results as JSON")
    add_trust(e, "the --supernet folder (without --config)")
    e.set_defaults(func=_evaluate)
