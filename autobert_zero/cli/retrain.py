"""The `abz retrain` sub-command: a search's best genotypes against baselines, trained from scratch at equal
size (see `autobert_zero.train.retrain`).

    abz retrain runs/search --config configs/tiny.yaml --out runs/retrain [--top K] [--seeds N]
        [--baselines FILE ...] [--glue TASK ...] [--lrs LR ...] [--resume]

Several workers: start the same command again with `--resume` (in another shell or on another machine that
shares the folder); each run folder is claimed by a lock, so the workers split the runs between them. Under a
launcher (`deepspeed --num_gpus N --no_local_rank --module autobert_zero.cli retrain ...`, or torchrun) each
process becomes such a worker: it leaves the launcher's process group (every run trains in one process),
rank 0 starts the retrain and the others join it once its `retrain.json` is written.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.options import IntIn, add_config, add_out, add_top, report
from autobert_zero.errors import ConfigError

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers

MAX_SEEDS = 1000


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (expected a learning rate such as 1e-3)"
                                         ) from None
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (expected a learning rate in (0, 10))")
    return value


LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                      "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CROSS_RANK", "CROSS_SIZE")
"""What a launcher sets for a process group; a retrain worker drops them and trains each run alone."""
JOIN_TIMEOUT_S = 6 * 3600


def _as_worker() -> int:
    """Under a launcher: this process's rank, after leaving the launcher's group (each run then trains in one
    process, on a free port of its own); 0 without a launcher."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    rank = int(os.environ.get("RANK", "0"))
    for name in LAUNCHER_VARIABLES:
        os.environ.pop(name, None)
    return rank


def _wait_for_record(out: str) -> None:
    """A worker of rank > 0 waits until rank 0 has written the retrain's record (after its re-scoring)."""
    import time

    from autobert_zero.train.retrain import RECORD_FILE

    record = os.path.join(out, RECORD_FILE)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not os.path.isfile(record):
        if time.monotonic() > deadline:
            raise ConfigError(f"{record} did not appear within {JOIN_TIMEOUT_S} s: rank 0 of the launcher never "
                              f"started the retrain this worker was to join")
        time.sleep(2)


def _retrain(args: argparse.Namespace) -> int:
    from autobert_zero.config.load import load_config

    rank = _as_worker()
    cfg = load_config(args.config, world_size=1)
    from autobert_zero.config.paths import data_dir
    from autobert_zero.train.retrain import DEFAULT_BASELINES, DEFAULT_GLUE, RetrainSettings, retrain
    from autobert_zero.train.retrain.report import arm_table, contrast_table

    glue = DEFAULT_GLUE if args.glue is None else tuple(args.glue)
    glue_data = args.glue_data or cfg.evaluate.glue_data_dir or str(data_dir() / "glue")
    lrs = tuple(args.lrs) if args.lrs else tuple(cfg.pretrain.lr * f for f in (0.5, 1.0, 2.0))
    ft_lrs = tuple(args.finetune_lrs) if args.finetune_lrs else tuple(cfg.finetune.lr * f for f in (0.5, 1.0, 2.0))
    settings = RetrainSettings(
        seeds=args.seeds, lrs=lrs, sweep_steps=args.sweep_steps or max(1, cfg.pretrain.max_steps // 4),
        glue_tasks=glue, glue_data_dir=glue_data, finetune_seeds=args.finetune_seeds, finetune_lrs=ft_lrs,
        select_examples=args.select_examples)
    resume = args.resume
    if rank > 0:
        _wait_for_record(args.out)
        resume = True
    from autobert_zero.cli.search import search_language_of_config
    from autobert_zero.grammar import using_language

    with using_language(search_language_of_config(cfg, args.search)):
        results = retrain(args.search, cfg, args.out, settings, top=args.top,
                          baselines=args.baselines or DEFAULT_BASELINES, rescore=not args.no_rescore, resume=resume)
    if rank == 0:
        for line in [*arm_table(results), "", *contrast_table(results)]:
            report(line)
        report(f"written to {args.out}/results.json, {args.out}/report.md"
               + "".join(f", {args.out}/{name}" for name in results["plots"]))
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    """Add `retrain` to the `abz` sub-command parser."""
    p = subparsers.add_parser(
        "retrain", help="train a search's best genotypes and baselines from scratch at equal size",
        description="Re-score a search's best genotypes on held-out blocks it never used, size every arm to the "
                    "first baseline's parameters (±2%% by FFN width), sweep the pre-training lr per arm, pre-train "
                    "N seeds each, score the held-out MLM loss and GLUE dev (fine-tuning lr chosen on a slice of "
                    "train), and compare found vs baselines paired by seed (Holm-corrected). Writes OUT/results.json, "
                    "OUT/report.md, plots, and every run as an ordinary pretrain/finetune folder under OUT/runs.")
    p.add_argument("search", metavar="SEARCH_DIR", help="the --out folder of `abz search`")
    add_config(p, "YAML config of the retrain (sizes, pre-training budget, data; data.eval_corpus for "
                  "document-disjoint held-out text)", required=True)
    add_out(p, "output folder (new or empty; with --resume, the retrain to continue)")
    add_top(p, 1, "how many of the search's best genotypes to retrain (default 1)")
    p.add_argument("--seeds", type=IntIn("--seeds", 1, MAX_SEEDS), default=1,
                   help="pre-training seeds per arm (config seed, +1, ...; default 1)")
    p.add_argument("--baselines", nargs="+", metavar="FILE",
                   help="baseline genotype files; the first sets the parameter budget "
                        "(default genotypes/bert.abz genotypes/autobert_zero.abz)")
    p.add_argument("--glue", nargs="*", metavar="TASK",
                   help="GLUE tasks scored on dev (default SST-2 STS-B CoLA); --glue with no task: MLM only")
    p.add_argument("--glue-data", metavar="DIR",
                   help="folder of GLUE TSV folders (default evaluate.glue_data_dir, else the shared data's glue)")
    p.add_argument("--lrs", nargs="+", type=_positive_float, metavar="LR",
                   help="pre-training lrs swept per arm (default pretrain.lr × 0.5, 1, 2); one value: no sweep")
    p.add_argument("--sweep-steps", type=IntIn("--sweep-steps", 1, 10**9), metavar="N",
                   help="steps of each lr-sweep run (default a quarter of pretrain.max_steps)")
    p.add_argument("--finetune-seeds", type=IntIn("--finetune-seeds", 1, MAX_SEEDS), default=2,
                   help="fine-tuning seeds per pre-trained model and task (default 2)")
    p.add_argument("--finetune-lrs", nargs="+", type=_positive_float, metavar="LR",
                   help="fine-tuning lrs tried per task and arm (default finetune.lr × 0.5, 1, 2); one value: none")
    p.add_argument("--select-examples", type=IntIn("--select-examples", 1, 10**9), default=500,
                   help="training examples held out to choose the fine-tuning lr (default 500)")
    p.add_argument("--no-rescore", action="store_true",
                   help="take the search's own top K (no re-scoring on unused held-out blocks)")
    p.add_argument("--resume", action="store_true", help="continue the retrain in OUT (or join it as a worker)")
    p.set_defaults(func=_retrain)
