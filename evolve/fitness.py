"""What the search asks of a fitness, and a deterministic pure-python stand-in for tests and benchmarks.

A fitness object has `.evaluate(genotypes) -> results`, one result per genotype in order, each with
`.id`, `.score` (higher is better), `.status` (`ok`, `failed` or `duplicate` — the latter when the fitness
recognised a functional duplicate of a genotype it scored before; `.score` is then that genotype's score),
`.reason`, `.params` and `.flops_per_token`. It may have `.adapt(population, steps)` (train shared weights on
the live population between rounds) and `.chunk_size` (how many candidates to pass per call; 1 = after every
candidate the search state is saved). The BIWS evaluator of `autobert_zero.train` is the real one.

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
from typing import Protocol

from autobert_zero.grammar import AttentionLayer, ConvLayer, Genotype, Language, default_language, infer_shapes


class Result(Protocol):
    id: str
    score: float | None
    status: str
    reason: str
    params: int | None
    flops_per_token: float | None


class Fitness(Protocol):
    def evaluate(self, genotypes: Sequence[Genotype]) -> Sequence[Result]: ...


@dataclass(frozen=True)
class FitnessResult:
    """A plain result record (the shape `Result` asks for)."""

    id: str
    score: float | None
    status: str = "ok"
    reason: str = ""
    params: int | None = None
    flops_per_token: float | None = None


class SyntheticFitness:
    """Deterministic, cheap scores with a hidden optimum (see the module docstring)."""

    def __init__(self, seed: int = 0, language: Language | None = None, *, hidden: int = 64,
                 seq_len: int = 64, noise: float = 0.02) -> None:
        self.language = language or default_language()
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
