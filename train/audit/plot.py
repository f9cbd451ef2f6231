"""The ranking audit's picture and table, drawn from the `audit.json` mapping alone.

`write_plot` draws one scatter per estimator (its score against the reference score, both higher-is-better,
each candidate kind marked), with τ and its 95% interval in each title; `table` is the printed summary: per
estimator τ with its interval, τ in the top half / top quarter / within sibling groups, precision@5, regret@1
and @5, the exposure cluster's rank lift (when there is one), marginal and amortised seconds and the cost
ratio; the leave-one-out noise ceiling of the same figures; then the best BIWS estimator's paired τ
differences against every rival.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autobert_zero.plotting import pyplot, save_figure
from autobert_zero.train.audit.goal import nearest, paired_interval

MARKERS = {"bert": ("s", "tab:red"), "figure7": ("*", "tab:green"), "neighbour": ("o", "tab:orange"),
           "random": ("o", "tab:blue"), "top": ("^", "tab:green"), "sibling": ("o", "tab:orange"),
           "uniform": ("o", "tab:blue"), "exposure": ("X", "tab:purple")}
COLUMNS = (("top_half_tau", "top½"), ("top_quarter_tau", "top¼"), ("sibling_tau", "sib"),
           ("precision_at_5", "P@5"), ("regret_at_1", "reg@1"), ("regret_at_5", "reg@5"), ("exposure_lift", "lift"))
"""Point figures of the table, by key of `figures`, and their headers."""


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def interval_text(figure: dict[str, Any]) -> str:
    """`+0.62 [+0.41, +0.80]` from a {value, low, high} mapping."""
    text = _fmt(figure["value"])
    return text if figure["low"] is None else f"{text} [{_fmt(figure['low'])}, {_fmt(figure['high'])}]"


def _cells(figures: dict[str, Any], keys: list[str]) -> str:
    out = []
    for key in keys:
        figure = figures.get(key, {})
        text = _fmt(figure.get("value"))
        out.append(f"{text + ('?' if figure.get('unresolvable') else ''):>7}")
    return " ".join(out)


def table(report: dict[str, Any]) -> str:
    """The summary described in the module docstring."""
    present = set(report.get("figures", ()))
    keys = [key for key, _ in COLUMNS if key in present]
    heads = " ".join(f"{label:>7}" for key, label in COLUMNS if key in present)
    head = (f"{'estimator':<22} {'kendall tau [95% CI]':<24} {heads} {'s/cand':>8} {'amort.':>8} "
            f"{'ref/est':>8}")
    rows = [head, "-" * len(head)]
    for name, e in report["estimators"].items():
        ratio = e["cost_ratio"]
        amortised = e.get("cost", {}).get("amortised_seconds_over_search")
        rows.append(f"{name:<22} {interval_text(e['kendall_tau']):<24} {_cells(e.get('figures', {}), keys)} "
                    f"{e['seconds_per_candidate']:>8.2f} {'—' if amortised is None else f'{amortised:.2f}':>8} "
                    f"{'—' if ratio is None else f'{ratio:.1f}×':>8}")
    ref = report["reference"]
    rows.append("-" * len(head))
    ceiling = ref.get("noise_ceiling", {"kendall_tau": ref["noise_ceiling_tau"]})
    rows.append(f"{'noise ceiling (LOO)':<22} {interval_text(ceiling['kendall_tau']):<24} {_cells(ceiling, keys)}")
    rows.append(f"reference: scratch {ref['steps']} steps × seeds {ref['seeds']}, {ref['seconds_per_candidate']:.1f} "
                f"s per candidate and seed; noise ceiling (τ seed vs the mean of the others) "
                f"{interval_text(ref['noise_ceiling_tau'])}; {report['scored']} candidates scored, "
                f"{len(report['excluded'])} excluded")
    if not ref.get("top_quarter_resolvable", True):
        rows.append("top¼ marked '?': unresolvable (the reference seeds' own top-quarter τ is below 0.6)")
    if "exposure_control" in report:
        exposure = report["exposure_control"]
        rows.append(f"exposure control: {exposure['members']} mutants of {exposure['base']}; lift = their mean rank "
                    f"under the reference − under the estimator (mean reference rank "
                    f"{exposure['mean_rank_reference']})")
    best = report.get("verdict", {}).get("best_biws")
    pairs = report.get("paired_differences", {})
    if best:
        rows.append(f"paired τ differences, {best} − rival [95% CI]:")
        for rival in report["estimators"]:
            diff = paired_interval(pairs, best, rival, "kendall_tau")
            if diff is not None:
                rows.append(f"  {rival:<22} {interval_text(diff)}")
    if "fitness_goal" in report:
        rows.append(goal_line(report["fitness_goal"]))
    for o in report.get("timing_outliers", []):
        rows.append(f"WARNING: {o['estimator']} on {o['candidate']} (supernet {o['supernet'] + 1}) took "
                    f"{o['seconds']} s against a median of {o['median_seconds']} s (paused or starved?): its cost "
                    f"figures are inflated; delete its cache entry to measure it again")
    return "\n".join(rows)


def goal_line(goal: dict[str, Any]) -> str:
    """One line on issue #15 §2's goal (`goal.fitness_goal`): its thresholds, then `goal_verdict`."""
    t = goal["thresholds"]
    return (f"goal (top¼ τ ≥ {t['top_quarter_tau']:g}, sibling τ ≥ {t['sibling_tau']:g}, precision@5 ≥ "
            f"{t['precision_at_5']:g}, above every rival with the paired CI excluding 0): {goal_verdict(goal)}")


