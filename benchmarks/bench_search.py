"""Search benchmark: does OP-NAS (operation priority) beat regularized evolution and random search?

Pre-registration (written before the full run; the result is reported whichever way it comes out)

- Hypothesis: with the same fitness, budget, population and tournament, OP (`search.strategy: op`, every
  decision of a mutation steered by its UCB table, reward = the child's improvement over its parent) finds
  better genotypes than regularized evolution (RE, `evolution`) and random search (RS, `random`), and
  reaches RE's final best sooner.
- Seeds: 0, 1, ..., N-1 (`--seeds N`, N >= 10 for the recorded run). Seed s trains its own supernet
  (`abz supernet`'s `train_supernet`, the `--config` sizes, `seed: s`, `--supernet-steps` steps); the
  three strategies of seed s share that supernet, the search seed s and so their random streams (common
  random numbers: same initial population, same draws wherever a priority does not change a choice).
  `adapt_steps: 0` and BIWS k = 0: the fitness is a fixed function of the genotype, so a child and its
  parent are scored on the same weights.
- Outcome: each run's final best (by fitness) is re-scored on held-out blocks the fitness never saw (the
  `--rescore-blocks` held-out blocks after the fitness's `--fitness-blocks`; none of them is trained on), so
  the maximum over a run carries no winner's curse.
- Primary test: one-sided Wilcoxon signed-rank test, paired by seed, of the re-scored final best, OP − RE
  and OP − RS. Secondary: paired permutation test of the mean difference (`scipy.stats.permutation_test`,
  samples permuted within a seed), effect size d_z = mean / sd of the paired differences, 95% bootstrap
  interval of the mean difference (`scipy.stats.bootstrap`), and the power analysis (seeds needed for 80%
  power at the observed d_z, one-sided α 0.05, paired t).
- Evaluations-to-reach: per seed, the first evaluation at which OP's best-so-far fitness reaches the same
  seed's RE final best (never: budget + 1); the figure is the median over seeds as a share of the budget;
  its p is a paired permutation test (per seed, OP and RE swap roles: RE reaching OP's final best).
- Goal: OP reaches RE's final best in ≤ 60% of the evaluations (median share, permutation p < 0.05) and beats
  RE and RS with primary p < 0.05.

- The recorded run (registered 2026-12-06, before it started): `--fitness evaluate --seeds 10 --evaluations 100
  --supernet-steps 500 --population 16 --tournament 4`, `configs/search-bench.yaml` (tiny sizes, WikiText-2 +
  NLTK), reward `improvement`, c 0.5, temperature 0.1 (no ablation run yet). With 10 seeds a one-sided paired
  test at α 0.05 has 80% power only for d_z ≈ 0.85 or more; a smaller true effect is likely to be missed, and
  the power analysis says how many seeds the observed effect would need.

Result of the recorded run (514cf48): goal not met — OP − RE +0.000, Wilcoxon p 0.54; OP − RS +0.001, p 0.19
(benchmarks/RESULTS.md). Its per-run results are committed in `benchmarks/results/search-op-runs/`: copy them
into the cache to extend the run (more seeds, `--seeds N`) on a fresh machine; only new seeds train supernets.

Runs are resumable: each (strategy, seed) writes one JSON under `--cache` (default `runs/bench-search/`),
atomically, when it finishes, with the git commit; a rerun skips what is there (and refuses a cache made with
other settings). Supernets are cached under `<cache>/supernets/seed<s>/`.

    python -m benchmarks.bench_search --fitness evaluate --seeds 10 --evaluations 300 --supernet-steps 2000
    python -m benchmarks.bench_search --fitness synthetic --seeds 2 --evaluations 20   # seconds-long smoke run

`--fitness synthetic`: the deterministic pure-python stand-in, per seed `SyntheticFitness(seed)`; its
"held-out" re-score is the same function without noise (a smoke path, not a model-quality measure).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from autobert_zero.errors import ConfigError
from autobert_zero.evolve import SEARCH_STRATEGIES, Search, SyntheticFitness, best_line
from autobert_zero.evolve.report import running_best
from autobert_zero.evolve.settings import REWARDS, SearchSettings
from autobert_zero.grammar import Genotype, default_language
from autobert_zero.io import atomic_write_text
from autobert_zero.plotting import pyplot, save_figure
from benchmarks.report import RESULTS, commit, print_table, write_json

NAME = "search_op_vs_baselines"
SETTINGS_KEYS = ("fitness", "config", "evaluations", "population", "tournament", "supernet_steps", "reward",
                 "priority_c", "temperature", "fitness_blocks", "rescore_blocks", "layers")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fitness", choices=["evaluate", "synthetic"], default="evaluate")
    parser.add_argument("--config", default="configs/search-bench.yaml",
                        help="sizes, data and supernet settings for --fitness evaluate (the tiny sizes)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--tournament", type=int, default=4)
    parser.add_argument("--supernet-steps", type=int, default=2000)
    parser.add_argument("--strategies", default=",".join(SEARCH_STRATEGIES),
                        help="comma-separated subset of op,evolution,random")
    parser.add_argument("--reward", choices=REWARDS, default="improvement")
    parser.add_argument("--priority-c", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--fitness-blocks", type=int, default=256, help="held-out blocks the fitness scores on")
    parser.add_argument("--rescore-blocks", type=int, default=256,
                        help="further held-out blocks, never seen by the fitness, that final bests are re-scored on")
    parser.add_argument("--layers", type=int, default=12, help="layers per candidate (synthetic fitness)")
    parser.add_argument("--cache", default="runs/bench-search", help="folder of per-run results and supernets")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the JSON and PNG")
    args = parser.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(strategies) - set(SEARCH_STRATEGIES))
    if unknown or not strategies:
        raise ConfigError(f"--strategies {args.strategies!r}: expected a comma-separated subset of "
                          f"{','.join(SEARCH_STRATEGIES)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    args.strategies = strategies
    for key in ("seeds", "evaluations", "population", "tournament", "supernet_steps", "fitness_blocks",
                "rescore_blocks", "layers"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if args.temperature <= 0 or args.priority_c < 0:
        raise ConfigError("--temperature must be positive and --priority-c 0 or more")
    return args


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """What a cached run must share with this invocation."""
    out = {key: getattr(args, key) for key in SETTINGS_KEYS}
    if args.fitness == "synthetic":
        out.update(config=None, supernet_steps=None, fitness_blocks=None, rescore_blocks=None)
    else:
        out["layers"] = None
    return out


class SeedFitness:
    """The fitness of one seed and the re-scorer of its final bests (built on first use)."""

    def __init__(self, args: argparse.Namespace, seed: int, cache: Path) -> None:
        self.args, self.seed, self.cache = args, seed, cache
        self.fitness: Any = None
        self.rescorer: Any = None
        self.layers = args.layers

    def build(self) -> None:
        if self.fitness is not None:
            return
        if self.args.fitness == "synthetic":
            self.fitness = SyntheticFitness(self.seed)
            self.rescorer = SyntheticFitness(self.seed, noise=0.0)
            return
        from autobert_zero.config.load import load_config
        from autobert_zero.grammar import load_genotype
        from autobert_zero.train.evaluate import Evaluator
        from autobert_zero.train.fitness import EvaluatorFitness
        from autobert_zero.train.supernet import train_supernet

        a = self.args
        cfg = load_config(a.config)
        cfg.seed = self.seed
        cfg.data = dataclasses.replace(cfg.data, eval_blocks=a.fitness_blocks + a.rescore_blocks)
        cfg.pretrain = dataclasses.replace(cfg.pretrain, max_steps=a.supernet_steps)
        cfg.logging = dataclasses.replace(cfg.logging, progress_bar=False)
        folder = self.cache / "supernets" / f"seed{self.seed}"
        if not (folder / "summary.json").is_file():
            print(f"training the supernet of seed {self.seed} ({a.supernet_steps} steps) into {folder}", flush=True)
            train_supernet(cfg, folder, force=True)
        cfg.search = dataclasses.replace(cfg.search, fitness="evaluate", supernet=str(folder), adapt_steps=0)
        fit_cfg = dataclasses.replace(cfg, evaluate=dataclasses.replace(
            cfg.evaluate, estimator="biws", steps=0, eval_offset=0, eval_limit=a.fitness_blocks))
        evaluator = Evaluator(fit_cfg, folder)
        held = len(evaluator.prepared.data.eval_blocks)
        if held < a.fitness_blocks + a.rescore_blocks:
            raise ConfigError(f"the corpus holds out only {held} blocks (a tenth of it at most); --fitness-blocks + "
                              f"--rescore-blocks = {a.fitness_blocks + a.rescore_blocks}; lower them")
        re_cfg = dataclasses.replace(cfg, evaluate=dataclasses.replace(
            cfg.evaluate, estimator="biws", steps=0, eval_offset=a.fitness_blocks, eval_limit=a.rescore_blocks))
        self.fitness = EvaluatorFitness(evaluator)
        self.rescorer = Evaluator(re_cfg, folder, prepared=evaluator.prepared)
        self.layers = load_genotype(cfg.genotype).num_layers

    def rescore(self, genotype: Genotype) -> float | None:
        result = self.rescorer.evaluate([genotype])[0]
        return float(result.score) if result.score is not None else None


def run_one(args: argparse.Namespace, strategy: str, seed: int, seed_fitness: SeedFitness) -> dict[str, Any]:
    """One search; its best-so-far curve, final best and the held-out re-score of that best."""
    seed_fitness.build()
    config = SearchSettings(strategy=strategy, evaluations=args.evaluations, population_size=args.population,
                            tournament_size=args.tournament, fitness=args.fitness, reward=args.reward,
                            priority_c=args.priority_c, priority_temperature=args.temperature, adapt_steps=0)
    search = Search(config, default_language(), seed_fitness.fitness, seed=seed, num_layers=seed_fitness.layers)
    started = time.perf_counter()
    search.run()
    best = best_line(search.history)
    rescored = seed_fitness.rescore(search.genotype(best.genotype)) if best is not None else None
    curve = [b if b is not None else None for b in running_best(search.history)]
    return {"strategy": strategy, "seed": seed, "settings": settings_of(args), "commit": commit(),
            "curve": curve, "final_best": best.fitness if best else None, "best_id": best.id if best else None,
            "best_genotype": best.genotype if best else None, "rescored": rescored,
            "diverted": dict(search.chooser.diverted), "fitness_calls": search.fitness_calls,
            "seconds": time.perf_counter() - started}


def load_or_run(args: argparse.Namespace, cache: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (strategy, seed) result: from the cache, or run now and cached atomically."""
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    total, done = len(args.strategies) * args.seeds, 0
    want = settings_of(args)
    for seed in range(args.seeds):
        seed_fitness = SeedFitness(args, seed, cache)
        for strategy in args.strategies:
            done += 1
            path = cache / f"{strategy}-seed{seed}.json"
            if path.is_file():
                result = json.loads(path.read_text())
                if result.get("settings") != want:
                    changed = [f"{k} {result.get('settings', {}).get(k)!r} -> {want[k]!r}" for k in want
                               if result.get("settings", {}).get(k) != want[k]]
                    raise ConfigError(f"{path} was run with other settings ({', '.join(changed)}); use another "
                                      f"--cache or delete it")
                print(f"[{done}/{total}] {strategy} seed {seed}: cached ({path})", flush=True)
            else:
                result = run_one(args, strategy, seed, seed_fitness)
                cache.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(result, indent=1) + "\n")
                print(f"[{done}/{total}] {strategy} seed {seed}: final best {result['final_best']:.4f}, "
                      f"re-scored {result['rescored']:.4f}, {result['fitness_calls']} fitness calls, "
                      f"{result['seconds']:.0f} s", flush=True)
            runs[strategy, seed] = result
    return runs


