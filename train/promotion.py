"""Asynchronous successive halving as the search's fitness (`search.fitness: halving`; ASHA, Li et al. 2020).

The audit's successive halving (`audit/halving.py`) ranks a fixed set of candidates; a search sees them one by
one, so here each is promoted, or not, when it arrives. Rung 0 is the `evaluate:` section's estimator
(typically BIWS k = 0); rung r ≥ 1 trains the candidate from scratch for `search.halving_steps[r − 1]` steps
(warm-up a tenth of them, then linear decay to 0; init seed `evaluate.init_seed`, else `seed`) and scores it by
−held-out MLM loss. Every rung keeps the scores it gave, in order. The rule, for each candidate in turn: score it
at rung 0 and append the score to rung 0's list; then, rung r = 0, 1, ...: it goes on to rung r + 1 iff rung r
holds at least eta scores (`search.halving_eta`) and its score is among the best floor(n / eta) of the n there
(ties: the earlier candidate ranks first, so a newcomer must beat an equal score to pass it); its rung r + 1
score is appended there. A candidate is never promoted later, so its result depends on the candidates before
it alone (`chunk_size` 1: in order, the state saved after each).

Its fitness is 1000 × scratch rungs completed + its score at the last one (as the audit's `halving`
estimator: a higher rung ranks above a lower one), eval_loss that rung's, params and FLOPs rung 0's and
`fidelity_scores` its score at each rung completed. Failed at rung 0: failed. A scratch run that fails ends its
promotion (ranked by the rung before; the reason says so). Over `search.max_params` / `max_flops_per_token`
(recorded `over-limit`, never in the population): on no rung list and never promoted. A functional duplicate
(rung 0's Evaluator answers `duplicate`) takes its twin's result and joins no list. `remember` rebuilds the
lists and the results from the history's `fidelity_scores`, so a resumed search goes on exactly. Refused
(`check_promotion`): a supernet trained between rounds (rung-0 scores of different rounds do not compare), a
size prior or GLUE stage at rung 0 (the rungs compare −losses), a launcher (not split across ranks yet).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from autobert_zero.errors import ConfigError
from autobert_zero.evolve import Fitness, FitnessResult, HistoryLine, Result, Status
from autobert_zero.grammar import Genotype, Language
from autobert_zero.train.audit.halving import RUNG, check_rung_budgets, warmup_steps

if TYPE_CHECKING:
    from autobert_zero.config.schema import Config
    from autobert_zero.train.evaluate import CandidateResult, Evaluator


Scratch = Callable[[int, Genotype], Result]
"""(budget in steps, genotype) → the genotype's result after a scratch run of that budget."""


def check_promotion(cfg: Config, world_size: int = 1) -> None:
    """Refuse (`ConfigError`) `search.halving_steps` that are not strictly increasing counts ≥ 1, an eta below
    2, and for `search.fitness: halving` no budgets or a setting it cannot rank under (module docstring)."""
    s, where = cfg.search, cfg.source
    steps = s.halving_steps
    check_rung_budgets(steps, "search.halving_steps", where)
    if s.halving_eta < 2:
        raise ConfigError(f"{where}: search.halving_eta = {s.halving_eta}: expected at least 2 (a candidate goes on "
                          f"when among the best floor(n / eta) of a rung)")
    if s.fitness != "halving":
        return
    if not steps:
        raise ConfigError(f"{where}: search.fitness = 'halving' needs search.halving_steps: expected a non-empty list "
                          f"of strictly increasing scratch budgets (MLM steps of each rung after the first), "
                          f"e.g. [50, 150]")
    if s.adapt_steps:
        raise ConfigError(f"{where}: search.adapt_steps = {s.adapt_steps} with search.fitness = 'halving': rung 0's "
                          f"scores of different rounds would come from different supernet weights, and promotion "
                          f"compares them all; set adapt_steps: 0")
    ev = cfg.evaluate
    if ev.size_prior is not None or ev.glue_task is not None:
        key = "evaluate.size_prior" if ev.size_prior is not None else "evaluate.glue_task"
        raise ConfigError(f"{where}: {key} with search.fitness = 'halving': the rungs rank by −held-out MLM loss; "
                          f"set {key}: null")
    if world_size > 1:
        raise ConfigError(f"{where}: search.fitness = 'halving' does not split its candidates across the "
                          f"{world_size} processes of this launcher (each promotion depends on every score "
                          f"before it); run it in one process")


class ScratchRungs:
    """The scratch runs of rungs ≥ 1: one Evaluator per budget, built on first use, sharing rung 0's prepared
    data and tokenizer (as the audit's `EvaluatorBackend`)."""

    def __init__(self, first: Evaluator) -> None:
        self.first = first
        self.evaluators: dict[int, Evaluator] = {}

    def __call__(self, steps: int, genotype: Genotype) -> CandidateResult:
        from autobert_zero.train.evaluate import Evaluator

        evaluator = self.evaluators.get(steps)
        if evaluator is None:
            cfg = self.first.cfg
            ev = dataclasses.replace(cfg.evaluate, estimator="scratch", steps=steps, warmup_steps=warmup_steps(steps),
                                     init_seed=self.first.init_seed, size_prior=None, glue_task=None)
            evaluator = Evaluator(dataclasses.replace(cfg, evaluate=ev), None, prepared=self.first.prepared,
                                  candidate_timeout_s=self.first.timeout_s, keep_results=False)
            self.evaluators[steps] = evaluator
        (result,) = evaluator.evaluate([genotype])  # every genotype here is new to rung 0: scored afresh
        return result


