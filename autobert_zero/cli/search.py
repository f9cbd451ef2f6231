"""`abz search`, `abz resume`, `abz report` and `abz export`: the search-facing sub-commands.

    abz search --config configs/tiny.yaml --out runs/search [--seed N]   # a new search (config `search:`)
    abz resume runs/search                                              # continue a stopped or killed one
    abz report runs/search                                              # report.md + plots/*.png
    abz export runs/search --top 3 --out runs/best                      # .abz files, model cards, HF folders

The search folder holds `config.yaml` (the resolved config the run uses, paths made absolute),
`state.json` and `history.jsonl` (see `autobert_zero.evolve.state`) and, when done, `summary.json`.
`abz search` checks everything (seed files, fitness, supernet) before it writes anything, then writes
config.yaml and a first state before the first history line. The state records the run identity: the
whole resolved config, the supernet by its weights (not its path) and the seed genotypes' texts; `abz resume`
refuses a folder whose config.yaml or supernet changed since (naming the changed keys), and needs no seed
file. `abz report` and `abz export` read the history only as the state's digest covers it.
Several processes: start `abz search` under the `deepspeed` launcher; the candidates of each round are
split across the ranks and the results gathered in order, so the history is the one-process history (see
`autobert_zero.train.fitness`); supernet adaptation between rounds trains data-parallel; rank 0 writes the folder.
`search.round_size` must then be a multiple of the process count (refused otherwise, by `search` and `resume`:
ranks would idle every round), and `search.candidate_timeout_s` fails a straggling candidate instead of
keeping every rank waiting for it. `search.fitness: halving` runs in one process only (refused under a launcher).
`abz export` writes `rankN/genotype.abz`, a model card `rankN/README.md` and a Hugging Face folder `rankN/hf`
per genotype (and an index `README.md`): the supernet-inherited weights of a search scored through a supernet,
random ones only with `--untrained` (see `autobert_zero.cli.export_weights`).
`abz export FILE --out DIR` with a genotype file is `abz compile`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.genotype import cmd_compile
from autobert_zero.cli.options import (
    DEFAULT_VOCAB_SIZE,
    add_config,
    add_force,
    add_head,
    add_language,
    add_out,
    add_seed,
    add_size_arguments,
    add_supernet,
    add_top,
    add_trust,
    add_vocab_size,
)
from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.evolve import HistoryLine, Progress, Search, StateStore, best_line
from autobert_zero.evolve.state import HISTORY_FILE, STATE_FILE, load_verified_history, supernet_identity
from autobert_zero.grammar import Genotype, Language, formula, load_genotype, parse_genotype, using_language
from autobert_zero.grammar.loading import language_from_record, trust_language_code
from autobert_zero.io import atomic_write_text
from autobert_zero.json_files import read_json
from autobert_zero.run_dir import check_out_dir, open_run_dir

if TYPE_CHECKING:
    from autobert_zero.cli.export_weights import WeightsSource
    from autobert_zero.cli.options import Subparsers
    from autobert_zero.config.schema import Config
    from autobert_zero.evolve.export import ScoreSource, WeightsInfo

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
    add_trust(resume, "the search folder's config.yaml names")
    resume.set_defaults(func=cmd_resume)

    report = sub.add_parser("report", help="write DIR/report.md and plots of a search")
    report.add_argument("dir", metavar="DIR", help="search folder")
    add_top(report, 5, "how many best genotypes to show (default 5)")
    add_trust(report, "the search folder's state.json")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="best genotypes of a search as .abz files, model cards and Hugging Face "
                            "folders (with a genotype FILE: the same as `abz compile`)",
                            description="Write OUT/rankN/genotype.abz, a model card OUT/rankN/README.md and a Hugging "
                            "Face folder OUT/rankN/hf for the best genotypes of a search. A search scored through a "
                            "supernet (estimator biws) exports the supernet-inherited weights (with its tokenizer); "
                            "any other search needs --untrained (random weights) or --no-hf. From a retrain folder "
                            "(`abz retrain --out`): the trained models of its best arms by held-out MLM loss.")
    export.add_argument("file", metavar="DIR_OR_FILE",
                        help="search or retrain folder (or a genotype file: abz compile)")
    add_out(export, "output folder", metavar="DIR")
    add_top(export, 3, "how many best genotypes (default 3)")
    export.add_argument("--no-hf", action="store_true", help="write only the .abz files and model cards")
    export.add_argument("--all-seeds", action="store_true",
                        help="from a retrain folder: every pre-training seed's model (hf-seedS/), not only the best")
    export.add_argument("--untrained", action="store_true",
                        help="randomly initialised Hugging Face folders (seed --seed, sizes of the search config and "
                        "the size flags) instead of the search's weights")
    add_head(export, "model class of the Hugging Face folders (default: mlm)")
    add_vocab_size(export)
    export.set_defaults(vocab_size=None)  # None: not given (supernet weights bring their vocabulary)
    add_seed(export, "seed of the random initialisation (--untrained, or a genotype FILE)")
    add_force(export, "write into a non-empty --out folder")
    add_size_arguments(export)
    add_language(export)
    add_trust(export, "the search folder's state.json")
    export.set_defaults(func=cmd_export)


# ---------------------------------------------------------------------------------------------------
# search / resume


def _rank_world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    from autobert_zero.train.engine import init_distributed

    return init_distributed()


def _resolved_config(path: str, seed: int | None, supernet: str | None) -> tuple[Config, dict[str, Any]]:
    """The config with `--seed`/`--supernet` applied and every file path made absolute (the run folder's
    config.yaml)."""
    from autobert_zero.config.load import check_field, load_config
    from autobert_zero.config.paths import resolve_shipped
    from autobert_zero.config.schema import Config

    cfg = load_config(path)
    if seed is not None:
        check_field(Config, "seed", seed, "--seed", "command line")
        cfg.seed = seed
    if supernet is not None:
        if not Path(supernet).is_dir():
            raise ConfigError(f"--supernet {supernet} is not a folder; give the --out folder of `abz supernet`")
        cfg.search.supernet = supernet
    cfg.genotype = str(resolve_shipped(cfg.genotype).resolve())
    cfg.search.seed_genotypes = [str(resolve_shipped(p).resolve()) for p in cfg.search.seed_genotypes]
    if cfg.search.supernet is not None:
        cfg.search.supernet = str(Path(cfg.search.supernet).expanduser().resolve())
    return cfg, _config_data(cfg)


def _config_data(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain JSON data (what config.yaml holds)."""
    data = dataclasses.asdict(cfg)
    data.pop("source", None)
    return json.loads(json.dumps(data))


