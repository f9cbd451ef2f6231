"""The figures of a retrain: per arm mean ± 95% interval of the held-out MLM loss and each GLUE score;
paired differences (by pre-training seed) of each found arm against each baseline, with a paired t-test
and Holm-corrected p-values per endpoint; `results.json`, `report.md`, a table, and two plots.

Intervals are Student t intervals of the mean over pre-training seeds (`scipy.stats.t`); with one seed there
is no interval (None) and no test. GLUE scores are first averaged over the fine-tuning seeds of a
pre-training seed, so the unit of replication is always the pre-training seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOWER_IS_BETTER = {"heldout_loss"}


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, 95% t interval (None with fewer than two values) and n."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values) if values else math.nan
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired(found: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """found − baseline per seed: mean, 95% t interval, paired t-test p (None when undefined)."""
    from scipy import stats

    diffs = [a - b for a, b in zip(found, baseline, strict=True)]
    out = mean_interval(diffs)
    p = None
    if len(diffs) >= 2 and statistics.pstdev(diffs) > 0:
        p = float(stats.ttest_rel(found, baseline).pvalue)
    return {**out, "p": p}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the defined p-values (None stays None)."""
    defined = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    m = len(defined)
    for rank, (p, i) in enumerate(defined):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def endpoint_values(pretrain: Mapping[str, Mapping[int, Mapping[str, Any]]], glue: Mapping[str, Any],
                    arm: str, seeds: Sequence[int]) -> dict[str, list[float]]:
    """Per endpoint, the arm's value at each pre-training seed (in `seeds` order)."""
    values = {"heldout_loss": [float(pretrain[arm][s]["heldout_loss"]) for s in seeds]}
    for task, result in glue.items():
        values[task] = [statistics.fmean(result["scores"][arm][s]) for s in seeds]
    if glue:
        values["glue_average"] = [statistics.fmean(values[t][i] for t in glue) for i in range(len(seeds))]
    return values


def analyse(arms: Sequence[Mapping[str, Any]], pretrain: Mapping[str, Any], glue: Mapping[str, Any],
            seeds: Sequence[int]) -> dict[str, Any]:
    """Per-arm summaries and the found-vs-baseline contrasts (Holm per endpoint)."""
    values = {a["name"]: endpoint_values(pretrain, glue, a["name"], seeds) for a in arms}
    summary = {name: {endpoint: {**mean_interval(v), "values": v} for endpoint, v in by.items()}
               for name, by in values.items()}
    found = [a["name"] for a in arms if a["kind"] == "found"]
    baselines = [a["name"] for a in arms if a["kind"] == "baseline"]
    contrasts: list[dict[str, Any]] = []
    endpoints = list(next(iter(values.values())))
    for endpoint in endpoints:
        rows = [{"endpoint": endpoint, "found": f, "baseline": b,
                 "better": "lower" if endpoint in LOWER_IS_BETTER else "higher",
                 **paired(values[f][endpoint], values[b][endpoint])} for f in found for b in baselines]
        for row, p in zip(rows, holm([r["p"] for r in rows]), strict=True):
            row["p_holm"] = p
        contrasts += rows
    return {"arms": summary, "contrasts": contrasts}


