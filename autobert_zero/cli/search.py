"""`abz search`, `abz resume`, `abz report` and `abz export`: the search-facing sub-commands.

    abz search --config configs/tiny.yaml --out runs/search [--seed N]   # a new search (config `search:`)
    abz resume runs/search                                              # continue a stopped or killed one
    abz report runs/search                                              # report.md + plots/*.png
    abz export runs/search --top 3 --out runs/best                      # .abz files + Hugging Face folders

The search folder holds `config.yaml` (the resolved config the run uses, paths made absolute),
`state.json` and `history.jsonl` (see `autobert_zero.evolve.state`) and, when done, `summary.json`.
Several processes: start `abz search` under the `deepspeed` launcher; the candidates of each round are
split across the ranks and the results gathered in order, so the history is the one-process history (see
`autobert_zero.train.fitness`); supernet adaptation between rounds trains data-parallel; rank 0 writes the folder.
`abz export FILE --out DIR` with a genotype file is `abz compile`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.genotype import build_model, cmd_compile, save_into
from autobert_zero.cli.options import (
    SIZE_OVERRIDES,
    add_config,
    add_force,
    add_head,
    add_out,
    add_seed,
    add_size_arguments,
    add_supernet,
    add_top,
    add_vocab_size,
)
from autobert_zero.config.schema import SIZE_KEYS
from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.evolve import SCORED, Progress, Search, StateStore
from autobert_zero.evolve.state import HISTORY_FILE, STATE_FILE
from autobert_zero.grammar import Genotype, default_language, formula, load_genotype
from autobert_zero.io import atomic_write_text
from autobert_zero.run_dir import open_run_dir

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers
    from autobert_zero.config.schema import TrainConfig

CONFIG_FILE = "config.yaml"
OUTPUTS = (STATE_FILE, HISTORY_FILE, CONFIG_FILE, "summary.json", "report.md", "plots")


def register(sub: Subparsers) -> None:
    """Add `search`, `resume`, `report` and `export` to the `abz` sub-command parser."""
    search = sub.add_parser("search", help="OP-NAS: evolve backbone genotypes (config section `search:`)",
                            description="Run a search: aging evolution with operation priority (or the baselines "
                            "`evolution` and `random`). Writes OUT/history.jsonl (one line per candidate) and "
                            "OUT/state.json after every evaluation; `abz resume OUT` continues a stopped run.")
    add_config(search, "YAML config with a `search:` section", required=True)
    add_out(search, "search folder (must be new or empty)")
    add_seed(search, "search seed (default: the config's `seed`)", default=None)
    add_supernet(search, "trained supernet folder (`abz supernet --out`) for evaluate.estimator: biws "
                 "(overrides search.supernet)")
    add_force(search, "replace an earlier search in --out")
    search.set_defaults(func=cmd_search)

    resume = sub.add_parser("resume", help="continue a stopped or killed search exactly where it stopped")
    resume.add_argument("dir", metavar="DIR", help="search folder written by `abz search`")
    resume.set_defaults(func=cmd_resume)

    report = sub.add_parser("report", help="write DIR/report.md and plots of a search")
    report.add_argument("dir", metavar="DIR", help="search folder")
    add_top(report, 5, "how many best genotypes to show (default 5)")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="best genotypes of a search as .abz files and Hugging Face folders "
                            "(with a genotype FILE: the same as `abz compile`)")
    export.add_argument("file", metavar="DIR_OR_FILE", help="search folder (or a genotype file: abz compile)")
    add_out(export, "output folder", metavar="DIR")
    add_top(export, 3, "how many best genotypes (default 3)")
    export.add_argument("--no-hf", action="store_true", help="write only the .abz files")
    add_head(export, "model class of the Hugging Face folders (default: mlm)")
    add_vocab_size(export)
    add_seed(export)
    add_force(export, "write into a non-empty --out folder")
    add_size_arguments(export)
    export.set_defaults(func=cmd_export)


# ---------------------------------------------------------------------------------------------------
# search / resume


def _rank_world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    from autobert_zero.train.engine import init_distributed

    return init_distributed()


def _resolved_config(path: str, seed: int | None, supernet: str | None) -> tuple[TrainConfig, dict[str, Any]]:
    """The config with `--seed`/`--supernet` applied and every file path made absolute (the run folder's
    config.yaml)."""
    from autobert_zero.config.load import check_field, load_config
    from autobert_zero.config.paths import resolve_shipped
    from autobert_zero.config.schema import TrainConfig

    cfg = load_config(path)
    if seed is not None:
        check_field(TrainConfig, "seed", seed, "--seed", "command line")
        cfg.seed = seed
    if supernet is not None:
        if not Path(supernet).is_dir():
            raise ConfigError(f"--supernet {supernet} is not a folder; give the --out folder of `abz supernet`")
        cfg.search.supernet = supernet
    cfg.genotype = str(resolve_shipped(cfg.genotype).resolve())
    cfg.search.seed_genotypes = [str(resolve_shipped(p).resolve()) for p in cfg.search.seed_genotypes]
    if cfg.search.supernet is not None:
        cfg.search.supernet = str(Path(cfg.search.supernet).expanduser().resolve())
    data = dataclasses.asdict(cfg)
    data.pop("source", None)
    return cfg, data


def _load_run_config(folder: Path) -> TrainConfig:
    from autobert_zero.config.load import config_from_dict, parse_yaml

    path = folder / CONFIG_FILE
    if not path.is_file():
        raise SearchError(f"{folder} is not a search folder ({CONFIG_FILE} is missing); start one with "
                          f"`abz search --config FILE --out {folder}`")
    return config_from_dict(parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))


def _build_search(cfg: TrainConfig, folder: Path, rank: int, world: int,
                  on_progress: Any = None) -> Search:
    from autobert_zero.train.fitness import build_fitness

    language = default_language()
    host = load_genotype(cfg.genotype)
    num_layers = cfg.search.num_layers or host.num_layers
    seeds = [load_genotype(p) for p in cfg.search.seed_genotypes]
    fitness = build_fitness(cfg, world, show_progress=False)
    return Search(cfg.search, language, fitness, seed=cfg.seed, num_layers=num_layers, seeds=seeds,
                  store=StateStore(folder) if rank == 0 else None, on_progress=on_progress)


def cmd_search(args: argparse.Namespace) -> int:
    rank, world = _rank_world()
    cfg, data = _resolved_config(args.config, args.seed, args.supernet)
    out = Path(args.out)
    with open_run_dir(out, "abz search", force=args.force, outputs=OUTPUTS, primary=rank == 0):
        if rank == 0:
            atomic_write_text(out / CONFIG_FILE, "# the resolved config of this search (abz resume reads it)\n"
                              + yaml.safe_dump(data, sort_keys=False))
        return _run(cfg, out, rank, world, fresh=True)


def cmd_resume(args: argparse.Namespace) -> int:
    rank, world = _rank_world()
    folder = Path(args.dir)
    if not folder.is_dir():
        raise SearchError(f"{folder} is not a folder; give the --out folder of `abz search`")
    with open_run_dir(folder, "abz resume", resume=True, primary=rank == 0) as run:
        cfg = _load_run_config(folder)  # refuses a folder that holds no search
        if run.finished() is not None:
            print(f"{folder}: the search is already finished; `abz report {folder}` summarises it")
            return ExitCode.OK
        return _run(cfg, folder, rank, world, fresh=not StateStore(folder).exists())


def _run(cfg: TrainConfig, folder: Path, rank: int, world: int, fresh: bool) -> int:
    bar = _ProgressBar(cfg.search.evaluations, rank == 0 and cfg.logging.progress_bar)
    search = _build_search(cfg, folder, rank, world, bar.update)
    if not fresh:
        body, history = StateStore(folder).load(repair=rank == 0)
        search.restore(body, history)
        bar.start(len(history))
    try:
        history = search.run()
    finally:
        bar.close()
    rescored = _rescore(cfg, search, history)  # every rank: the evaluator is collective under a launcher
    if rank == 0:
        summary = _summary(search, history, rescored)
        from autobert_zero.run_dir import RunDir

        RunDir(folder, "abz search").mark_finished(summary)
        print(summary["text"])
    return ExitCode.OK


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [line for line in history if line["status"] in SCORED and line["fitness"] is not None]
    return max(scored, key=lambda line: line["fitness"]) if scored else None


def _rescore(cfg: TrainConfig, search: Search, history: list[dict[str, Any]]) -> dict[str, float | None]:
    """With `adapt_steps > 0` the supernet kept training, so fitness values of different rounds are on different
    scales: the best candidate and the seed genotypes are scored again, on the final weights, for the summary."""
    best = _best(history)
    if cfg.search.adapt_steps <= 0 or best is None:
        return {}
    lines = [best, *(line for line in history if line["mutation"] == "seed")]
    genotypes = list({g.id: g for g in (search.genotype(line["genotype"]) for line in lines)}.values())
    results = search.fitness.evaluate(genotypes)
    return {g.id: r.score for g, r in zip(genotypes, results, strict=True)}


def _summary(search: Search, history: list[dict[str, Any]], rescored: dict[str, float | None] | None = None
             ) -> dict[str, Any]:
    best = _best(history)
    rescored = rescored or {}

    def final(line: dict[str, Any]) -> str:
        score = rescored.get(search.genotype(line["genotype"]).id)
        return f"; on the final supernet {score:.4f}" if score is not None else ""
    progress = search.progress()
    lines = [f"search finished: {len(history)} candidates, {progress.fitness_calls} fitness evaluations, "
             f"{progress.duplicates} duplicates, {sum(progress.rejections.values())} invalid children resampled"]
    if best is not None:
        lines.append(f"best fitness {best['fitness']:.4f} (candidate #{best['index']}, id {best['id'][:12]})"
                     f"{final(best)}")
        genotype = search.genotype(best["genotype"])
        for graph in genotype.graphs:
            lines.append(f"  {graph.name}: {formula(graph)}")
    for line in history:
        if line["mutation"] == "seed":
            value = f"{line['fitness']:.4f}" if line["fitness"] is not None else line["status"]
            lines.append(f"seed {Path(line['detail']).name}: fitness {value}{final(line)}")
    return {"candidates": len(history), "fitness_calls": progress.fitness_calls,
            "duplicates": progress.duplicates, "rejections": progress.rejections,
            "best": {k: best[k] for k in ("index", "id", "fitness", "genotype")} if best else None,
            "final_supernet_scores": rescored,
            "text": "\n".join(lines)}


class _ProgressBar:
    """tqdm bar with the current best, evaluations per minute and the cache-hit rate."""

    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show = total, show
        self.bar: Any = None
        self.started, self.first = time.monotonic(), 0

    def start(self, done: int) -> None:
        self.first = done
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def update(self, progress: Progress) -> None:
        if not self.show:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.first, desc="search", dynamic_ncols=True, file=sys.stderr)
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        rate = (progress.evaluations - self.first) / minutes
        best = f"{progress.best:.4f}" if progress.best is not None else "-"
        hits = progress.duplicates / max(progress.evaluations, 1)
        self.bar.n = progress.evaluations
        self.bar.set_postfix_str(f"best {best}, {rate:.0f} evals/min, cache hits {hits:.0%}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------------
# report / export


def cmd_report(args: argparse.Namespace) -> int:
    from autobert_zero.evolve.report import write_report

    folder = Path(args.dir)
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    path = write_report(folder, top=args.top)
    print(f"wrote {path} and plots in {folder / 'plots'}")
    return ExitCode.OK


def cmd_export(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not (source / STATE_FILE).exists() and not (source / HISTORY_FILE).exists():
        if source.is_dir():
            raise SearchError(f"{source} holds no search ({STATE_FILE} is missing) and is not a genotype file")
        return cmd_compile(args)
    from autobert_zero.evolve.export import best_candidates, write_genotypes

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    best = best_candidates(StateStore(source).history(), args.top)
    if not best:
        raise SearchError(f"{source}: no candidate has a fitness yet; nothing to export")
    out = Path(args.out)
    with open_run_dir(out, "abz export", force=args.force, outputs=[f"rank{i + 1}" for i in range(args.top)]):
        written = write_genotypes(best, out)
        if not args.no_hf:
            cfg = _load_run_config(source)
            for folder, line in zip(written, best, strict=True):
                _export_hf(line["genotype"], folder / "hf", cfg, args)
    for folder, line in zip(written, best, strict=True):
        print(f"{folder}: fitness {line['fitness']:.4f}, id {line['id'][:12]}")
    return ExitCode.OK


def _export_hf(text: str, folder: Path, cfg: TrainConfig, args: argparse.Namespace) -> None:
    """A randomly initialised Hugging Face folder of the genotype at the search config's sizes."""
    from autobert_zero.grammar import parse_genotype

    genotype: Genotype = parse_genotype(text)
    sizes = {k: getattr(cfg.model, k) for k in SIZE_KEYS}
    sizes.update({k: getattr(args, k) for k in SIZE_OVERRIDES if getattr(args, k, None) is not None})
    folder.mkdir(parents=True, exist_ok=True)
    save_into(build_model(genotype, sizes, args.vocab_size, args.head, args.seed), folder)