def _load_run_config(folder: Path) -> Config:
    from autobert_zero.config.load import config_from_dict, parse_yaml

    path = folder / CONFIG_FILE
    if not path.is_file():
        raise SearchError(f"{folder} is not a search folder ({CONFIG_FILE} is missing); start one with "
                          f"`abz search --config FILE --out {folder}`")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SearchError(f"{path} is not UTF-8 text; restore the config.yaml the search wrote") from None
    return config_from_dict(parse_yaml(text, str(path)), str(path))


def _run_identity(cfg: Config, seeds: Sequence[Genotype], data: dict[str, Any], language: Language
                  ) -> dict[str, Any]:
    """What a resume must find unchanged (`evolve.state.check_run`): every key of the resolved config but the
    supernet's path, the supernet by its weights (when the fitness loads one), the seed genotypes' texts
    (which a resume takes from the state, not from their files), the hashes of the data and vocabulary the
    fitness reads (`data`, from `Fitness.data_identity`) and the language's record (compared by its grammar
    and op sha256s; `abz report`/`export` rebuild the language from it)."""
    config = _config_data(cfg)
    config["search"].pop("supernet", None)  # identified by its weights below, wherever it lies
    config["model"].pop("gradient_checkpointing", None)  # memory only: the same results (searches of before resume)
    supernet = None
    if cfg.search.fitness in ("evaluate", "halving") and cfg.search.supernet is not None:
        supernet = supernet_identity(cfg.search.supernet)
    return {"config": config, "supernet": supernet,
            "seeds": [[g.source_name, g.canonical().to_text()] for g in seeds], "data": data,
            "language": language.record}


def _as_recorded(current: dict[str, Any], saved: Mapping[str, Any] | None) -> dict[str, Any]:
    """The current run identity without the config keys a later abz added that the saved identity lacks and that
    are at their defaults now (a search started before the key existed ran as its default says): only a key
    the saved run had, or one set away from its default, can be a change."""
    if not saved:
        return current
    from autobert_zero.config.schema import Config
    from autobert_zero.evolve.state import flatten

    before = flatten(saved.get("config") or {})
    defaults = flatten(_config_data(Config()))
    config = json.loads(json.dumps(current["config"]))
    for key, value in flatten(current["config"]).items():
        if key not in before and key in defaults and defaults[key] == value:
            *parents, leaf = key.split(".")
            section = config
            for part in parents:
                section = section[part]
            section.pop(leaf)
    return {**current, "config": config}