def number(value: float | None, digits: int = 4) -> str:
    """`value` to `digits` decimals; an undefined value (None or NaN) as '–'."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _interval(entry: Mapping[str, Any]) -> str:
    if entry["low"] is None:
        return f"{number(entry['mean'])} (n={entry['n']})"
    return f"{number(entry['mean'])} [{number(entry['low'])}, {number(entry['high'])}]"


def arm_table(results: Mapping[str, Any]) -> list[str]:
    """Markdown rows: one per arm (sizes, cost, lr, held-out loss, GLUE)."""
    endpoints = [e for e in next(iter(results["analysis"]["arms"].values()))]
    header = ["arm", "params", "FFN", "MFLOPs/token", "s/step", "lr", *endpoints]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in results["arms"]:
        name = arm["name"]
        entries = results["analysis"]["arms"][name]
        size = f"{arm['params']:,} ({100 * (arm['params_ratio'] - 1):+.1f}%)"
        cells = [name, size, str(arm["intermediate_size"]), f"{arm['flops_per_token'] / 1e6:.2f}",
                 number(arm.get("seconds_per_step"), 3), f"{arm['lr']:g}", *(_interval(entries[e]) for e in endpoints)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def contrast_table(results: Mapping[str, Any]) -> list[str]:
    lines = ["| endpoint | found − baseline | difference [95% CI] | p (paired t) | p (Holm) |",
             "|---|---|---|---|---|"]
    for c in results["analysis"]["contrasts"]:
        lines.append(f"| {c['endpoint']} ({c['better']} is better) | {c['found']} − {c['baseline']} | "
                     f"{_interval(c)} | {number(c['p'])} | {number(c['p_holm'])} |")
    return lines


def report_text(results: Mapping[str, Any]) -> str:
    """`report.md`: what ran, the arms, the contrasts, the lr choices, and what the figures can show."""
    s = results["settings"]
    held = ("document-disjoint held-out text (data.eval_corpus)" if results["heldout_document_disjoint"] else
            "held-out blocks drawn from the training corpus (not document-disjoint: set data.eval_corpus)")
    lines = [f"# Retrain of {results['search']}", "",
             f"{len(results['arms'])} arms at equal parameters (±2% of {results['arms_reference']}), "
             f"{s['seeds']} pre-training seed(s) of {results['pretrain_steps']} steps each; held-out MLM loss on "
             f"{results['heldout_blocks']} blocks of {held}, the same blocks and masks for every run. "
             f"GLUE dev: {', '.join(s['glue_tasks']) or 'none'} ({s['finetune_seeds']} fine-tuning seed(s) each).",
             "", "## Arms (mean [95% interval] over pre-training seeds)", "", *arm_table(results), "",
             "## Found vs baselines (paired by pre-training seed)", "", *contrast_table(results), ""]
    if results["lr_sweep"]:
        lines += ["## Learning-rate sweep (mean training loss of the last fifth of each sweep run)", "",
                  "| arm | " + " | ".join(f"lr {r['lr']:g}" for r in next(iter(results['lr_sweep'].values())))
                  + " | chosen |", "|---|" + "---|" * (1 + len(s["lrs"]))]
        for arm, rows in results["lr_sweep"].items():
            chosen = next(a["lr"] for a in results["arms"] if a["name"] == arm)
            lines.append(f"| {arm} | " + " | ".join(number(r["score"]) for r in rows) + f" | {chosen:g} |")
        lines.append("")
    lines += ["## Genotypes", ""]
    for arm in results["arms"]:
        lines += [f"- **{arm['name']}** ({arm['kind']}, {arm['source']}): id `{arm['genotype_id']}`"
                  + (f", search fitness {arm['search_fitness']:.4f}" if arm["search_fitness"] is not None else "")
                  + (f", re-scored held-out loss {arm['rescored_loss']:.4f}" if arm["rescored_loss"] is not None
                     else "")]
    lines.append("")
    lines += ["## What this can and cannot show", "", results["caveat"], ""]
    return "\n".join(lines) + "\n"


def caveat(seeds: int, steps: int, document_disjoint: bool) -> str:
    parts = []
    if seeds < 2:
        parts.append("One pre-training seed gives no interval and no test: a difference here may be seed noise "
                     "(the search benchmark measured seed-to-seed spreads of several hundredths of a nat at "
                     "tiny size).")
    else:
        parts.append(f"Intervals and tests are over {seeds} pre-training seeds; the Holm correction covers the "
                     "contrasts of one endpoint.")
    parts.append(f"{steps} pre-training steps rank architectures at this budget only; a longer budget may reorder "
                 "them (check that 2× the budget keeps the order before trusting a ranking).")
    if not document_disjoint:
        parts.append("The held-out blocks come from the training corpus's own documents.")
    return " ".join(parts)


def plot(results: Mapping[str, Any], curves: Mapping[str, Mapping[int, list[tuple[int, float]]]],
         out: Path) -> list[str]:
    """`loss_curves.png` (training loss per arm, mean over seeds) and `scores.png` (bars with intervals);
    the written file names (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, by_seed in curves.items():
        steps = sorted({s for points in by_seed.values() for s, _ in points})
        means = [statistics.fmean(loss for points in by_seed.values() for s, loss in points if s == step)
                 for step in steps]
        ax.plot(steps, means, label=arm)
    ax.set_xlabel("step")
    ax.set_ylabel("training MLM loss (mean over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=120)
    plt.close(fig)
    arms_summary = results["analysis"]["arms"]
    endpoints = list(next(iter(arms_summary.values())))
    fig, axes = plt.subplots(1, len(endpoints), figsize=(3.2 * len(endpoints), 3.6), squeeze=False)
    names = list(arms_summary)
    for ax, endpoint in zip(axes[0], endpoints, strict=True):
        entries = [arms_summary[n][endpoint] for n in names]
        means = [e["mean"] for e in entries]
        errors = [[e["mean"] - e["low"] if e["low"] is not None else 0 for e in entries],
                  [e["high"] - e["mean"] if e["high"] is not None else 0 for e in entries]]
        ax.bar(range(len(names)), means, yerr=errors, capsize=4)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(endpoint)
        if means:
            spread = max(means) - min(means)
            ax.set_ylim(min(means) - spread - 0.05 * abs(min(means)), max(means) + spread + 0.05 * abs(max(means)))
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=120)
    plt.close(fig)
    return ["loss_curves.png", "scores.png"]