class PromotionFitness(Fitness):
    """Asynchronous successive halving over `first` (rung 0, e.g. `EvaluatorFitness`) and `scratch` runs of
    `budgets` (module docstring). `limits`: `search.max_params`, `search.max_flops_per_token`."""

    chunk_size = 1

    def __init__(self, first: Fitness, scratch: Scratch, budgets: Sequence[int], eta: int,
                 limits: tuple[int | None, float | None] = (None, None)) -> None:
        self.first, self.scratch, self.budgets, self.eta, self.limits = first, scratch, list(budgets), eta, limits
        self.rungs: list[list[float]] = [[] for _ in range(len(self.budgets) + 1)]
        """The scores each rung gave, in candidate order (rung 0 first)."""
        self.results: dict[str, FitnessResult] = {}
        """Genotype id → its result, for the functional duplicates rung 0 names."""

    @property
    def supernet_reference(self) -> str | None:
        return self.first.supernet_reference

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        self.first.adapt(population, steps)

    def check(self, space: Language, num_layers: int) -> None:
        self.first.check(space, num_layers)

    def data_identity(self) -> dict[str, Any]:
        return self.first.data_identity()

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return [self._one(genotype) for genotype in genotypes]

    def _one(self, genotype: Genotype) -> FitnessResult:
        if genotype.id in self.results:
            return self.results[genotype.id]
        (base,) = self.first.evaluate([genotype])
        if base.status == Status.DUPLICATE:
            twin = self.results.get(getattr(base, "twin", None) or "")  # `CandidateResult.twin`
            if twin is not None:
                return dataclasses.replace(twin, id=genotype.id, status=Status.DUPLICATE, reason=base.reason)
        if base.status not in (Status.OK, Status.DUPLICATE) or base.score is None:
            result = FitnessResult(genotype.id, None, Status.FAILED, base.reason or "no score at rung 0", base.params,
                                   base.flops_per_token)
            self.results[genotype.id] = result
            return result
        scores, loss, note = [float(base.score)], base.eval_loss, ""
        if base.status == Status.OK and not self._over_limit(base):
            self.rungs[0].append(scores[0])
            for rung, steps in enumerate(self.budgets):
                if not self._promoted(rung):
                    break
                run = self.scratch(steps, genotype)
                if run.status != Status.OK or run.score is None:
                    note = f"promoted to rung {rung + 1}, but its scratch run of {steps} steps failed: {run.reason}"
                    break
                scores.append(float(run.score))
                loss = run.eval_loss
                self.rungs[rung + 1].append(scores[-1])
        status = Status.OK if base.status == Status.OK else Status.DUPLICATE  # a twin this fitness holds no result of
        result = FitnessResult(genotype.id, RUNG * (len(scores) - 1) + scores[-1], status, note or base.reason,
                               base.params, base.flops_per_token, loss, fidelity_scores=scores)
        if status == Status.OK:
            self.results[genotype.id] = result
        return result

    def _promoted(self, rung: int) -> bool:
        """Whether the last score of `rung` is among its best floor(n / eta) (earlier scores win ties)."""
        scores = self.rungs[rung]
        keep = len(scores) // self.eta
        return sum(score >= scores[-1] for score in scores[:-1]) < keep

    def _over_limit(self, result: Result) -> bool:
        """Over `search.max_params` / `max_flops_per_token` (as the search decides `over-limit`)."""
        params, flops = self.limits
        return ((params is not None and result.params is not None and result.params > params)
                or (flops is not None and result.flops_per_token is not None and result.flops_per_token > flops))

    def remember(self, lines: Sequence[HistoryLine]) -> None:
        """After a resume: rebuild the rung lists and the results from the lines this fitness answered itself
        (`ok`, `over-limit`, `failed`; an over-limit one is on no list), and hand rung 0 its own scores."""
        own = [line for line in lines if line.status in (Status.OK, Status.OVER_LIMIT, Status.FAILED)]
        first = [dataclasses.replace(line, fitness=line.fidelity_scores[0], eval_loss=-line.fidelity_scores[0])
                 if line.fidelity_scores else line for line in own]
        self.first.remember(first)
        for line in own:
            if line.status == Status.OK and line.fidelity_scores:
                for rung, score in enumerate(line.fidelity_scores):
                    self.rungs[rung].append(score)
            status = Status.FAILED if line.status == Status.FAILED else Status.OK
            reason = "" if line.status == Status.OVER_LIMIT else line.reason  # the search's, not this fitness's
            self.results.setdefault(line.id, FitnessResult(
                line.id, line.fitness, status, reason, line.params, line.flops_per_token, line.eval_loss,
                fidelity_scores=line.fidelity_scores))


def promotion_fitness(cfg: Config, first: Fitness, evaluator: Evaluator) -> PromotionFitness:
    """`search.fitness: halving`: `first` (the `evaluate:` section's fitness around `evaluator`) as rung 0,
    scratch runs of `search.halving_steps` above it."""
    s = cfg.search
    return PromotionFitness(first, ScratchRungs(evaluator), s.halving_steps, s.halving_eta,
                            (s.max_params, s.max_flops_per_token))