def _build_search(cfg: Config, world: int, seeds: Sequence[Genotype], num_layers: int,
                  store: StateStore | None, on_progress: Any = None) -> Search:
    from autobert_zero.config.language import language_from_config
    from autobert_zero.train.fitness import build_fitness

    fitness = build_fitness(cfg, world, show_progress=False)
    return Search(cfg.search, language_from_config(cfg), fitness, seed=cfg.seed, num_layers=num_layers, seeds=seeds,
                  store=store, on_progress=on_progress)


def cmd_search(args: argparse.Namespace) -> int:
    rank, world = _rank_world()
    cfg, data = _resolved_config(args.config, args.seed, args.supernet)
    out = Path(args.out)
    with open_run_dir(out, "abz search", force=args.force, outputs=OUTPUTS, primary=rank == 0):
        return _start(cfg, out, rank, world, config_text="# the resolved config of this search (abz resume reads "
                      "it)\n" + yaml.safe_dump(data, sort_keys=False))


def _start(cfg: Config, out: Path, rank: int, world: int, config_text: str | None) -> int:
    """A new search in `out`: every check (seed files, fitness, supernet) before anything is written, then
    config.yaml (unless it is there already) and the first state, before the first history line."""
    from autobert_zero.config.language import language_from_config

    language = language_from_config(cfg)
    seeds = [load_genotype(p, language=language) for p in cfg.search.seed_genotypes]
    num_layers = cfg.search.num_layers or load_genotype(cfg.genotype, language=language).num_layers
    as_read = cfg
    if config_text is not None:  # the identity of the config as a resume reads it back from config.yaml
        from autobert_zero.config.load import config_from_dict, parse_yaml

        as_read = config_from_dict(parse_yaml(config_text, CONFIG_FILE), CONFIG_FILE)
    bar = _ProgressBar(cfg.search.evaluations, rank == 0 and cfg.logging.progress_bar)
    search = _build_search(cfg, world, seeds, num_layers, None, bar.update)
    store = (StateStore(out, _run_identity(as_read, seeds, search.fitness.data_identity(), language))
             if rank == 0 else None)
    search.store = store
    if store is not None:
        if config_text is not None:
            atomic_write_text(out / CONFIG_FILE, config_text)
        store.save(search.state(), [])
    return _run(cfg, out, rank, search, bar)


def cmd_resume(args: argparse.Namespace) -> int:
    rank, world = _rank_world()
    folder = Path(args.dir)
    if not folder.is_dir():
        raise SearchError(f"{folder} is not a folder; give the --out folder of `abz search`")
    with open_run_dir(folder, "abz resume", resume=True, primary=rank == 0) as run:
        cfg = _load_run_config(folder)  # refuses a folder that holds no search
        from autobert_zero.config.language import language_from_config

        with trust_language_code(args.trust_language_code):  # config.yaml names the language's files
            language = language_from_config(cfg, folder=folder)
        with using_language(language):
            return _resume(cfg, folder, run, rank, world, language)


def _resume(cfg: Config, folder: Path, run: Any, rank: int, world: int, language: Language) -> int:
    """`abz resume` once the folder is held and its language built (the language compared with the state's)."""
    if run.finished() is not None:
        print(f"{folder}: the search is already finished; `abz report {folder}` summarises it")
        return ExitCode.OK
    store = StateStore(folder)
    if not store.exists():  # stopped before its first state: nothing ran yet, so it starts afresh
        store.refuse_orphan_history()
        return _start(cfg, folder, rank, world, config_text=None)
    bar = _ProgressBar(cfg.search.evaluations, rank == 0 and cfg.logging.progress_bar)
    # every file is checked, and the run identity compared, before anything is changed or built
    body, history = store.load(repair=False)
    store.require_resumable()  # before the identity is computed: an old state is named as such
    recorded = store.run or {}
    from autobert_zero.grammar.loading import language_changes

    changed = language_changes(recorded.get("language"), language.record)
    if changed:  # before the seeds are parsed in it
        raise SearchError(f"the language changed since the search started: {', '.join(changed)} (the files "
                          f"{folder / CONFIG_FILE} names under language:); undo the edit or start a new search")
    seeds = [parse_genotype(text, source) for source, text in recorded.get("seeds", [])]
    # the config and supernet first (cheap), then the data and vocabulary the built fitness reads
    store.check_run(_as_recorded(_run_identity(cfg, seeds, recorded.get("data", {}), language), store.run))
    search = _build_search(cfg, world, seeds, int(body["num_layers"]), store if rank == 0 else None, bar.update)
    store.check_run(_as_recorded(_run_identity(cfg, seeds, search.fitness.data_identity(), language), store.run))
    search.restore(body, history)
    if rank == 0:
        store.repair()  # the kill's leftover lines past the state, now that all of it passed
    bar.start(len(history))
    return _run(cfg, folder, rank, search, bar)


