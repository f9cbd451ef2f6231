"""The search loop: aging evolution with operation priority, and its two baselines, in one loop.

Strategies (`search.strategy`): `op` draws every decision of a mutation (its type, ops, conv type, kernel,
dilation, layer kind) by operation priority; `evolution` draws them uniformly (regularized evolution);
`random` samples every candidate afresh from the sampler. Each kind of draw reads its own seeded stream
(`priority.Chooser`), so the strategies share their random numbers: with the same seed they draw the same
initial population, and OP and evolution make the same choices wherever the priority's weights are uniform.

The loop works in rounds. Round 0 is the initial population (seed genotype files, then samples up to P).
Every later round makes `round_size` children, each from a tournament parent of the current population,
then evaluates them (in chunks of `fitness.chunk_size`, e.g. one chunk per round split across processes),
and only at the end of the round adds them to the population and credits their ops — so the history does
not depend on how a round was split. Between rounds `fitness.adapt(population, adapt_steps)` runs if set;
a resumed run replays those calls (so a supernet trained on the live population is rebuilt exactly, given
a deterministic `adapt`), and `fitness.remember(history lines)` restores what the fitness had in memory since
the last of them (both are `Fitness` hooks that do nothing unless a fitness defines them).

A candidate whose id is already in the history reuses that result (status `duplicate`, no fitness call);
the fitness may also answer `duplicate` for a functional duplicate it recognised. A candidate over
`max_params` / `max_flops_per_token` is recorded with status `over-limit` and never joins the population;
`failed` ones (the fitness says why) do not join either (`history.py`: the statuses, and the line each
candidate leaves). When the last `failure_limit` candidates all failed (a supernet that cannot host them,
missing data), the search stops with a `SearchError` instead of spending its budget; a fitness may also
refuse a search space up front (`Fitness.check`).

Exact resume. The state is saved after every chunk, and a run killed at any moment resumes with exactly
the history the uninterrupted run writes. What makes that a property of the loop rather than luck:

- A candidate *is* its text (the `genotype` of its history line): everything handed to the fitness
  (`evaluate`, `adapt`) and to the mutator is `Search.genotype(text)`, the parse of that text, never the
  object a sampler or mutation produced along the way (a sampled genotype is not canonical: evaluated or
  mutated as drawn, it computes and mutates differently from its parsed text, which is all a resumed run has).
- Everything else the loop decides from comes from the saved state: the RNG, the population, the pending
  round, the operation priorities. The history alone decides duplicates, the failure stop and which `adapt`
  calls were made (`_adapt_calls`: round r > 0 makes one before drawing its candidates, on a non-empty
  population; a finished run's round counter is past its last round, which made none).
- The fitness is asked to be a pure function of (its state after the `adapt` calls so far, the genotype):
  no state carried from one candidate to the next beyond what `remember` hands back (the Evaluator seeds
  every candidate's init, data order and dropout alike and trains a copy; `adapt` seeds its candidates,
  data and dropout by step).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autobert_zero.errors import LanguageError, SearchError
from autobert_zero.grammar import Genotype, Language, parse_genotype, sample_genotype, validate
from autobert_zero.json_files import shorten

from .fitness import Fitness, Result
from .history import SCORED, HistoryLine, Status, best_line
from .mutations import Mutation, Mutator
from .population import AgingPopulation, Member
from .priority import LAYER_KINDS, Chooser, OperationPriority, PriorityChooser
from .settings import SearchSettings
from .state import StateStore

PARENT_TRIES = 20
FAILURES_IN_A_ROW = 10
"""The fewest failed candidates in a row that stop a search (`Search.failure_limit`)."""
FITNESS_STATUSES = (Status.OK, Status.FAILED, Status.DUPLICATE)
"""What a fitness may answer (anything else is recorded as `failed`)."""


def finite(value: float | None) -> float | None:
    """A measurement as a history line holds it: a finite float, or None (a NaN or infinite one is dropped;
    the fitness's reason says what happened)."""
    return float(value) if value is not None and math.isfinite(value) else None


def search_space(config: SearchSettings, language: Language) -> Language:
    """The language narrowed by the config (ops, conv types, kernels, dilations, max_nodes). The choices of
    `strategy`, `reward` and `mutations` are the config schema's to check (`settings.py`); ops, kernels and
    the like are checked here, against the language."""
    try:
        return language.with_limits(max_nodes=config.max_nodes, ops=config.ops, conv_types=config.conv_types,
                                    conv_kernels=config.kernels, conv_dilations=config.dilations)
    except LanguageError as error:
        raise SearchError(f"search config: {error}") from None


def raw_reward(reward: str, fitness: float | None, parent_fitness: float | None) -> float | None:
    """A child's raw reward: its fitness (`fitness`), or its fitness minus its parent's fitness as recorded in
    the history (`improvement`; 0 for a child without a parent); None for a failed child. With `adapt_steps`
    > 0 the parent was scored on earlier supernet weights than the child, so the improvement mixes the edit's
    effect with the supernet's training; with `adapt_steps: 0` both are scored on the same weights."""
    if fitness is None:
        return None
    if reward == "improvement":
        return fitness - (parent_fitness if parent_fitness is not None else fitness)
    return fitness


def decision_options(space: Language, mutations: Sequence[Mutation]) -> dict[str, list[str]]:
    """The option labels of every decision kind in a search space (the rows of its priority tables)."""
    return {"mutation": [m.value for m in mutations], "op": list(space.op_names),
            "conv-type": [str(k) for k in space.conv_types], "kernel": [str(k) for k in space.conv_kernels],
            "dilation": [str(d) for d in space.conv_dilations], "layer-kind": list(LAYER_KINDS)}


@dataclass
class RoundEntry:
    """A candidate of the current round: its genotype, how it was made, and its history line once evaluated."""

    genotype: str
    id: str
    parent: str | None
    parent_fitness: float | None
    mutation: str
    """A `Mutation` value, or `seed` / `sample` for candidates not made by mutation."""
    ops: list[str]
    detail: str
    invalid: int
    """Rejected proposals before this candidate was found."""
    choices: list[list[str]] = field(default_factory=list)
    """The mutation's decisions, [kind, option] (credited by the operation priority at the end of the round)."""
    record: HistoryLine | None = None
    """The history line once evaluated."""

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "ops": list(self.ops), "choices": [list(c) for c in self.choices],
                "record": self.record.to_json() if self.record else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundEntry:
        record = data["record"]
        return cls(**{**data, "record": HistoryLine.from_json(record) if record is not None else None})


@dataclass
class Progress:
    """What a progress display shows after each evaluation."""

    evaluations: int
    budget: int
    best: float | None
    fitness_calls: int
    duplicates: int
    rejections: dict[str, int] = field(default_factory=dict)


class Search:
    """One search run over a state folder (`store`; None = in memory only, e.g. non-primary processes)."""

    def __init__(self, config: SearchSettings, language: Language, fitness: Fitness, *, seed: int, num_layers: int,
                 seeds: Sequence[Genotype] = (), store: StateStore | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.config = config
        self.space = search_space(config, language)
        self.fitness = fitness
        self.store = store
        self.on_progress = on_progress
        self.num_layers = num_layers
        enabled = [m for m in Mutation if config.mutations is None or m.value in config.mutations]
        self.mutator = Mutator(self.space, enabled)
        self.options = decision_options(self.space, enabled)
        """Decision kind → the option labels its priority table keeps."""
        self.seeds = list(seeds)
        for genotype in self.seeds:
            self._check_seed(genotype)
        fitness.check(self.space, num_layers)  # seeds lie in the space, so this covers them too
        # the mutable state, saved after each chunk: the history to history.jsonl, the rest by `state()`
        self.seed = seed
        self.chooser = self._new_chooser(seed)
        self.round = 0
        self.history: list[HistoryLine] = []
        self.population = AgingPopulation(config.population_size)
        self.pending: list[RoundEntry] = []
        self.rejections: Counter[str] = Counter()
        self.fitness_calls = 0
        self.fitness_seconds = 0.0
        """Wall time inside the fitness (in the state, not the history, which stays deterministic)."""
        self.duplicates = 0
        self.supernet: str | None = None
        # caches, not saved: `_known` is rebuilt from the history on restore, `_parsed` refills as texts are parsed
        self._parsed: dict[str, Genotype] = {}
        """genotype text → its parsed genotype."""
        self._known: dict[str, HistoryLine] = {}
        """id → the first history line of that id (the cache duplicates read)."""

    def _new_chooser(self, seed: int) -> Chooser:
        c = self.config
        if c.strategy == "op":
            return PriorityChooser(seed, self.options, c=c.priority_c, temperature=c.priority_temperature,
                                   reward=c.reward)
        return Chooser(seed)

    @property
    def priority(self) -> OperationPriority:
        """The op table of the operation priority (an empty one for the other strategies)."""
        chooser = self.chooser
        if isinstance(chooser, PriorityChooser):
            return chooser.tables["op"]
        return OperationPriority(self.space.op_names)

    @property
    def rng(self) -> random.Random:
        """The tournament stream."""
        return self.chooser.rng("tournament")

    # --- state ------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "round": self.round, "evaluations": len(self.history),
            "config": asdict(self.config), "num_layers": self.num_layers,
            "population": self.population.to_json(), "pending": [c.to_json() for c in self.pending],
            "priority": self.chooser.to_json(), "rejections": dict(self.rejections),
            "fitness_calls": self.fitness_calls, "fitness_seconds": self.fitness_seconds,
            "duplicates": self.duplicates, "supernet": self.supernet,
            "finished": self.finished,
        }

    def restore(self, body: dict[str, Any], history: Sequence[HistoryLine]) -> None:
        """Continue from a saved state (`StateStore.load`); refuses a state saved under other settings."""
        saved = {**body["config"], "num_layers": body["num_layers"]}
        ours = {**asdict(self.config), "num_layers": self.num_layers}
        changed = [f"{key}: {saved.get(key)!r} → {ours.get(key)!r}" for key in sorted(set(saved) | set(ours))
                   if saved.get(key) != ours.get(key) and key != "supernet"]  # by its weights: the state's run
        if changed:
            raise SearchError("the search state was saved under other search settings, so the run cannot continue "
                              "exactly (" + "; ".join(changed) + "); restore the run's config.yaml")
        self.seed, self.round = int(body["seed"]), int(body["round"])
        self.chooser = self._new_chooser(self.seed)
        self.chooser.load_json(body["priority"])
        self.history = list(history)
        self._known = {}
        for line in self.history:
            self._known.setdefault(line.id, line)
        self.population = AgingPopulation.from_json(self.config.population_size, body["population"], self.history)
        self.pending = [RoundEntry.from_json(c) for c in body["pending"]]
        self.rejections = Counter(body["rejections"])
        self.fitness_calls, self.duplicates = int(body["fitness_calls"]), int(body["duplicates"])
        self.fitness_seconds = float(body.get("fitness_seconds", 0.0))
        self.supernet = body["supernet"]
        self._rebuild_fitness_state()

    def _rebuild_fitness_state(self) -> None:
        """Bring a fresh fitness object to where the interrupted run's was: replay the `adapt` calls the run
        made (`_adapt_calls`; the supernet starts from its folder again), then hand it the results it holds in
        memory since the last of them (`fitness.remember`), so that it recognises the same functional
        duplicates."""
        since = 0
        for round_, population in self._adapt_calls():
            self.fitness.adapt([self.genotype(text) for text in population], self.config.adapt_steps)
            since = round_
        self.fitness.remember([line for line in self.history if line.round >= since])

    def _adapt_calls(self) -> list[tuple[int, list[str]]]:
        """(round, population texts oldest first) of every `adapt` call the run has made, read from the history:
        round r > 0 calls it once, before drawing its candidates, on a non-empty population (see `run`). So the
        current round has made its call once its candidates are pending; a finished run's round counter is
        already past its last round, which made none."""
        if not self.config.adapt_steps:
            return []
        last = self.round if self.pending else self.round - 1
        by_round: dict[int, list[str]] = {}
        for line in self.history:
            if line.scored:
                by_round.setdefault(line.round, []).append(line.genotype)
        members: deque[str] = deque(maxlen=self.config.population_size)
        calls = []
        for round_ in range(1, last + 1):
            members.extend(by_round.get(round_ - 1, []))
            if members:
                calls.append((round_, list(members)))
        return calls

    def _save(self, new_lines: list[HistoryLine]) -> None:
        if self.store is not None:
            self.store.save(self.state(), new_lines)

    @property
    def finished(self) -> bool:
        return len(self.history) >= self.config.evaluations and not self.pending

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Run until the budget is spent (or `stop_after` more evaluations); returns the history as the JSON
        objects of history.jsonl (`self.history` holds it as `HistoryLine`s)."""
        target = len(self.history) + stop_after if stop_after is not None else None
        while not self.finished and (target is None or len(self.history) < target):
            if self.pending and all(c.record is not None for c in self.pending):
                self._end_round()
            elif not self.pending:
                # nothing is saved here: from the state saved after the last chunk, a resumed run redoes the
                # end of the round and draws the same children (the RNG state is part of the state)
                if self.round > 0 and self.config.adapt_steps and len(self.population):  # as `_adapt_calls`
                    self.fitness.adapt([self.genotype(m.genotype) for m in self.population], self.config.adapt_steps)
                self.supernet = self.fitness.supernet_reference
                self.pending = self._initial() if self.round == 0 else self._children()
            else:
                self._evaluate_chunk()
        if self.pending and all(c.record is not None for c in self.pending):
            self._end_round()
        if self.finished:
            self._save([])
        return [line.to_json() for line in self.history]

    def _budget_left(self) -> int:
        return self.config.evaluations - len(self.history) - sum(c.record is None for c in self.pending)

    def _initial(self) -> list[RoundEntry]:
        count = min(self.config.population_size, self._budget_left())
        out = [RoundEntry(g.canonical().to_text(), g.id, None, None, "seed", [], g.source_name, 0)
               for g in self.seeds[:count]]
        while len(out) < count:
            out.append(self._sampled())
        return out

    def _sampled(self) -> RoundEntry:
        rng = self.chooser.rng("initial" if self.round == 0 else "sample")
        g = sample_genotype(rng, self.num_layers, language=self.space, conv_probability=self.config.conv_probability)
        return RoundEntry(g.canonical().to_text(), g.id, None, None, "sample", [], "", 0)

    def _children(self) -> list[RoundEntry]:
        out: list[RoundEntry] = []
        for _ in range(min(self.config.round_size, self._budget_left())):
            if self.config.strategy == "random" or not len(self.population):
                out.append(self._sampled())
                continue
            rejected: Counter[str] = Counter()
            for _ in range(PARENT_TRIES):
                parent = self.population.tournament(self.rng, self.config.tournament_size)
                try:
                    child = self.mutator.mutate(self.genotype(parent.genotype), self.chooser, rejected)
                    break
                except SearchError:  # this parent has no valid child in the search space: another tournament
                    rejected["stuck-parent"] += 1
            else:
                raise SearchError(f"{PARENT_TRIES} tournament parents in a row had no valid child; the search space "
                                  f"(search.ops, kernels, dilations, max_nodes, mutations) is too narrow")
            self.rejections.update(rejected)
            out.append(RoundEntry(child.genotype.to_text(), child.genotype.id, parent.id, parent.fitness,
                                  child.mutation.value, list(child.ops), child.detail, sum(rejected.values()),
                                  [list(choice) for choice in child.choices]))
        return out

    def _evaluate_chunk(self) -> None:
        waiting = [c for c in self.pending if c.record is None]
        chunk = waiting[:max(1, self.fitness.chunk_size)]
        fresh = [c for c in chunk if c.id not in self._known]
        unique = list({c.id: c for c in fresh}.values())
        results: dict[str, Result] = {}
        if unique:
            genotypes = [self.genotype(c.genotype) for c in unique]
            started = time.perf_counter()
            try:
                answers = list(self.fitness.evaluate(genotypes))
            except Exception as error:
                raise SearchError(f"the fitness raised {type(error).__name__}: {error} while evaluating "
                                  f"{len(genotypes)} candidate(s) (first {unique[0].id[:12]}); the search state "
                                  f"before them is saved — fix the cause and run `abz resume`") from error
            if len(answers) != len(unique):
                raise SearchError(f"the fitness returned {len(answers)} results for {len(unique)} genotypes")
            self.fitness_calls += len(unique)
            self.fitness_seconds += time.perf_counter() - started
            results = {c.id: r for c, r in zip(unique, answers, strict=True)}
        new_lines = []
        for candidate in chunk:
            index = len(self.history)
            if candidate.id in self._known:
                record = self._duplicate(candidate, self._known[candidate.id], index)
            else:
                record = self._record(candidate, results[candidate.id], index)
                self._known[candidate.id] = record
            candidate.record = record
            self.history.append(record)
            new_lines.append(record)
        self._save(new_lines)
        if self.on_progress is not None:
            self.on_progress(self.progress())
        self._stop_on_failures()

    def _stop_on_failures(self) -> None:
        """Stop (state saved) when the last `failure_limit` candidates all failed: a cause that fails every
        candidate (a supernet that cannot host them, missing data) would otherwise spend the whole budget."""
        limit = self.failure_limit
        recent = self.history[-limit:]
        if len(recent) < limit or any(line.status != Status.FAILED for line in recent):
            return
        reasons = Counter(line.reason for line in recent).most_common(2)
        shown = "; ".join(f"{shorten(reason, 200)} ({count}×)" for reason, count in reasons)
        raise SearchError(f"the last {limit} candidates all failed ({shown}); the search stops instead of spending "
                          f"its budget on failures. Its state is saved: fix the cause and run `abz resume`")

    @property
    def failure_limit(self) -> int:
        """Failed candidates in a row that stop the search: a population's worth, at least `FAILURES_IN_A_ROW`."""
        return max(self.config.population_size, FAILURES_IN_A_ROW)

    def _record(self, candidate: RoundEntry, result: Result, index: int) -> HistoryLine:
        reason = result.reason or ""
        if result.status == Status.DUPLICATE:
            self.duplicates += 1
        if result.status in FITNESS_STATUSES:
            status = Status(result.status)
        else:
            status, reason = Status.FAILED, f"the fitness answered status {result.status!r}; {reason}"
        score = None if status == Status.FAILED or result.score is None else float(result.score)
        if status == Status.OK and score is None:
            status, reason = Status.FAILED, "the fitness gave no score"
        if score is not None and not math.isfinite(score):  # a history line holds finite numbers only
            status, reason, score = Status.FAILED, f"the fitness gave the score {score}", None
        over = self._over_limit(result)
        if over and status != Status.FAILED:
            status, reason = Status.OVER_LIMIT, over
        fidelities = result.fidelity_scores
        if fidelities is not None and not all(math.isfinite(value) for value in fidelities):
            fidelities = None  # a history line holds finite numbers only
        return self._line(candidate, index, score, status, reason, result.params, finite(result.flops_per_token),
                          finite(result.eval_loss), finite(result.glue_score),
                          None if fidelities is None else [float(value) for value in fidelities])

    def _duplicate(self, candidate: RoundEntry, earlier: HistoryLine, index: int) -> HistoryLine:
        self.duplicates += 1
        status = Status.DUPLICATE if earlier.status in SCORED else earlier.status
        return self._line(candidate, index, earlier.fitness, status, f"same id as #{earlier.index}",
                          earlier.params, earlier.flops_per_token, earlier.eval_loss, earlier.glue_score,
                          earlier.fidelity_scores)

    def _over_limit(self, result: Result) -> str:
        c = self.config
        if c.max_params is not None and result.params is not None and result.params > c.max_params:
            return f"params {result.params} > search.max_params {c.max_params}"
        if (c.max_flops_per_token is not None and result.flops_per_token is not None
                and result.flops_per_token > c.max_flops_per_token):
            return f"flops_per_token {result.flops_per_token:.4g} > search.max_flops_per_token {c.max_flops_per_token}"
        return ""

    def _line(self, candidate: RoundEntry, index: int, fitness: float | None, status: Status, reason: str,
              params: int | None, flops: float | None, eval_loss: float | None,
              glue_score: float | None = None, fidelity_scores: list[float] | None = None) -> HistoryLine:
        priority = None
        if self.config.strategy == "op":
            priority = {op: (u if u != float("inf") else None) for op, u in self.priority.priorities().items()}
        return HistoryLine(index=index, round=self.round, id=candidate.id, genotype=candidate.genotype,
                           fitness=fitness, status=status, reason=reason, parent=candidate.parent,
                           mutation=candidate.mutation, ops=list(candidate.ops), detail=candidate.detail,
                           invalid=candidate.invalid, params=params, flops_per_token=flops, eval_loss=eval_loss,
                           priority=priority, glue_score=glue_score, fidelity_scores=fidelity_scores)

    def _end_round(self) -> None:
        for candidate in self.pending:
            record = candidate.record
            assert record is not None
            fitness = record.scored_fitness
            if candidate.choices:
                raw = raw_reward(self.config.reward, fitness, candidate.parent_fitness)
                self.chooser.credit(candidate.choices, raw)
            if fitness is not None:
                self.population.add(Member(candidate.id, candidate.genotype, fitness, record.index))
        self.pending = []
        self.round += 1

    # --- helpers ----------------------------------------------------------------------------------------

    def genotype(self, text: str) -> Genotype:
        """The genotype of a candidate's text (parsed once, in the search space): the one way the loop turns a
        candidate into a genotype, so a resumed run hands the fitness and the mutator what the live run did."""
        genotype = self._parsed.get(text)
        if genotype is None:
            genotype = parse_genotype(text, language=self.space)
            if len(self._parsed) > 4096:
                self._parsed.clear()
            self._parsed[text] = genotype
        return genotype

    def _check_seed(self, genotype: Genotype) -> None:
        if genotype.num_layers != self.num_layers:
            raise SearchError(f"seed genotype {genotype.source_name} has {genotype.num_layers} layers; this search "
                              f"has {self.num_layers} (search.num_layers, or the layers of `genotype`)")
        problems = validate(genotype, self.space)
        if problems:
            raise SearchError(f"seed genotype {genotype.source_name} lies outside the search space (search.ops, "
                              f"kernels, dilations, max_nodes): " + "; ".join(p.message for p in problems[:3]))

    def progress(self) -> Progress:
        best = best_line(self.history)
        return Progress(len(self.history), self.config.evaluations, best.fitness if best is not None else None,
                        self.fitness_calls, self.duplicates, dict(self.rejections))
