"""The `abz pretrain` and `abz finetune` sub-commands (registered into the `abz` parser by `register`).

Each handler returns an exit code; errors are `AbzError`s, which `autobert_zero.cli` prints as one
paragraph. Several processes: start the same command under a launcher, e.g.

    OMP_NUM_THREADS=1 deepspeed --num_gpus 2 --no_local_rank --module autobert_zero.cli \\
        pretrain --config configs/tiny.yaml --out runs/tiny-2p
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.options import (
    add_config,
    add_corpus,
    add_force,
    add_max_steps,
    add_out,
    add_resume,
    add_trust,
    corpus_argument,
    report,
    report_training,
)

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers


def _pretrain(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    config = load_config(args.config)  # config mistakes surface before the heavy imports
    from autobert_zero.train.pretrain import pretrain

    summary = pretrain(config, args.out, genotype=args.genotype, corpus=corpus_argument(args.corpus),
                       max_steps=args.max_steps, resume=args.resume, force=args.force)
    report_training(f"pre-trained {summary['steps']} steps", summary, "model and tokenizer")
    return ExitCode.OK


def _finetune(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    config = load_config(args.config)
    from autobert_zero.train.finetune import finetune

    result = finetune(config, args.task, args.data_dir, args.init, args.out, force=args.force,
                      trust_language_code=args.trust_language_code)
    report(f"{result['task']} dev: {json.dumps(result['metrics'])} (written to {args.out}/eval.json)")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    """Add `pretrain` and `finetune` to the `abz` sub-command parser."""
    p = subparsers.add_parser(
        "pretrain", help="masked-LM pre-training of a genotype (DeepSpeed)",
        description="Pre-train a genotype with masked LM through DeepSpeed. Writes OUT/metrics.jsonl, engine "
                    "checkpoints in OUT/checkpoints, and the model + tokenizer as a Hugging Face folder OUT/final.")
    add_config(p, "YAML config (e.g. configs/tiny.yaml)", required=True)
    add_out(p, "output folder")
    p.add_argument("--genotype", help="genotype file (overrides the config's `genotype`)")
    add_corpus(p, " (overrides data.corpus, where null means the embedded corpus)")
    add_max_steps(p, "stop after step N (≤ pretrain.max_steps); the LR schedule still spans pretrain.max_steps, "
                     "so --resume later continues the same curve")
    add_resume(p)
    add_force(p, "start a new run in a non-empty --out, replacing only what pretrain writes (checkpoints/, "
                 "final/, metrics.jsonl, config.json, summary.json, tensorboard/)")
    p.set_defaults(func=_pretrain)

    f = subparsers.add_parser(
        "finetune", help="fine-tune a pre-trained folder on a GLUE task",
        description="Fine-tune a Hugging Face folder (e.g. OUT/final of `abz pretrain`) on a GLUE task through "
                    "DeepSpeed and write the official dev metrics to OUT/eval.json.")
    add_config(f, "YAML config (its finetune: and deepspeed: sections)", required=True)
    f.add_argument("--task", required=True,
                   help="CoLA, SST-2, MRPC, STS-B, QQP, MNLI (matched dev), QNLI, RTE or WNLI")
    f.add_argument("--data-dir", help="folder of GLUE TSV folders (CoLA/, SST-2/, ...); omit to load the "
                                      "hub dataset `glue` (needs a network)")
    f.add_argument("--init", required=True, help="pre-trained Hugging Face folder (model + tokenizer)")
    add_out(f, "output folder (new or empty)")
    add_force(f, "write into a non-empty --out, replacing only metrics.jsonl, eval.json and tensorboard/")
    add_trust(f, "the --init folder's config.json")
    f.set_defaults(func=_finetune)
