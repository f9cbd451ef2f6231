"""Operation priority (OP-NAS): an upper-confidence bound per op decides which ops mutations draw.

Each op i keeps N_i (how many evaluated children it was chosen for) and the sum of their raw rewards.
With N = Σ N_i and μ_i the op's mean reward normalised to [0, 1] by the lowest and highest raw rewards
seen so far (an affine map, so it commutes with the mean), the priority is

    u_i = μ_i + c · √(2 ln N / N_i)        (UCB1; an op never chosen has u_i = +∞)

and ops are drawn with probabilities softmax(u / temperature) over the candidates that fit; while some
candidate has never been chosen, only unseen candidates are drawn (uniformly). The raw reward of a child is
its fitness (`reward: fitness`) or its fitness minus its parent's (`reward: improvement`); a failed child
gets the lowest raw reward seen. The statistics are plain numbers, saved in the search state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .settings import REWARDS


class OperationPriority:
    """Per-op UCB statistics and the softmax weights they give (an `OpPolicy` for the mutator)."""

    def __init__(self, ops: Sequence[str], *, c: float = 0.5, temperature: float = 0.1,
                 reward: str = "fitness") -> None:
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.ops = tuple(ops)
        self.c = c
        self.temperature = temperature
        self.reward = reward
        self.counts: dict[str, int] = dict.fromkeys(self.ops, 0)
        self.sums: dict[str, float] = dict.fromkeys(self.ops, 0.0)
        self.low: float | None = None
        self.high: float | None = None

    def raw_reward(self, fitness: float | None, parent_fitness: float | None) -> float | None:
        """The raw reward of a child (None for a failed child)."""
        if fitness is None:
            return None
        if self.reward == "improvement":
            return fitness - (parent_fitness if parent_fitness is not None else fitness)
        return fitness

    def credit(self, ops: Sequence[str], raw: float | None) -> None:
        """Count one evaluated child for each op in `ops` with raw reward `raw` (None = failed)."""
        if raw is not None:
            self.low = raw if self.low is None else min(self.low, raw)
            self.high = raw if self.high is None else max(self.high, raw)
        value = raw if raw is not None else (self.low if self.low is not None else 0.0)
        for op in ops:
            if op in self.counts:
                self.counts[op] += 1
                self.sums[op] += value

    def mean(self, op: str) -> float:
        """μ_i: the op's mean reward normalised to [0, 1] (0.5 while all rewards are equal)."""
        count = self.counts[op]
        if not count:
            return 0.0
        mean = self.sums[op] / count
        if self.low is None or self.high is None or self.high <= self.low:
            return 0.5
        return (mean - self.low) / (self.high - self.low)

    def priorities(self) -> dict[str, float]:
        """u_i for every op (+∞ for ops never chosen)."""
        total = sum(self.counts.values())
        return {op: (self.mean(op) + self.c * math.sqrt(2 * math.log(total) / n)) if n else math.inf
                for op, n in self.counts.items()}

    def weights(self, ops: Sequence[str]) -> list[float]:
        """Draw weights over `ops`: uniform over unseen ones if any, else softmax(u / temperature)."""
        u = self.priorities()
        values = [u.get(op, math.inf) for op in ops]
        if any(math.isinf(v) for v in values):
            return [1.0 if math.isinf(v) else 0.0 for v in values]
        top = max(values)
        return [math.exp((v - top) / self.temperature) for v in values]

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "sums": self.sums, "low": self.low, "high": self.high}

    def load_json(self, data: dict[str, Any]) -> None:
        """Restore statistics saved by `to_json` (ops the language no longer has are dropped)."""
        self.counts.update({op: int(n) for op, n in data["counts"].items() if op in self.counts})
        self.sums.update({op: float(s) for op, s in data["sums"].items() if op in self.sums})
        self.low, self.high = data["low"], data["high"]


class UniformOps:
    """The baseline policy of regularized evolution: every fitting op equally likely."""

    def weights(self, ops: Sequence[str]) -> None:
        return None