def _run(cfg: Config, folder: Path, rank: int, search: Search, bar: _ProgressBar) -> int:
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
    """The best scored line (`evolve.best_line`), as its JSON object."""
    best = best_line(HistoryLine.from_json(line) for line in history)
    return best.to_json() if best is not None else None


def _rescore(cfg: Config, search: Search, history: list[dict[str, Any]]) -> dict[str, float | None]:
    """With `adapt_steps > 0` the supernet kept training, so fitness values of different rounds are on different
    scales: the best candidate and the seed genotypes are scored again, on the final weights, for the summary.
    A fitness without a supernet (`supernet_reference` None: synthetic, scratch) has no final weights."""
    best = _best(history)
    if cfg.search.adapt_steps <= 0 or best is None or search.fitness.supernet_reference is None:
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
            lines.append(f"  {graph.name}: {formula(graph, search.space)}")
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
    with using_language(search_language(folder, args.trust_language_code)):
        path = write_report(folder, top=args.top)
    print(f"wrote {path} and plots in {folder / 'plots'}")
    return ExitCode.OK


def cmd_export(args: argparse.Namespace) -> int:
    """A search folder's best genotypes (see the module doc); a genotype file is `abz compile`. Every check (the
    history, the flags, the weights' source: `cli.export_weights.weights_source`) passes before anything is
    written."""
    source = Path(args.file)
    from autobert_zero.cli.export_retrain import export_retrain, is_retrain

    if is_retrain(source):
        return export_retrain(args)
    if args.all_seeds:
        raise ConfigError("--all-seeds exports every pre-training seed of a retrain folder (`abz retrain --out`); "
                          f"{source} is not one")
    if not (source / STATE_FILE).exists() and not (source / HISTORY_FILE).exists():
        if source.is_dir():
            raise SearchError(f"{source} holds no search ({STATE_FILE} is missing) and is not a genotype file")
        if args.vocab_size is None:
            args.vocab_size = DEFAULT_VOCAB_SIZE
        return cmd_compile(args)
    with using_language(search_language(source, args.trust_language_code)):
        return _export_search(args, source)


def search_language(folder: Path, trust: bool) -> Language:
    """The language a search folder's state.json records (the built-in one when it records none, or when the
    state cannot be read: the command reading the folder then names that problem). Op code it carries runs
    only with `trust` (`--trust-language-code`), unless this process built that language already."""
    return language_from_record(search_record(folder), where=str(folder / STATE_FILE), trust=trust or None)


def search_language_of_config(cfg: Config, search: str | Path) -> Language:
    """The language of `cfg` (`abz retrain`'s config), which must be the one search folder `search` recorded
    (its genotypes are read in it)."""
    from autobert_zero.config.language import language_from_config
    from autobert_zero.grammar.loading import language_changes

    language = language_from_config(cfg)
    changed = language_changes(search_record(Path(search)), language.record)
    if changed:
        raise ConfigError(f"{cfg.source}: the language differs from the one search {search} used "
                          f"({'; '.join(changed)}); give this config the search's `language:` section")
    return language


def search_record(folder: Path) -> Any:
    """The language record a search folder's state.json holds (None: none, or the state is unreadable)."""
    try:
        body = read_json(folder / STATE_FILE, SearchError).get("body", {})
        return (body.get("run") or {}).get("language")
    except (SearchError, OSError, AttributeError):
        return None


def _export_search(args: argparse.Namespace, source: Path) -> int:
    from autobert_zero.cli.export_weights import weights_source
    from autobert_zero.evolve.export import best_candidates, write_genotypes

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    body, lines = load_verified_history(source)
    best = best_candidates([line.to_json() for line in lines], args.top)
    if not best:
        raise SearchError(f"{source}: no candidate has a fitness yet; nothing to export")
    cfg = _load_run_config(source)
    out = Path(args.out)
    outputs = [*(f"rank{i + 1}" for i in range(len(best))), "README.md"]
    check_out_dir(out, "abz export", force=args.force, outputs=outputs)  # before the supernet is loaded
    weights = weights_source(source, cfg, body.get("run"), args)
    with open_run_dir(out, "abz export", force=args.force, outputs=outputs):
        written = write_genotypes(best, out)
        scoring = _scoring(source, cfg, body.get("run"))
        infos = [_export_rank(source, cfg, line, rank, folder, weights, scoring)
                 for rank, (folder, line) in enumerate(zip(written, best, strict=True), start=1)]
        from autobert_zero.evolve.export import index_text

        atomic_write_text(out / "README.md", index_text(source.resolve(), list(zip(best, infos, strict=True))))
    for folder, line, info in zip(written, best, infos, strict=True):
        print(f"{folder}: fitness {line['fitness']:.4f}, id {line['id'][:12]}; weights: {info.label}")
    return ExitCode.OK


