"""`abz report DIR`: report.md and plots of a search, from its history and state alone.

Plots (PNG, matplotlib's Agg backend, written to DIR/plots): best and population-median fitness against
evaluations, operation priorities over time (op strategy), invalid/duplicate/failed rates over a sliding
window, and fitness against parameters with the Pareto front. The markdown adds the counts, the best
genotypes as formulas and SVG drawings (`grammar/drawing.py`), and the lineage of the best.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autobert_zero.grammar import formula, parse_genotype
from autobert_zero.grammar.drawing import genotype_to_svg
from autobert_zero.io import atomic_write_text
from autobert_zero.plotting import pyplot, save_figure

from .history import HistoryLine, Status, best_lines
from .state import load_verified_history

WINDOW = 20


def write_report(folder: Path, top: int = 5) -> Path:
    """Write `folder/report.md` and `folder/plots/*`; returns the report path. The state and history are
    checked first (`load_verified_history`: an edited history is refused), before anything is written."""
    body, history = load_verified_history(folder)
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    best = best_lines(history, top)
    images = {
        "fitness": _plot_fitness(history, body["config"]["population_size"], plots / "fitness.png"),
        "priority": _plot_priority(history, plots / "priority.png"),
        "rates": _plot_rates(history, plots / "rates.png"),
        "pareto": _plot_pareto(history, plots / "pareto.png"),
    }
    for rank, line in enumerate(best, start=1):
        atomic_write_text(plots / f"best{rank}.svg", genotype_to_svg(parse_genotype(line.genotype)))
    path = folder / "report.md"
    atomic_write_text(path, _markdown(folder, body, history, best, images))
    return path


def running_best(history: Sequence[HistoryLine]) -> list[float | None]:
    """After each candidate, the best fitness so far (None until one is scored)."""
    out: list[float | None] = []
    best: float | None = None
    for line in history:
        if (fitness := line.scored_fitness) is not None:
            best = fitness if best is None else max(best, fitness)
        out.append(best)
    return out


def population_median(history: Sequence[HistoryLine], size: int) -> list[float | None]:
    """After each candidate, the median fitness of the last `size` scored candidates (the aging population)."""
    alive: list[float] = []
    out: list[float | None] = []
    for line in history:
        if (fitness := line.scored_fitness) is not None:
            alive = [*alive[-(size - 1):], fitness] if size > 1 else [fitness]
        out.append(statistics.median(alive) if alive else None)
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(params, fitness) points no other point beats on both (fewer params, higher fitness), by params."""
    front: list[tuple[float, float]] = []
    for params, fitness in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or fitness > front[-1][1]:
            front.append((params, fitness))
    return front


def lineage(history: Sequence[HistoryLine], line: HistoryLine) -> list[HistoryLine]:
    """The line and its ancestors (each parent's first evaluation), newest first."""
    first: dict[str, HistoryLine] = {}
    for entry in history:
        first.setdefault(entry.id, entry)
    chain = [line]
    seen = {line.id}
    while (parent := chain[-1].parent) is not None and parent in first and parent not in seen:
        chain.append(first[parent])
        seen.add(chain[-1].id)
    return chain


