"""The aging population of regularized evolution: a queue of evaluated members, oldest first.

A new member joins at the young end; when the queue is over its size, the oldest leaves whatever its
fitness (aging, not elitism). Parents are picked by tournament: `k` members drawn without replacement,
the fittest wins (on ties the older one).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .history import HistoryLine


@dataclass(frozen=True)
class Member:
    """One evaluated genotype in the population."""

    id: str
    genotype: str
    """The genotype text (canonical)."""
    fitness: float
    index: int
    """Its line in the history (0-based)."""


class AgingPopulation:
    """At most `size` members; the oldest leaves when a new one joins."""

    def __init__(self, size: int, members: list[Member] | None = None) -> None:
        self.size = size
        self.members: deque[Member] = deque(members or [], maxlen=size)

    def add(self, member: Member) -> None:
        self.members.append(member)  # deque(maxlen) drops the oldest

    def tournament(self, rng: random.Random, k: int) -> Member:
        """The fittest of `k` members drawn without replacement (ties: the older)."""
        if not self.members:
            raise ValueError("tournament on an empty population")
        drawn = sorted(rng.sample(range(len(self.members)), min(k, len(self.members))))
        return max((self.members[i] for i in drawn), key=lambda m: m.fitness)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def to_json(self) -> list[list[Any]]:
        """[id, fitness, history index] per member, oldest first (the text is in the history line)."""
        return [[m.id, m.fitness, m.index] for m in self.members]

    @classmethod
    def from_json(cls, size: int, data: list[list[Any]], history: Sequence[HistoryLine]) -> AgingPopulation:
        return cls(size, [Member(id, history[index].genotype, fitness, index) for id, fitness, index in data])
