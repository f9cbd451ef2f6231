"""What the search asks of a fitness (`Fitness`), and a deterministic pure-python stand-in for tests and benchmarks.

A fitness implements `evaluate(genotypes)`: one `Result` per genotype, in order, each with `.id`, `.score`
(higher is better), `.status` (`ok`, `failed` or `duplicate` — the latter when the fitness recognised a
functional duplicate of a genotype it scored before; `.score` is then that genotype's score), `.reason`,
`.params`, `.flops_per_token`, `.eval_loss`, `.glue_score` and `.fidelity_scores` (the score at each rung of a
multi-fidelity fitness, `search.fitness: halving`) — None where it has none. The other members of `Fitness` are
hooks with defaults that do nothing: `check(space, num_layers)` (refuse up front a search space it cannot
score), and for a fitness that keeps state across calls `adapt(population, steps)`
(train shared weights on the live population between rounds), `remember(lines)` (after a resume, take back the
results the interrupted run's fitness held in memory), `chunk_size` (how many candidates to pass per call; 1 =
the search state is saved after every candidate) and `supernet_reference` (the supernet folder scores are
inherited from, recorded in the state). The candidate evaluator of `autobert_zero.train` is the real one
(`train/fitness.py`).

`SyntheticFitness` is not a model-quality measure: it scores a genotype from hidden per-op and per-kernel
values drawn from a seed, plus bonuses for attention that mixes positions (an L×L node, a softmax over
one) and reads V, so that searches have something to find at no cost. Its
`params` and `flops_per_token` are rough pure-python counts at a fixed width.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from autobert_zero.grammar import AttentionLayer, ConvLayer, Genotype, Language, current_language, infer_shapes

from .history import HistoryLine


class Result(Protocol):
    """What the search reads of one evaluation (`FitnessResult` is the plain record of it)."""

    @property
    def id(self) -> str: ...
    @property
    def score(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def params(self) -> int | None: ...
    @property
    def flops_per_token(self) -> float | None: ...
    @property
    def eval_loss(self) -> float | None: ...
    @property
    def glue_score(self) -> float | None: ...
    @property
    def fidelity_scores(self) -> list[float] | None: ...


@dataclass(frozen=True)
class FitnessResult:
    """A plain result record (the shape `Result` asks for)."""

    id: str
    score: float | None
    status: str = "ok"
    reason: str = ""
    params: int | None = None
    flops_per_token: float | None = None
    eval_loss: float | None = None
    glue_score: float | None = None
    fidelity_scores: list[float] | None = None


class Fitness:
    """The search's fitness: `evaluate` is required; the hooks below default to doing nothing."""

    chunk_size: int = 1
    """How many waiting candidates the search hands over per `evaluate` call (the state is saved after each)."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> Sequence[Result]:
        """One result per genotype, in order (every fitness implements this)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluate")

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        """Between rounds (`search.adapt_steps` > 0): train shared weights `steps` steps on the live population.
        A resumed search replays these calls on the populations the run had."""

    def remember(self, lines: Sequence[HistoryLine]) -> None:
        """After a resume: the history lines since the last `adapt` call (all of them when `adapt_steps` is 0),
        so that the fitness recognises what the interrupted run's fitness held in memory."""

    def check(self, space: Language, num_layers: int) -> None:
        """Before a search starts: raise an `AbzError` naming what to change when this fitness cannot score
        candidates of `space` with `num_layers` layers (e.g. a supernet that hosts other ones), rather than
        fail every candidate."""

    def data_identity(self) -> dict[str, Any]:
        """What the scores depend on beyond the config and the supernet: the hashes of the data and vocabulary
        the fitness reads (a resume refuses a change, naming it); {} for a fitness that reads no data."""
        return {}

    @property
    def supernet_reference(self) -> str | None:
        """The supernet folder the scores come from, recorded in the search state (None: no supernet)."""
        return None


class SyntheticFitness(Fitness):
    """Deterministic, cheap scores with a hidden optimum (see the module docstring)."""

    def __init__(self, seed: int = 0, language: Language | None = None, *, hidden: int = 64,
                 seq_len: int = 64, noise: float = 0.02) -> None:
        self.language = language or current_language()
        rng = random.Random(f"synthetic-fitness-{seed}")
        self.op_value = {op: rng.gauss(0.0, 1.0) for op in self.language.op_names}
        self.kernel_value = {k: rng.gauss(0.0, 0.5) for k in self.language.conv_kernels}
        self.conv_value = {kind: rng.gauss(0.0, 0.3) for kind in self.language.conv_types}
        self.hidden, self.seq_len, self.noise = hidden, seq_len, noise
        self.calls = 0

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        self.calls += len(genotypes)
        return [self._one(g) for g in genotypes]

    def _one(self, genotype: Genotype) -> FitnessResult:
        h, seq = self.hidden, self.seq_len
        scores: list[float] = []
        params = flops = 0.0
        for index, layer in enumerate(genotype.layers):
            if isinstance(layer, AttentionLayer):
                graph = genotype.graph(layer.graph)
                calls = graph.calls
                ops = [c.op for c in calls]
                shapes = infer_shapes(graph, self.language)
                mixes = any(shapes[c] == ("L", "L") for c in calls)  # positions exchange information
                attends = any(c.op == "softmax" and shapes[c] == ("L", "L") for c in calls)
                score = sum(self.op_value.get(op, 0.0) for op in ops) / max(len(ops), 1)
                score += 0.4 * mixes + 0.8 * attends + 0.3 * ("V" in graph.inputs_used) - 0.03 * len(ops)
                projections = (len(graph.inputs_used) + 1) * h * h
                flops += 2 * projections + 2 * len(ops) * seq * h
            else:
                assert isinstance(layer, ConvLayer)
                score = self.kernel_value.get(layer.kernel, 0.0) + self.conv_value.get(layer.kind, 0.0)
                score += 0.1 * (index % 2 == 0)  # a position preference: conv early in each pair
                projections = 3 * h * h + h * layer.kernel
                flops += 2 * projections + 2 * h * layer.kernel
            params += projections + 8 * h * h
            flops += 16 * h * h
            scores.append(score)
        digest = int(hashlib.sha256(genotype.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        fitness = sum(scores) / len(scores) + self.noise * (digest - 0.5)
        return FitnessResult(genotype.id, round(fitness, 9), params=int(params), flops_per_token=float(flops))
