"""Exploratory (not pre-registered): does the end-to-end retrain's lr grid hold back any arm?

    OMP_NUM_THREADS=1 python -m benchmarks.bench_lr_edge [--lrs 4e-3 8e-3] [--arms bert ...]

Why: in the retrain's pre-registered sweep over {5e-4, 1e-3, 2e-3} every arm chose the largest lr, so each
arm's best lr may lie above the grid. That matters most for BERT, whose sweep score at 2e-3 (6.62) is still
near the unigram plateau where the attention-free and searched arms are already at 6.04-6.34: if BERT leaves
the plateau at a larger lr, the retrain's "found vs BERT" contrast is partly an lr artefact.

HYPOTHESES (written before any run of this script):
- H1: BERT's sweep score stays above 6.45 (on the plateau) at 4e-3 and at 8e-3: its 2,000-step deficit is
  not an artefact of the grid's top.
- H2: for every arm, 4e-3 scores within 0.1 nats of 2e-3 or worse (the grid's top is near each optimum).
Either way the pre-registered retrain stays as it is; this only tells how to read it.

Each run is the retrain's own sweep run (`Runner.sweep`, 500 steps at seed 0, warm-up scaled, scored by the
mean training loss of its last fifth) with the arms (genotype and FFN width) of the retrain's record
`benchmarks/results/end-to-end/retrain/retrain.json`. Writes `benchmarks/results/end-to-end/lr-edge.json`
with the grid's committed scores beside the new ones, and keeps each run's small files under
`benchmarks/results/end-to-end/lr-edge/runs/` (resumable: a finished run is read back).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from autobert_zero.io import atomic_write_text
from benchmarks.bench_end_to_end import LRS, RESULTS, RUNS, SWEEP_STEPS, Mirror, retrain_config, say
from benchmarks.report import commit, print_table

RECORD = RESULTS / "retrain" / "retrain.json"
OUT = RUNS / "lr-edge"
KEPT = RESULTS / "lr-edge"


def arms_of_record(cfg: Any, prepared: Any) -> list[Any]:
    """The retrain's arms, sized again from its record; refused if the sizes no longer match it."""
    from autobert_zero.train.retrain.arms import equal_size, recorded_candidates

    record = json.loads(RECORD.read_text(encoding="utf-8"))
    arms = equal_size(recorded_candidates(record), cfg, len(prepared(cfg.seed).tokenizer))
    recorded = {a["name"]: a["intermediate_size"] for a in record["arms"]}
    if any(recorded[arm.name] != arm.intermediate_size for arm in arms):
        raise SystemExit(f"the arms' FFN widths differ from {RECORD}: {recorded}")
    return arms


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[4e-3, 8e-3])
    parser.add_argument("--arms", nargs="+", default=None, help="arm names (default: every arm of the retrain)")
    args = parser.parse_args(argv)
    from autobert_zero.train.retrain import RetrainSettings
    from autobert_zero.train.retrain.runs import Runner, lr_tag, mlm_data_by_seed, sweep_score

    cfg = retrain_config(2000)
    prepared = mlm_data_by_seed(cfg)
    arms = [a for a in arms_of_record(cfg, prepared) if args.arms is None or a.name in args.arms]
    settings = RetrainSettings(seeds=1, lrs=tuple(args.lrs), sweep_steps=SWEEP_STEPS, glue_tasks=(),
                               glue_data_dir="", finetune_seeds=1, finetune_lrs=(1e-3,), select_examples=1)
    with Mirror(OUT, KEPT):  # finished runs kept from an earlier machine are read back, not trained again
        new = Runner(cfg, arms, settings, OUT, prepared, say).sweep()
    grid = {arm.name: {lr: sweep_score(RESULTS / "retrain" / "runs" / arm.name / f"sweep-{lr_tag(lr)}")
                       for lr in LRS} for arm in arms}
    rows = {arm: {**{f"{lr:g}": s for lr, s in grid[arm].items()}, **{f"{r['lr']:g}": r["score"] for r in new[arm]}}
            for arm in grid}
    lrs = list(next(iter(rows.values())))
    print_table("lr sweep, 500 steps at seed 0: mean training loss of the last fifth (grid + beyond it)",
                ["arm", *lrs], [[arm, *(scores[lr] for lr in lrs)] for arm, scores in rows.items()])
    out: dict[str, Any] = {"commit": commit(), "sweep_steps": SWEEP_STEPS, "scores": rows,
                           "best": {arm: min((s, float(lr)) for lr, s in scores.items() if s is not None)[1]
                                    for arm, scores in rows.items()}}
    atomic_write_text(RESULTS / "lr-edge.json", json.dumps(out, indent=1))
    say(f"wrote {RESULTS / 'lr-edge.json'}")


if __name__ == "__main__":
    main()