def _legend(ax: Any, **options: Any) -> None:
    """A legend, when the plot holds labelled artists (matplotlib warns about an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def _save(fig: Any, path: Path) -> str:
    """Write the plot; its name relative to the report."""
    save_figure(fig, path)
    return f"plots/{path.name}"


def _plot_fitness(history: Sequence[HistoryLine], size: int, path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(1, len(history) + 1))
    ax.plot(x, running_best(history), label="best so far")
    ax.plot(x, population_median(history, size), label=f"population median (last {size})")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("fitness")
    _legend(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_priority(history: Sequence[HistoryLine], path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ops = sorted({op for line in history for op in (line.priority or {})})
    for op in ops:
        points = [(i + 1, u) for i, line in enumerate(history)
                  if line.priority and (u := line.priority.get(op)) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), label=op)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("priority u (UCB)")
    if not ops:
        ax.set_title("no operation priority (strategy is not `op`)")
    _legend(ax, fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _windowed(history: Sequence[HistoryLine], value: Callable[[HistoryLine], float]) -> list[float]:
    out = []
    for i in range(len(history)):
        window = history[max(0, i - WINDOW + 1):i + 1]
        out.append(sum(value(line) for line in window) / len(window))
    return out


def _plot_rates(history: Sequence[HistoryLine], path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(1, len(history) + 1))
    ax.plot(x, _windowed(history, lambda line: line.invalid), label="invalid children resampled per candidate")
    ax.plot(x, _windowed(history, lambda line: line.status == Status.DUPLICATE), label="duplicate rate")
    ax.plot(x, _windowed(history, lambda line: line.status in (Status.FAILED, Status.OVER_LIMIT)),
            label="failed or over-limit rate")
    ax.set_xlabel(f"evaluations (sliding window of {WINDOW})")
    _legend(ax, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_pareto(history: Sequence[HistoryLine], path: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    points = [(float(line.params), float(line.fitness)) for line in history
              if line.status == Status.OK and line.params is not None and line.fitness is not None]
    if points:
        ax.scatter(*zip(*points, strict=True), s=10, alpha=0.5, label="candidates")
        front = pareto_front(points)
        ax.plot(*zip(*front, strict=True), color="red", marker="o", label="Pareto front")
    _legend(ax)
    ax.set_xlabel("parameters")
    ax.set_ylabel("fitness")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _markdown(folder: Path, body: dict[str, Any], history: Sequence[HistoryLine],
              best: Sequence[HistoryLine], images: dict[str, str]) -> str:
    config = body["config"]
    statuses = Counter(line.status for line in history)
    rejections = Counter(body["rejections"])
    lines = [
        f"# Search report: {folder.name}", "",
        f"Strategy `{config['strategy']}`, seed {body['seed']}, population {config['population_size']}, "
        f"tournament {config['tournament_size']}, round size {config['round_size']}, fitness `{config['fitness']}`; "
        f"{len(history)} of {config['evaluations']} candidates evaluated"
        + (" (finished)" if body.get("finished") else " (not finished)")
        + (f"; {body['fitness_seconds'] / body['fitness_calls']:.2f} s per fitness evaluation."
           if body["fitness_calls"] and "fitness_seconds" in body else "."), "",
        "| candidates | fitness calls | ok | duplicates | failed | over limit | invalid children resampled |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(history)} | {body['fitness_calls']} | {statuses[Status.OK]} | {statuses[Status.DUPLICATE]} | "
        f"{statuses[Status.FAILED]} | {statuses[Status.OVER_LIMIT]} | {sum(rejections.values())} |", "",
    ]
    if rejections:
        lines += ["Invalid children by reason: " + ", ".join(f"`{k}` {v}" for k, v in rejections.most_common()), ""]
    lines += [f"![best and median fitness]({images['fitness']})", "",
              f"![operation priorities]({images['priority']})", "",
              f"![invalid and duplicate rates]({images['rates']})", "",
              f"![fitness vs parameters]({images['pareto']})", "", "## Best genotypes", ""]
    for rank, line in enumerate(best, start=1):
        genotype = parse_genotype(line.genotype)
        params = f"{line.params:,}" if line.params is not None else "?"
        lines += [f"### {rank}. fitness {line.fitness:.4f} — candidate #{line.index}, {params} parameters, "
                  f"id `{line.id[:12]}`", ""]
        lines += [f"- `{g.name}`: `{formula(g)}`" for g in genotype.graphs]
        lines += ["", f"![drawing](plots/best{rank}.svg)", "", "```", line.genotype.rstrip(), "```", ""]
    if best:
        lines += ["## Lineage of the best", "", "| candidate | fitness | mutation | what changed |",
                  "|---:|---:|---|---|"]
        for entry in lineage(history, best[0]):
            fitness = f"{entry.fitness:.4f}" if entry.fitness is not None else entry.status.value
            lines.append(f"| #{entry.index} | {fitness} | {entry.mutation} | {entry.detail} |")
    return "\n".join(lines) + "\n"
