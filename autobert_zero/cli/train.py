"""The `abz pretrain` and `abz finetune` sub-commands (registered into the `abz` parser by `register`).

Each handler returns an exit code; errors are `AbzError`s, which `autobert_zero.cli` prints as one
paragraph. Several processes: start the same command under a launcher, e.g.

    OMP_NUM_THREADS=1 deepspeed --num_gpus 2 --no_local_rank --module autobert_zero.cli \\
        pretrain --config configs/tiny.yaml --out runs/tiny-2p
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _pretrain(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    config = load_config(args.config)  # config mistakes surface before the heavy imports
    from autobert_zero.train.pretrain import pretrain

    summary = pretrain(config, args.out, genotype_path=args.genotype, corpus=_corpus(args.corpus),
                       max_steps=args.max_steps, resume=args.resume, force=args.force)
    _report(f"pre-trained {summary['steps']} steps; final loss {summary['final_loss']:.4f}"
            + (f", held-out loss {summary['eval_loss']:.4f}" if summary["eval_loss"] is not None else "")
            + f"; model and tokenizer in {summary['final_dir']}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    config = load_config(args.config)
    from autobert_zero.train.finetune import finetune

    result = finetune(config, args.task, args.data_dir, args.init, args.out, force=args.force)
    _report(f"{result['task']} dev: {json.dumps(result['metrics'])} (written to {args.out}/eval.json)")
    return 0


def _report(line: str) -> None:
    if os.environ.get("RANK", "0") == "0":
        print(line, file=sys.stdout)


def _corpus(values: list[str] | None) -> str | list[str] | None:
    return values[0] if values and len(values) == 1 else values


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `pretrain` and `finetune` to the `abz` sub-command parser."""
    p = subparsers.add_parser(
        "pretrain", help="masked-LM pre-training of a genotype (DeepSpeed)",
        description="Pre-train a genotype with masked LM through DeepSpeed. Writes OUT/metrics.jsonl, engine "
                    "checkpoints in OUT/checkpoints, and the model + tokenizer as a Hugging Face folder OUT/final.")
    p.add_argument("--config", required=True, help="YAML config (e.g. configs/tiny.yaml)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--genotype", help="genotype file (overrides the config's `genotype`)")
    p.add_argument("--corpus", action="append", metavar="PATH|NAME",
                   help="text/JSON/TSV file or folder, or hub dataset name[:config]; repeat for several "
                        "(overrides data.corpus, where null means the embedded corpus)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after step N (≤ pretrain.max_steps); the LR schedule still spans "
                        "pretrain.max_steps, so --resume later continues the same curve")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("--force", action="store_true",
                   help="start a new run in a non-empty --out, replacing only what pretrain writes (checkpoints/, "
                        "final/, metrics.jsonl, config.json, summary.json, tensorboard/)")
    p.set_defaults(func=_pretrain)

    f = subparsers.add_parser(
        "finetune", help="fine-tune a pre-trained folder on a GLUE task",
        description="Fine-tune a Hugging Face folder (e.g. OUT/final of `abz pretrain`) on a GLUE task through "
                    "DeepSpeed and write the official dev metrics to OUT/eval.json.")
    f.add_argument("--config", required=True, help="YAML config (its finetune: and deepspeed: sections)")
    f.add_argument("--task", required=True,
                   help="CoLA, SST-2, MRPC, STS-B, QQP, MNLI (matched dev), QNLI, RTE or WNLI")
    f.add_argument("--data-dir", help="folder of GLUE TSV folders (CoLA/, SST-2/, ...); omit to load the "
                                      "hub dataset `glue` (needs a network)")
    f.add_argument("--init", required=True, help="pre-trained Hugging Face folder (model + tokenizer)")
    f.add_argument("--out", required=True, help="output folder (new or empty)")
    f.add_argument("--force", action="store_true",
                   help="write into a non-empty --out, replacing only metrics.jsonl, eval.json and tensorboard/")
    f.set_defaults(func=_finetune)

    from autobert_zero.cli.supernet import register as register_biws

    register_biws(subparsers)

    from autobert_zero.cli.audit import register as register_audit

    register_audit(subparsers)
