"""Is the audit's reference a full budget? The audit's candidates trained longer, and every audit re-scored.

Runs (or finds in the reference cache) scratch training of the audit's candidates at `--reference-steps`
(default: twice the config's `audit.reference_steps`) for `--seeds` (default seed 0 only), through the
audit's own `reference_runs`, so the runs are cached beside the audit's and a later
`bench_audit --reference-steps N` reuses them. (This is how the 1,500-step reference was found short:
3,000 steps reordered it, τ 0.53 between the two, and `configs/audit.yaml` now uses 3,000.)
Then prints, for each given audit JSON, the Kendall τ of
every estimator's stored scores against this longer reference, and τ between the audit's own reference and
it. Writes benchmarks/results/reference_budget.json.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_reference_budget \
        benchmarks/results/audit-24-*.json --reference-steps 3000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from autobert_zero.io import atomic_write_text
from autobert_zero.train.audit.candidates import candidate_set
from autobert_zero.train.audit.run import EvaluatorBackend, reference_cache, reference_runs
from autobert_zero.train.audit.stats import kendall_tau
from benchmarks.bench_audit import given_words, real_text_config, reference_warmup
from benchmarks.report import RESULTS, commit, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audits", nargs="+", help="audit JSON files of one candidate set (bench_audit results)")
    parser.add_argument("--config", default="configs/audit.yaml")
    parser.add_argument("--reference-steps", type=int, help="default: twice the config's audit.reference_steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache", default="runs/audit-cache", help="reference cache folder (shared with the audit)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--tag", default="", help="results go to reference_budget-TAG.json")
    parser.add_argument("--backwards", action="store_true",
                        help="run the missing runs last first: a second process beside a forward one, sharing "
                             "the cache, meets it halfway")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="train and score only these candidates (names as in the audit JSON, e.g. figure7)")
    args = parser.parse_args()

    reports = {Path(p).stem: json.loads(Path(p).read_text(encoding="utf-8")) for p in args.audits}
    first = next(iter(reports.values()))
    count = len(first["candidates"])
    cfg = real_text_config(args.config)
    if args.reference_steps is None:
        args.reference_steps = 2 * cfg.audit.reference_steps
    cfg.audit = dataclasses.replace(cfg.audit, reference_steps=args.reference_steps, reference_seeds=args.seeds,
                                    reference_warmup_steps=reference_warmup(cfg, args.reference_steps),
                                    cache_dir=args.cache)
    backend = EvaluatorBackend(None, cfg, True)
    candidates = candidate_set(backend.num_layers, count, cfg.seed, neighbours=cfg.audit.neighbours)
    if [c.id for c in candidates] != [c["id"] for c in first["candidates"]]:
        raise SystemExit(f"{args.audits[0]}: its candidates are not the {count} that {args.config} draws")
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in candidates})
        if unknown:
            raise SystemExit(f"--only: no candidate named {', '.join(unknown)} in {args.audits[0]}; "
                             f"expected names such as {', '.join(c.name for c in candidates[:3])}")
        candidates = [c for c in candidates if c.name in args.only]
        count = len(candidates)
    cache = reference_cache(cfg, backend.prepared.tokenizer)
    t0 = time.perf_counter()
    runs = reference_runs(backend, candidates, cfg, cache, True, backwards=args.backwards)
    longer = np.mean([[o.score for o in runs[s]] for s in args.seeds], axis=0)
    ceiling = (kendall_tau([o.score for o in runs[args.seeds[0]]], [o.score for o in runs[args.seeds[1]]])
               if len(args.seeds) >= 2 else None)  # seed vs seed at the longer budget

    rows: dict[str, dict[str, Any]] = {}
    for name, report in reports.items():
        by_id = {c["id"]: c for c in report["candidates"]}
        cands = [by_id[c.id] for c in candidates]
        row = {"audit_reference_vs_longer": kendall_tau([c["reference"]["score"] for c in cands], list(longer))}
        for estimator in report["estimators"]:
            scores = [c["scores"][estimator]["score"] for c in cands]
            row[estimator] = None if None in scores else kendall_tau(scores, list(longer))
        rows[name] = row
    if ceiling is not None:
        print(f"\nnoise ceiling at {args.reference_steps} steps (τ seed {args.seeds[0]} vs seed {args.seeds[1]}): "
              f"{ceiling:+.2f}")
    estimators = list(next(iter(rows.values())))
    print(f"\nKendall τ against scratch training of {args.reference_steps} steps (seeds {args.seeds}), "
          f"{count} candidates")
    print("| estimator | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for estimator in estimators:
        cells = [f"{rows[r][estimator]:+.2f}" if rows[r].get(estimator) is not None else "" for r in rows]
        print(f"| {estimator} | " + " | ".join(cells) + " |")
    per_candidate = [{"name": c.name, "kind": c.kind, "id": c.id,
                      "longer_reference": {str(s): runs[s][i].eval_loss for s in args.seeds}}
                     for i, c in enumerate(candidates)]
    payload = {"benchmark": "reference_budget", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
               "commit": commit(),
               "command": "python -m benchmarks.bench_reference_budget " + " ".join(given_words(args, parser)),
               "reference_steps": args.reference_steps, "seeds": args.seeds, "only": args.only,
               "noise_ceiling_tau": ceiling,
               "audit_reference_steps": first.get("reference", {}).get("steps"),
               "seconds_this_run": round(time.perf_counter() - t0, 1), "kendall_tau": rows,
               "candidates": per_candidate}
    out = Path(args.results) / (f"reference_budget-{args.tag}.json" if args.tag else "reference_budget.json")
    atomic_write_text(out, json.dumps(payload, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