def _export_rank(search: Path, cfg: Config, line: dict[str, Any], rank: int, folder: Path,
                 weights: WeightsSource | None, scoring: ScoreSource) -> WeightsInfo:
    """`folder/hf` (unless `weights` is None) and the model card `folder/README.md` of one genotype."""
    from autobert_zero.cli.export_weights import no_hf_sizes
    from autobert_zero.compiler.analysis import StaticSizes, flops_per_token, parameter_report
    from autobert_zero.evolve.export import ModelFacts, WeightsInfo, model_card

    genotype = parse_genotype(line["genotype"])
    seq_len = cfg.data.max_seq_length
    if weights is None:
        info = WeightsInfo("none", "none exported (--no-hf)")
        sizes = no_hf_sizes(cfg)
        static = StaticSizes(**sizes)
        h = sizes["hidden_size"]
        params = parameter_report(genotype, static, pooler=False).total + h * h + 3 * h + sizes["vocab_size"]
        facts = ModelFacts(sizes, seq_len, flops_per_token(genotype, static, seq_len).per_token, params,
                           "an AutoBertZeroForMaskedLM at the search config's sizes, counted by compiler.analysis")
    else:
        info, sizes = weights.info, weights.sizes
        model_class, params = weights.write(genotype, folder / "hf")
        facts = ModelFacts(sizes, seq_len, flops_per_token(genotype, StaticSizes(**sizes), seq_len).per_token,
                           params, f"the exported {model_class}", model_class, weights.tokenizer)
    atomic_write_text(folder / "README.md", model_card(line, rank, search.resolve(), info, facts, scoring))
    return info


def _scoring(search: Path, cfg: Config, run: dict[str, Any] | None) -> ScoreSource:
    """How the search's fitness scored its candidates, in words (for the model cards)."""
    from autobert_zero.evolve.export import ScoreSource

    ev = cfg.evaluate
    if cfg.search.fitness == "synthetic":
        return ScoreSource(f"`search.fitness: {cfg.search.fitness}`: a stand-in score, no model trained",
                           "none: the synthetic fitness measures no loss")
    fitness = f"`search.fitness: evaluate`, estimator `{ev.estimator}`, `evaluate.steps` {ev.steps}"
    if cfg.search.fitness == "halving":
        fitness = (f"`search.fitness: halving` (asynchronous successive halving, eta {cfg.search.halving_eta}): "
                   f"rung 0 estimator `{ev.estimator}`, `evaluate.steps` {ev.steps}, then scratch runs of "
                   f"{cfg.search.halving_steps} steps for the candidates promoted: 1000 × scratch rungs completed "
                   f"minus the held-out MLM loss at the last")
    elif ev.size_prior is not None:
        fitness += f", rank-combined with a `{ev.size_prior}` size prior (weight {ev.prior_weight})"
    elif ev.glue_task is not None:
        fitness += f", the GLUE dev score of a short fine-tune on {ev.glue_task}"
    else:
        fitness += ": minus the held-out MLM loss"
    corpus = ((run or {}).get("data") or {}).get("corpus_sha256")
    held_out = (f"mean over the search's {cfg.data.eval_blocks} held-out blocks (`data.eval_blocks`) of "
                f"{cfg.data.max_seq_length} tokens with fixed mask positions"
                + (f", corpus sha256 `{corpus}`" if isinstance(corpus, str) else ""))
    return ScoreSource(fitness, held_out, ev.glue_task, _final_scores(search))


def _final_scores(search: Path) -> dict[str, float | None]:
    """The summary's scores on the final (adapted) supernet, or {} (no summary, none rescored, unreadable)."""
    from autobert_zero.run_dir import RunDir

    scores = (RunDir(search, "abz export").finished() or {}).get("final_supernet_scores")
    if not isinstance(scores, dict):
        return {}
    return {str(k): float(v) for k, v in scores.items() if isinstance(v, int | float) and not isinstance(v, bool)}
