"""Side-by-side Markdown table of several ranking audits (one column per `audit*.json`), for the README.

Rows: every estimator of the first audit (BIWS per k, cost-matched scratch, zero-cost proxies, parameters,
combinations, hurdles), then the noise ceiling; cells: one figure (`--figure`, default Kendall τ; any key of an
estimator's `figures`, e.g. top_quarter_tau, precision_at_5, regret_at_1, exposure_lift) with its bootstrap 95%
interval ("?" marks a top-quarter figure the reference cannot resolve). Audits written before the `figures`
mapping have Kendall τ only. The last columns give the seconds per candidate, the amortised seconds over a
typical search (when recorded) and the cost ratio of the first audit.

    python -m benchmarks.audit_table benchmarks/results/audit-24-pop4k-ref3000.json \\
        benchmarks/results/audit-24-pop4k.json --names reference-3000 reference-1500
    python -m benchmarks.audit_table benchmarks/results/audit-search.json --figure regret_at_5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def interval(figure: dict[str, Any] | None) -> str:
    if not figure or figure.get("value") is None:
        return "—"
    value, low, high = figure.get("value"), figure.get("low"), figure.get("high")
    mark = "?" if figure.get("unresolvable") else ""
    if low is None or high is None:
        return f"{value:+.2f}{mark}"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]{mark}"


def cell(estimator: dict[str, Any], figure: str) -> dict[str, Any] | None:
    """One figure of an estimator: from its `figures` mapping, else (older audits) Kendall τ at the top level."""
    if figure in estimator.get("figures", {}):
        found: dict[str, Any] = estimator["figures"][figure]
        return found
    return estimator.get(figure) if figure == "kendall_tau" else None


def ceiling(audit: dict[str, Any], figure: str) -> dict[str, Any] | None:
    ref = audit["reference"]
    return ref.get("noise_ceiling", {}).get(figure) or (ref["noise_ceiling_tau"] if figure == "kendall_tau" else None)


FIGURE_LABELS = {"kendall_tau": "Kendall τ"}


def markdown(audits: list[dict[str, Any]], names: list[str], figure: str = "kendall_tau") -> str:
    first = audits[0]
    amortised = {estimator: figures.get("cost", {}).get("amortised_seconds_over_search")
                 for estimator, figures in first["estimators"].items()}
    with_amortised = any(v is not None for v in amortised.values())  # audits before the cost mapping have none
    extra = ["s / candidate", *(["amortised s (search)"] if with_amortised else []), "cost ratio"]
    lines = [f"| {FIGURE_LABELS.get(figure, figure)} [95% CI] | " + " | ".join([*names, *extra]) + " |",
             "|---" * (len(names) + 1 + len(extra)) + "|"]
    for estimator, figures in first["estimators"].items():
        cells = [interval(cell(a["estimators"][estimator], figure)) if estimator in a["estimators"] else "—"
                 for a in audits]
        label = estimator
        if figures.get("kind") == "scratch":
            label = f"{estimator} ({figures['steps']} steps)"
        ratio = figures.get("cost_ratio")
        costs = [f"{figures['seconds_per_candidate']:.2f}"]
        if with_amortised:
            value = amortised[estimator]
            costs.append("" if value is None else f"{value:.2f}")
        costs.append("" if ratio is None else f"{ratio:.0f}×")
        lines.append(f"| {label} | " + " | ".join([*cells, *costs]) + " |")
    method = "leave-one-out" if "noise_ceiling" in first["reference"] else "seed 0 vs seed 1"
    ref = first["reference"]
    lines.append(f"| noise ceiling ({method}) | " + " | ".join(interval(ceiling(a, figure)) for a in audits) +
                 f" | {ref['seconds_per_candidate']:.1f} (one reference run) |" + " |" * (len(extra) - 1))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audits", nargs="+", help="audit.json files")
    parser.add_argument("--names", nargs="+", help="column names (default: the file names)")
    parser.add_argument("--figure", default="kendall_tau",
                        help="which figure of each estimator (a key of its `figures`; default kendall_tau)")
    args = parser.parse_args()
    names = args.names or [Path(p).stem for p in args.audits]
    if len(names) != len(args.audits):
        parser.error(f"{len(args.audits)} audits but {len(names)} names")
    print(markdown([json.loads(Path(p).read_text()) for p in args.audits], names, args.figure))


if __name__ == "__main__":
    main()
