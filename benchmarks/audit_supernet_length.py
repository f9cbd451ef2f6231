"""Does a longer-trained supernet rank the search's candidates better? BIWS k = 0 per supernet, paired.

Reads two audits of the same candidates and reference (`audit-e2e.json`: 2,000-step supernets seed 2 and seed 0;
`audit-e2e-long.json`: the seed-0 supernet trained 6,000 steps; hypothesis H5 in
`results/audit-e2e/PREREGISTRATION.md`), takes each supernet's BIWS k = 0 row, and gives every audit figure per
supernet with its bootstrap 95% interval, and the longer supernet minus each 2,000-step one as a paired difference
on the same candidate resamples (the audit's own `stats` functions, 1,000 resamples, seed 0). Writes
`results/audit-supernet-length.json` and prints the table.

    python -m benchmarks.audit_supernet_length
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from autobert_zero.io import atomic_write_text
from autobert_zero.train.audit.stats import distribution, figure_functions, paired_difference, resamples
from benchmarks.report import RESULTS, commit, machine

FIGURES = ("kendall_tau", "top_half_tau", "top_quarter_tau", "sibling_tau", "precision_at_5", "regret_at_1",
           "regret_at_5")


def rows_of(audit: dict[str, Any], estimator: str = "biws_k0") -> dict[str, list[float]]:
    """{supernet folder: the estimator's scores in candidate order} (a failed score ranks last)."""
    rows: dict[str, list[float]] = {}
    for s, folder in enumerate(audit["supernet_dirs"]):
        rows[folder] = []
        for c in audit["candidates"]:
            outcome = (c.get("scores_by_supernet", {}).get(estimator) or [c["scores"][estimator]])[s]
            score = outcome["score"] if isinstance(outcome, dict) else outcome
            rows[folder].append(-np.inf if score is None else float(score))
    return rows


def compare(short: dict[str, Any], long: dict[str, Any], samples: int = 1000) -> dict[str, Any]:
    """Every figure of each supernet's BIWS k = 0 row, and each long row − each short row, paired."""
    if [c["id"] for c in short["candidates"]] != [c["id"] for c in long["candidates"]]:
        raise SystemExit("error: the two audits rank different candidates (or in another order)")
    if short["reference"]["seeds"] != long["reference"]["seeds"] or short["config_hash"] != long["config_hash"]:
        raise SystemExit("error: the two audits have different references")
    scored = [i for i, c in enumerate(short["candidates"]) if c["reference"]["score"] is not None]  # as the audit
    reference = [short["candidates"][i]["reference"]["score"] for i in scored]
    figures = figure_functions([short["candidates"][i]["group"] for i in scored])
    plan = resamples(len(reference), samples=samples, seed=0)
    rows = {folder: [row[i] for i in scored] for folder, row in {**rows_of(short), **rows_of(long)}.items()}
    spread = {folder: {f: distribution(figures[f], row, reference, plan) for f in FIGURES if f in figures}
              for folder, row in rows.items()}
    per_supernet = {folder: {f: d.interval().to_json() for f, d in dists.items()} for folder, dists in spread.items()}
    differences = {f"{a} - {b}": {f: paired_difference(spread[a][f], spread[b][f]).to_json() for f in spread[a]}
                   for a in long["supernet_dirs"] for b in short["supernet_dirs"]}
    return {"estimator": "biws_k0", "candidates": len(reference), "bootstrap": {"samples": samples, "seed": 0,
                                                                               "resamples": "candidates"},
            "supernets": per_supernet, "differences": differences}


def label(name: str) -> str:
    """A supernet folder's last part, or "long − short" for a paired difference of two folders."""
    return " − ".join(Path(part).name for part in name.split(" - "))


def table(result: dict[str, Any]) -> str:
    def cell(x: dict[str, Any]) -> str:
        return "—" if x.get("value") is None else f"{x['value']:+.2f} [{x['low']:+.2f}, {x['high']:+.2f}]"

    present = [f for f in FIGURES if f in next(iter(result["supernets"].values()))]
    lines = [" | ".join(["BIWS k = 0 on", *present])]
    lines += [" | ".join([label(name), *(cell(figs[f]) for f in present)])
              for name, figs in {**result["supernets"], **result["differences"]}.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", default=str(RESULTS / "audit-e2e.json"))
    parser.add_argument("--long", default=str(RESULTS / "audit-e2e-long.json"))
    args = parser.parse_args()
    short, long = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (args.short, args.long))
    result = compare(short, long)
    payload = {"benchmark": "audit_supernet_length", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(), "commit": commit(), "inputs": [args.short, args.long], **result}
    atomic_write_text(RESULTS / "audit-supernet-length.json", json.dumps(payload, indent=1) + "\n")
    print(table(result))
    print(f"\nwrote {RESULTS / 'audit-supernet-length.json'}")


if __name__ == "__main__":
    main()
