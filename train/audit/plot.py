"""The ranking audit's picture and table, drawn from the `audit.json` mapping alone.

`write_plot` draws one scatter per estimator (its score against the reference score, both higher-is-better,
vanilla BERT and Figure 7 marked), with τ and its 95% interval in each title; `table` is the printed summary.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autobert_zero.plotting import pyplot, save_figure

MARKERS = {"bert": ("s", "tab:red"), "figure7": ("*", "tab:green"), "neighbour": ("o", "tab:orange"),
           "random": ("o", "tab:blue")}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def interval_text(figure: dict[str, Any]) -> str:
    """`+0.62 [+0.41, +0.80]` from a {value, low, high} mapping."""
    text = _fmt(figure["value"])
    return text if figure["low"] is None else f"{text} [{_fmt(figure['low'])}, {_fmt(figure['high'])}]"


def table(report: dict[str, Any]) -> str:
    """One row per estimator: τ and ρ with intervals, τ in the best half and within equal-parameter groups,
    seconds per candidate and the reference/estimator cost ratio; then the noise ceiling."""
    head = (f"{'estimator':<22} {'kendall tau [95% CI]':<24} {'spearman rho [95% CI]':<24} {'tau top½':>8} "
            f"{'tau =params':>11} {'s/cand':>8} {'ref/est':>8}")
    rows = [head, "-" * len(head)]
    for name, e in report["estimators"].items():
        group = e["equal_params_tau"]
        group_text = _fmt(group["tau"]) + (f" ({group['pairs']})" if group["pairs"] else "")
        ratio = e["cost_ratio"]
        rows.append(f"{name:<22} {interval_text(e['kendall_tau']):<24} {interval_text(e['spearman_rho']):<24} "
                    f"{_fmt(e['top_half_tau']):>8} {group_text:>11} {e['seconds_per_candidate']:>8.2f} "
                    f"{'—' if ratio is None else f'{ratio:.1f}×':>8}")
    ref = report["reference"]
    rows.append("-" * len(head))
    rows.append(f"reference: scratch {ref['steps']} steps × seeds {ref['seeds']}, {ref['seconds_per_candidate']:.1f} "
                f"s per candidate and seed; noise ceiling (τ seed vs seed) {interval_text(ref['noise_ceiling_tau'])}; "
                f"{report['scored']} candidates scored, {len(report['excluded'])} excluded")
    return "\n".join(rows)


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
