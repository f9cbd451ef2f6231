"""Side-by-side Markdown table of several ranking audits (one column per `audit*.json`), for the README.

Rows: every estimator of the first audit (BIWS per k, cost-matched scratch, parameters, combinations,
hurdles), then the noise ceiling; cells: Kendall τ with its bootstrap 95% interval. A last column gives the
seconds per candidate and the cost ratio of the first audit.

    python -m benchmarks.audit_table benchmarks/results/audit-24-pop4k-ref3000.json \\
        benchmarks/results/audit-24-pop4k.json --names reference-3000 reference-1500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def interval(figure: dict[str, Any]) -> str:
    value, low, high = figure.get("value"), figure.get("low"), figure.get("high")
    if value is None:
        return "—"
    if low is None or high is None:
        return f"{value:+.2f}"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def markdown(audits: list[dict[str, Any]], names: list[str]) -> str:
    first = audits[0]
    lines = ["| Kendall τ [95% CI] | " + " | ".join(names) + " | s / candidate | cost ratio |",
             "|---" * (len(names) + 3) + "|"]
    for estimator, figures in first["estimators"].items():
        cells = [interval(a["estimators"][estimator]["kendall_tau"]) if estimator in a["estimators"] else "—"
                 for a in audits]
        label = estimator
        if figures.get("kind") == "scratch":
            label = f"{estimator} ({figures['steps']} steps)"
        ratio = figures.get("cost_ratio")
        lines.append(f"| {label} | " + " | ".join(cells) +
                     f" | {figures['seconds_per_candidate']:.2f} | {'' if ratio is None else f'{ratio:.0f}×'} |")
    ceiling = [interval(a["reference"]["noise_ceiling_tau"]) for a in audits]
    ref = first["reference"]
    lines.append("| noise ceiling (seed 0 vs seed 1) | " + " | ".join(ceiling) +
                 f" | {ref['seconds_per_candidate']:.1f} (one reference run) | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audits", nargs="+", help="audit.json files")
    parser.add_argument("--names", nargs="+", help="column names (default: the file names)")
    args = parser.parse_args()
    names = args.names or [Path(p).stem for p in args.audits]
    if len(names) != len(args.audits):
        parser.error(f"{len(args.audits)} audits but {len(names)} names")
    print(markdown([json.loads(Path(p).read_text()) for p in args.audits], names))


if __name__ == "__main__":
    main()
