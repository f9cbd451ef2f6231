"""Plots of the end-to-end retrain from its committed per-run files (no run needed), as `abz retrain` draws
them: training loss per arm (mean over pre-training seeds) and the held-out loss per arm with 95% intervals;
once the retrain has finished (its results.json is committed), the GLUE tasks and their average too.

    python -m benchmarks.plot_end_to_end     # writes benchmarks/results/end-to-end/plots/*.png

The retrain writes the same plots beside its results.json when it finishes; these exist so the primary endpoint
can be looked at while GLUE still runs, and on a machine that never ran the retrain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.bench_end_to_end import RESULTS, heldout_by_seed

RETRAIN = RESULTS / "retrain"
PLOTS = RESULTS / "plots"


def scores(retrain: Path, plan: dict[str, Any], heldout: dict[str, dict[int, dict[str, Any]]],
           seeds: list[int]) -> dict[str, Any]:
    """What the bar chart shows: the finished retrain's own analysis (held-out loss, each GLUE task and their
    average) once its results.json exists, else the held-out loss of the `seeds` every arm has finished
    (`heldout`: arm → seed → its heldout.json)."""
    from autobert_zero.train.retrain.report import analyse

    finished = retrain / "results.json"
    if finished.is_file():
        return json.loads(finished.read_text(encoding="utf-8"))
    return {"analysis": analyse(plan["arms"], heldout, {}, seeds)}


def main() -> None:
    from autobert_zero.train.retrain.report import plot
    from autobert_zero.train.retrain.runs import loss_curve

    plan = json.loads((RETRAIN / "retrain.json").read_text(encoding="utf-8"))
    arms = [a["name"] for a in plan["arms"]]
    finished = {arm: heldout_by_seed(RETRAIN, arm) for arm in arms}
    common = sorted(set.intersection(*(set(by_seed) for by_seed in finished.values())))
    if not common:
        raise SystemExit(f"no pre-training seed is finished for every arm under {RETRAIN / 'runs'}")
    heldout = {arm: {s: finished[arm][s] for s in common} for arm in arms}
    curves = {arm: {s: loss_curve(RETRAIN / "runs" / arm / f"seed{s}") for s in common} for arm in arms}
    PLOTS.mkdir(parents=True, exist_ok=True)
    written = plot(scores(RETRAIN, plan, heldout, common), curves, PLOTS)
    print("wrote", ", ".join(str(PLOTS / name) for name in written), f"({len(common)} seeds per arm)")


if __name__ == "__main__":
    main()
