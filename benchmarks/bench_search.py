"""Search benchmark: operation priority vs regularized evolution vs random search, and the loop's overhead.

1. Quality: the three strategies (`search.strategy` op / evolution / random) with the same fitness, budget,
   population and tournament, over several seeds; best fitness against evaluations (mean and the min–max
   spread over seeds), a table of final bests, and how many evaluations OP needed to reach regularized
   evolution's mean final best (goal: ≤ 60% of the budget).
2. Overhead: everything but the fitness, per candidate (mutation, validation, canonical ids, tournament,
   priority, state.json + history.jsonl written after every evaluation), timed with the fitness's own time
   subtracted. Goal ≤ 10 ms.

The fitness is `--fitness synthetic` (the deterministic pure-python stand-in; runs in seconds) or
`--fitness evaluate` (the Evaluator of a config's `evaluate:` section, e.g. BIWS with `search.supernet`;
one Evaluator is shared by all runs, so its id cache serves every strategy alike).

    python -m benchmarks.bench_search                       # synthetic, 5 seeds
    python -m benchmarks.bench_search --fitness evaluate --config my-biws.yaml --supernet runs/supernet \
        --evaluations 200 --population 16 --tournament 4
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autobert_zero.config.schema import SearchConfig
from autobert_zero.evolve import SEARCH_STRATEGIES, Search, StateStore, SyntheticFitness
from autobert_zero.evolve.report import running_best
from autobert_zero.grammar import Genotype, default_language
from autobert_zero.plotting import pyplot, save_figure
from benchmarks.report import RESULTS, print_table, write_json


class TimedFitness:
    """Wraps a fitness and adds up the seconds spent inside it."""

    def __init__(self, fitness: Any) -> None:
        self.fitness, self.seconds = fitness, 0.0

    def evaluate(self, genotypes: Sequence[Genotype]) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fitness.evaluate(genotypes)
        finally:
            self.seconds += time.perf_counter() - t0


def build_fitness(args: argparse.Namespace) -> tuple[Any, int]:
    """The fitness and the layer count of the candidates."""
    if args.fitness == "synthetic":
        return SyntheticFitness(args.fitness_seed), args.layers
    from autobert_zero.config.load import load_config
    from autobert_zero.grammar import load_genotype
    from autobert_zero.train.fitness import build_fitness as build_from_config

    cfg = load_config(args.config)
    cfg.search = dataclasses.replace(cfg.search, fitness="evaluate", supernet=args.supernet or cfg.search.supernet)
    return build_from_config(cfg), load_genotype(cfg.genotype).num_layers


def curve(config: SearchConfig, fitness: Any, seed: int, layers: int) -> list[float]:
    search = Search(config, default_language(), fitness, seed=seed, num_layers=layers)
    search.run()
    return [b if b is not None else float("nan") for b in running_best(search.history)]


def overhead(config: SearchConfig, layers: int, seed: int) -> dict[str, float]:
    """Milliseconds per candidate outside the fitness, with and without writing the state."""
    out = {}
    for label, store in (("with_state_ms", True), ("in_memory_ms", False)):
        fitness = TimedFitness(SyntheticFitness(0))
        with tempfile.TemporaryDirectory() as tmp:
            search = Search(config, default_language(), fitness, seed=seed, num_layers=layers,
                            store=StateStore(tmp) if store else None)
            t0 = time.perf_counter()
            history = search.run()
            total = time.perf_counter() - t0
        out[label] = 1000 * (total - fitness.seconds) / len(history)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fitness", choices=["synthetic", "evaluate"], default="synthetic")
    parser.add_argument("--config", default="configs/tiny.yaml", help="config for --fitness evaluate")
    parser.add_argument("--supernet", default=None, help="supernet folder for evaluate.estimator: biws")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--tournament", type=int, default=5)
    parser.add_argument("--layers", type=int, default=12, help="layers per candidate (synthetic fitness)")
    parser.add_argument("--fitness-seed", type=int, default=0, help="hidden values of the synthetic fitness")
    args = parser.parse_args()

    fitness, layers = build_fitness(args)
    base = SearchConfig(evaluations=args.evaluations, population_size=args.population,
                        tournament_size=args.tournament, fitness=args.fitness)
    curves: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for strategy in SEARCH_STRATEGIES:
        config = dataclasses.replace(base, strategy=strategy)
        t0 = time.perf_counter()
        curves[strategy] = [curve(config, fitness, seed, layers) for seed in range(args.seeds)]
        seconds[strategy] = time.perf_counter() - t0

    finals = {s: [c[-1] for c in runs] for s, runs in curves.items()}
    target = statistics.mean(finals["evolution"])
    reach = [next((i + 1 for i, b in enumerate(c) if b >= target), None) for c in curves["op"]]
    rows = [[s, statistics.mean(finals[s]), statistics.pstdev(finals[s]), min(finals[s]), max(finals[s]),
             seconds[s]] for s in SEARCH_STRATEGIES]
    print_table(f"best fitness after {args.evaluations} evaluations ({args.fitness} fitness, {args.seeds} seeds, "
                f"P={args.population}, S={args.tournament}, {layers} layers)",
                ["strategy", "mean", "std", "min", "max", "seconds"], rows)
    # a seed that never reached the target counts as beyond the budget
    median = statistics.median([r if r is not None else float("inf") for r in reach])
    share = median / args.evaluations if median != float("inf") else None
    print(f"\nOP reached evolution's mean final best ({target:.4f}) in {sum(r is not None for r in reach)} of "
          f"{len(reach)} seeds, after {reach} evaluations; median share of the budget: "
          f"{'not reached' if share is None else f'{share:.0%}'} (goal ≤ 60%)")

    loop = {s: overhead(dataclasses.replace(base, strategy=s, evaluations=200), layers, 0) for s in SEARCH_STRATEGIES}
    print_table("loop overhead per candidate (everything but the fitness; goal ≤ 10 ms)",
                ["strategy", "with state writes (ms)", "in memory (ms)"],
                [[s, v["with_state_ms"], v["in_memory_ms"]] for s, v in loop.items()])

    name = f"search_{args.fitness}"
    plot(curves, RESULTS / f"{name}.png", args)
    write_json(name, {"fitness": args.fitness, "config": args.config if args.fitness == "evaluate" else None,
                      "seeds": args.seeds, "evaluations": args.evaluations, "population": args.population,
                      "tournament": args.tournament, "layers": layers,
                      "final_best": finals, "op_reaches_evolution_final_at": reach, "op_median_share": share,
                      "seconds": seconds, "overhead_ms": loop, "curves": curves})


def plot(curves: dict[str, list[list[float]]], path: Path, args: argparse.Namespace) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for strategy, runs in curves.items():
        x = list(range(1, len(runs[0]) + 1))
        columns = list(zip(*runs, strict=True))
        ax.plot(x, [statistics.mean(c) for c in columns], label=f"{strategy} (mean of {len(runs)} seeds)")
        ax.fill_between(x, [min(c) for c in columns], [max(c) for c in columns], alpha=0.2)
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best fitness so far ({args.fitness})")
    ax.set_title("OP-NAS vs regularized evolution vs random search (band: min–max over seeds)")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)
    print(f"wrote {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