def goal_verdict(goal: dict[str, Any]) -> str:
    """Who meets the goal, else who is undecided, else why the nearest estimator does not meet it."""
    if goal["met_by"]:
        return "met by " + ", ".join(goal["met_by"])
    if goal["undecided"]:
        return "undecided (top quarter unresolvable) for " + ", ".join(goal["undecided"])
    nearest_name = nearest(goal)
    if nearest_name is None:
        return "no estimator to check"
    checked = goal["estimators"]
    missed = [f for f, ok in checked[nearest_name]["reached"].items() if ok is False]
    return (f"not met; nearest {nearest_name} (misses {', '.join(missed) or 'no threshold'}, "
            f"not above {len(checked[nearest_name]['not_above'])} rival figures)")


def write_plot(report: dict[str, Any], path: str | Path) -> None:
    """Scatter per estimator vs the reference (PNG, written atomically)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    names = list(report["estimators"])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    candidates = [c for c in report["candidates"] if c["reference"]["score"] is not None]
    for ax, name in zip(axes.flat, names, strict=False):
        e = report["estimators"][name]
        for kind, (marker, colour) in MARKERS.items():
            points = [(c["scores"][name]["score"], c["reference"]["score"]) for c in candidates
                      if c["kind"] == kind and c["scores"][name]["score"] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, marker=marker, c=colour, s=60 if marker == "*" else 24, label=kind,
                           edgecolors="black", linewidths=0.4)
        failed = f", {e['failed']} failed (not shown)" if e["failed"] else ""
        ax.set_title(f"{name}: τ {interval_text(e['kendall_tau'])}\n{e['seconds_per_candidate']:.2f} s/candidate"
                     f"{failed}", fontsize=9)
        ax.set_xlabel(e["axis"], fontsize=8)
        ax.set_ylabel("reference: −held-out MLM loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="both", style="plain", useOffset=False)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="best")
    ref = report["reference"]
    fig.suptitle(f"Ranking audit: {report['scored']} candidates, {report.get('num_layers', '?')} layers, hidden "
                 f"{report.get('hidden_size', '?')}; noise ceiling τ {interval_text(ref['noise_ceiling_tau'])}",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
