"""A short end-to-end run: the vanilla and the Figure-7 genotypes, pre-trained and fine-tuned alike.

Both genotypes are pre-trained at the config's size (default: tiny) on the NLTK + WikiText-2 text of
shared/data for the same number of steps (same tokenizer, data order and masks), then each is fine-tuned
on RTE, MRPC, CoLA, STS-B and SST-2 (training splits subsampled, evaluated on the full dev splits).
Prints a table of MLM loss and GLUE dev metrics, writes benchmarks/results/short_run.json and a PNG plot
of both loss curves. At this scale GLUE scores sit near chance: the run shows the pipeline end to end.

    python -m benchmarks.bench_short_run [--config configs/tiny.yaml] [--steps 1000] [--finetune-steps 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path
from typing import Any

from autobert_zero.config.load import load_config
from autobert_zero.config.paths import data_dir
from autobert_zero.plotting import pyplot, save_figure
from autobert_zero.train.finetune import finetune
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import read_metrics
from benchmarks.report import RESULTS, print_table, write_json

GENOTYPES = {"vanilla BERT": "genotypes/bert.abz", "Figure 7": "genotypes/autobert_zero.abz"}
TASKS = ["RTE", "MRPC", "CoLA", "STS-B", "SST-2"]
COLUMNS = [("RTE", "accuracy", "RTE acc"), ("MRPC", "f1", "MRPC F1"), ("MRPC", "accuracy", "MRPC acc"),
           ("CoLA", "matthews_corrcoef", "CoLA MCC"), ("STS-B", "pearson", "STS-B P"),
           ("STS-B", "spearman", "STS-B S"), ("SST-2", "accuracy", "SST-2 acc")]


def plot(curves: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for name, records in curves.items():
        ax.plot([r["step"] for r in records], [r["loss"] for r in records], label=name)
    ax.set(xlabel="optimizer step", ylabel="MLM training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--steps", type=int, default=1000, help="pre-training steps (the schedule length)")
    parser.add_argument("--finetune-steps", type=int, default=100, help="fine-tuning steps per task")
    parser.add_argument("--train-examples", type=int, default=1000, help="training subsample per task")
    parser.add_argument("--out", default="runs/bench_short_run", help="run folders (replaced)")
    args = parser.parse_args()

    shared = data_dir()
    if not (shared / "glue").is_dir():
        raise SystemExit(f"real data folder {shared} is absent: set ABZ_DATA_DIR to shared/data")
    corpus = [str(shared / "nltk"), str(shared / "wikitext-2-raw")]
    cfg = load_config(args.config)
    cfg.pretrain = dataclasses.replace(cfg.pretrain, max_steps=args.steps, checkpoint_every=args.steps,
                                       warmup_steps=min(cfg.pretrain.warmup_steps, args.steps // 10))
    cfg.finetune = dataclasses.replace(cfg.finetune, max_steps=args.finetune_steps,
                                       max_train_examples=args.train_examples)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)

    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, genotype in GENOTYPES.items():
        run = out / Path(genotype).stem
        summary = pretrain(cfg, run / "pretrain", genotype=genotype, corpus=corpus)
        curves[name] = read_metrics(run / "pretrain")
        glue = {task: finetune(cfg, task, shared / "glue", run / "pretrain" / "final", run / task)["metrics"]
                for task in TASKS}
        results[name] = {"pretrain": summary, "glue": glue}

    header = ["genotype", "params", "MLM loss", "held-out MLM", *(c[2] for c in COLUMNS)]
    rows = [[name, r["pretrain"]["num_parameters"], r["pretrain"]["final_loss"], r["pretrain"]["eval_loss"],
             *(r["glue"][task][metric] for task, metric, _ in COLUMNS)] for name, r in results.items()]
    title = (f"Short run, {args.config}: {args.steps} pre-training steps on NLTK + WikiText-2, "
             f"{args.finetune_steps} fine-tuning steps on ≤{args.train_examples} examples, GLUE dev")
    print_table(title, header, rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(curves, RESULTS / "short_run_loss.png", f"MLM loss, {args.config}, {args.steps} steps")
    write_json("short_run", {"config": args.config, "steps": args.steps, "finetune_steps": args.finetune_steps,
                             "train_examples": args.train_examples, "corpus": corpus, "results": results,
                             "loss_curves": {k: [(r["step"], r["loss"]) for r in v] for k, v in curves.items()}})


if __name__ == "__main__":
    main()
