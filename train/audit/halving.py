"""The ranking audit's `halving` estimator: successive halving over fidelities (`audit.halving_steps`).

Rung 0 is BIWS k = 0 on one supernet (so `audit.biws_steps` must hold 0): of the n candidates it scored, the
best ceil(n / eta) by BIWS score (eta = `audit.halving_eta`) go on. Rung r = 1, 2, ... trains each of them from
scratch for `halving_steps[r − 1]` steps (the Evaluator's per-candidate schedule: linear warm-up over
round(steps / 10) steps, then linear decay to 0 at the last step) and scores it by −held-out MLM loss; the best
ceil(m / eta) of its m candidates go on to the next rung, the last rung orders what reached it.

A candidate's score is `RUNG` × (scratch rungs it completed) + its score at the last rung it completed (BIWS for
those pruned at once), so a later rung's candidates rank above those pruned earlier and each rung's are ordered
by that rung's score; its eval_loss is that rung's and its seconds are its BIWS seconds plus those of all its
scratch runs (the estimator's mean cost is the total cost / n). A candidate that BIWS failed on keeps that
failure (it ranks last and is never run); a scratch run that fails does not complete its rung: the candidate is
ranked by the rung before, the failure in its reason.

The caller's `Scratch` runs and caches the scratch runs (`run.halving_runs`: the estimators' seed, per budget);
they do not depend on the supernet, so with several supernets each prunes by its own BIWS row and the runs one
made serve the others.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError
from autobert_zero.train.audit.candidates import Candidate
from autobert_zero.train.audit.report import EstimatorRun, Outcome

RUNG = 1000.0
"""Score offset per completed scratch rung: larger than any held-out MLM loss, so rungs never interleave."""
AXIS = "successive halving: 1000 × rungs passed − held-out loss"

Scratch = Callable[[Sequence[Candidate], int, str], list[Outcome]]
"""(candidates, steps, progress label) → each candidate's scratch outcome after `steps` steps."""


@dataclass(frozen=True)
class Halving:
    """One supernet's successive halving: every candidate's outcome and who was trained at each rung."""

    outcomes: list[Outcome]
    rungs: list[list[int]]
    """Indices of the candidates trained at each scratch rung (in candidate order)."""


def warmup_steps(steps: int) -> int:
    """Warm-up of a rung's scratch runs: a tenth of its budget."""
    return round(steps / 10)


def check_rung_budgets(steps: Sequence[int], key: str, where: str) -> None:
    """Refuse scratch budgets of successive-halving rungs (`key`: the config key that holds them) that are not
    strictly increasing step counts of at least 1 (the audit's and the search's halving alike)."""
    if any(s < 1 for s in steps) or any(b <= s for s, b in itertools.pairwise(steps)):
        raise ConfigError(f"{where}: {key} = {list(steps)}: expected strictly increasing step counts of at least 1 "
                          f"(the scratch budget of each rung, e.g. [50, 150])")


def check_halving(cfg: Config) -> None:
    """Refuse `audit.halving_steps` that are not strictly increasing in [1, `reference_steps`], an
    `audit.halving_eta` below 2, or halving without BIWS k = 0 (its rung 0); nothing to check when off."""
    a = cfg.audit
    if a.halving_eta < 2:
        raise ConfigError(f"{cfg.source}: audit.halving_eta = {a.halving_eta}: expected at least 2 (each rung keeps "
                          f"the best ceil(n / eta) candidates of the one before)")
    steps = a.halving_steps
    if not steps:
        return
    check_rung_budgets(steps, "audit.halving_steps", cfg.source)
    if steps[-1] > a.reference_steps:
        raise ConfigError(f"{cfg.source}: audit.halving_steps = {steps}: expected each at most audit.reference_steps "
                          f"= {a.reference_steps} (no estimator trains longer than the reference)")
    if 0 not in a.biws_steps:
        raise ConfigError(f"{cfg.source}: audit.halving_steps = {steps} needs 0 in audit.biws_steps (BIWS k = 0 is "
                          f"the first rung of successive halving); audit.biws_steps = {a.biws_steps}")


def _best(indices: Sequence[int], scores: dict[int, Outcome], keep: int) -> list[int]:
    """The `keep` best of `indices` by score (ties: the earlier candidate), in candidate order."""
    ranked = sorted(indices, key=lambda i: -float(scores[i].score or 0.0))
    return sorted(ranked[:keep])


def successive_halving(biws: Sequence[Outcome], budgets: Sequence[int], eta: int,
                       scratch: Callable[[Sequence[int], int], list[Outcome]]) -> Halving:
    """Successive halving (module docstring) from each candidate's BIWS k = 0 outcome; `scratch(indices, steps)`
    gives the scratch outcomes of those candidates after `steps` steps."""
    last = {i: o for i, o in enumerate(biws) if o.ok}  # outcome of the last completed rung
    done = dict.fromkeys(last, 0)
    seconds = [o.seconds for o in biws]
    notes = [""] * len(biws)
    alive = _best(list(last), last, math.ceil(len(last) / eta))
    rungs: list[list[int]] = []
    for rung, steps in enumerate(budgets, start=1):
        if not alive:
            break
        rungs.append(alive)
        for i, outcome in zip(alive, scratch(alive, steps), strict=True):
            seconds[i] += outcome.seconds
            if outcome.ok:
                last[i], done[i] = outcome, rung
            else:
                notes[i] = f"scratch {steps} steps {outcome.status}: {outcome.reason}".strip()
        alive = _best([i for i in alive if done[i] == rung], last, math.ceil(len(alive) / eta))
    outcomes = []
    for i, o in enumerate(biws):
        if i not in last:
            outcomes.append(Outcome(None, None, o.seconds, o.status if o.status != "ok" else "failed",
                                    o.reason or "no BIWS k=0 score", o.params, o.flops_per_token))
            continue
        score = RUNG * done[i] + float(last[i].score or 0.0)
        outcomes.append(Outcome(score, last[i].eval_loss, seconds[i], "ok", notes[i], o.params, o.flops_per_token))
    return Halving(outcomes, rungs)


def halving_estimator(candidates: Sequence[Candidate], biws_rows: Sequence[Sequence[Outcome]],
                      budgets: Sequence[int], eta: int, scratch: Scratch) -> EstimatorRun:
    """The `halving` estimator on each supernet's BIWS k = 0 row (`biws_rows`); its meta records the first
    supernet's survivors (candidates trained at each budget)."""
    several = len(biws_rows) > 1
    results = []
    for s, row in enumerate(biws_rows):
        label = f" supernet {s + 1}" if several else ""

        def run(chosen: Sequence[int], steps: int, label: str = label) -> list[Outcome]:
            return scratch([candidates[i] for i in chosen], steps, f"halving {steps} steps{label}")

        results.append(successive_halving(row, budgets, eta, run))
    rows = [h.outcomes for h in results]
    meta = {"kind": "halving", "eta": eta, "steps": list(budgets),
            "survivors": [len(r) for r in results[0].rungs]}
    return EstimatorRun(rows[0], meta, AXIS, replicas=rows if several else (), uses_supernet=True)