def seeds_needed(dz: float, alpha: float = 0.05, power: float = 0.8, most: int = 100_000) -> int | None:
    """Seeds a one-sided paired t test needs to reach `power` at effect size `dz` (None: not within `most`)."""
    if not math.isfinite(dz) or dz <= 0:
        return None
    for n in range(2, most + 1):
        critical = stats.t.ppf(1 - alpha, n - 1)
        if 1 - stats.nct.cdf(critical, n - 1, dz * math.sqrt(n)) >= power:
            return n
    return None


def paired(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """One-sided paired comparison a − b (a better when positive)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    dz = float(np.mean(d)) / sd if sd and math.isfinite(sd) and sd > 0 else float("nan")
    out: dict[str, Any] = {"n": len(d), "differences": d.tolist(), "mean": float(np.mean(d)), "sd": sd, "d_z": dz,
                           "wilcoxon_p": None, "permutation_p": None, "bootstrap_95": None,
                           "seeds_for_80_power": seeds_needed(dz)}
    if len(d) >= 2 and np.any(d != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(d, alternative="greater").pvalue)
        out["permutation_p"] = float(stats.permutation_test(
            (x, y), lambda u, v: np.mean(u - v), permutation_type="samples", alternative="greater",
            n_resamples=10_000, random_state=seed).pvalue)
        boot = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=5_000, random_state=seed)
        out["bootstrap_95"] = [float(boot.confidence_interval.low), float(boot.confidence_interval.high)]
    return out


def reach(curve: Sequence[float | None], target: float, budget: int) -> int:
    """First evaluation (1-based) whose best-so-far reaches `target`; budget + 1 when none does."""
    return next((i + 1 for i, b in enumerate(curve) if b is not None and b >= target), budget + 1)


def reach_test(op: Sequence[dict[str, Any]], re: Sequence[dict[str, Any]], budget: int) -> dict[str, Any]:
    """OP reaching the same seed's RE final best, its median share of the budget, and a paired permutation p
    (per seed OP and RE swap roles) that the median is this low by chance."""
    x = np.array([reach(o["curve"], r["final_best"], budget) for o, r in zip(op, re, strict=True)], dtype=float)
    y = np.array([reach(r["curve"], o["final_best"], budget) for o, r in zip(op, re, strict=True)], dtype=float)
    share = float(np.median(x)) / budget
    p = None
    if len(x) >= 2 and np.any(x != y):
        p = float(stats.permutation_test((x, y), lambda u, v: np.median(u), permutation_type="samples",
                                         alternative="less", n_resamples=10_000, random_state=0).pvalue)
    return {"op_reaches_evolution_final_at": [int(v) if v <= budget else None for v in x],
            "evolution_reaches_op_final_at": [int(v) if v <= budget else None for v in y],
            "median_share": share if share <= 1 else None, "permutation_p": p}


def analyse(args: argparse.Namespace, runs: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    seeds = range(args.seeds)
    by = {s: [runs[s, seed] for seed in seeds] for s in args.strategies}
    out: dict[str, Any] = {"comparisons": {}, "reach": None, "goal": None}
    for other in ("evolution", "random"):
        if "op" in by and other in by:
            out["comparisons"][f"op-{other}"] = {
                "rescored": paired([r["rescored"] for r in by["op"]], [r["rescored"] for r in by[other]]),
                "fitness": paired([r["final_best"] for r in by["op"]], [r["final_best"] for r in by[other]])}
    if "op" in by and "evolution" in by:
        out["reach"] = reach_test(by["op"], by["evolution"], args.evaluations)
        if "random" in by:
            primary = [out["comparisons"][f"op-{o}"]["rescored"]["wilcoxon_p"] for o in ("evolution", "random")]
            share, p = out["reach"]["median_share"], out["reach"]["permutation_p"]
            out["goal"] = {"reach_share_at_most_0.6": share is not None and share <= 0.6 and p is not None
                           and p < 0.05,
                           "beats_evolution_p_below_0.05": primary[0] is not None and primary[0] < 0.05,
                           "beats_random_p_below_0.05": primary[1] is not None and primary[1] < 0.05}
            out["goal"]["met"] = all(out["goal"].values())
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or read from the cache) every run, test, print, and write the JSON and PNG; returns the payload."""
    args = parse_args(argv)
    cache, out = Path(args.cache), Path(args.out)
    runs = load_or_run(args, cache)
    analysis = analyse(args, runs)
    rows = []
    for s in args.strategies:
        finals = [runs[s, seed]["final_best"] for seed in range(args.seeds)]
        rescored = [runs[s, seed]["rescored"] for seed in range(args.seeds)]
        rows.append([s, statistics.mean(finals), statistics.mean(rescored),
                     statistics.stdev(rescored) if len(rescored) > 1 else 0.0,
                     sum(sum(runs[s, seed]["diverted"].values()) for seed in range(args.seeds)) / args.seeds])
    print_table(f"final best after {args.evaluations} evaluations ({args.fitness}, {args.seeds} seeds, "
                f"P={args.population}, S={args.tournament})",
                ["strategy", "fitness", "re-scored", "sd", "priority-changed draws / run"], rows)
    for name, comparison in analysis["comparisons"].items():
        c = comparison["rescored"]
        print(f"{name} (re-scored): mean {c['mean']:+.4f}, d_z {c['d_z']:.2f}, Wilcoxon p {c['wilcoxon_p']}, "
              f"permutation p {c['permutation_p']}, bootstrap 95% {c['bootstrap_95']}, seeds for 80% power "
              f"{c['seeds_for_80_power']}")
    if analysis["reach"] is not None:
        r = analysis["reach"]
        print(f"OP reaches evolution's final best at {r['op_reaches_evolution_final_at']}; median share "
              f"{r['median_share']}, permutation p {r['permutation_p']}")
    if analysis["goal"] is not None:
        print(f"goal: {analysis['goal']}")
    payload = {"settings": settings_of(args), "strategies": args.strategies, "seeds": list(range(args.seeds)),
               "cache": str(cache), **analysis,
               "runs": {f"{s}-seed{seed}": {k: v for k, v in runs[s, seed].items() if k != "settings"}
                        for s in args.strategies for seed in range(args.seeds)}}
    write_json(NAME, payload, folder=out)
    plot(args, runs, out / f"{NAME}.png")
    return payload


def plot(args: argparse.Namespace, runs: dict[tuple[str, int], dict[str, Any]], path: Path) -> None:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4))
    for strategy in args.strategies:
        curves = [[math.nan if b is None else b for b in runs[strategy, seed]["curve"]] for seed in range(args.seeds)]
        x = list(range(1, args.evaluations + 1))
        columns = np.array(curves)
        left.plot(x, np.nanmean(columns, axis=0), label=strategy)
        left.fill_between(x, np.nanmin(columns, axis=0), np.nanmax(columns, axis=0), alpha=0.2)
        right.plot(range(args.seeds), [runs[strategy, seed]["rescored"] for seed in range(args.seeds)], "o-",
                   label=strategy)
    left.set_xlabel("evaluations")
    left.set_ylabel(f"best fitness so far ({args.fitness}; band: min–max over seeds)")
    right.set_xlabel("seed")
    right.set_ylabel("final best re-scored on held-out blocks")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("OP-NAS vs regularized evolution vs random search")
    save_figure(fig, path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
