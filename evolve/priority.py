"""Operation priority (OP-NAS): an upper-confidence bound per choice decides what mutations draw.

Every choice a mutation makes from the language is a *decision* of one kind (`DECISIONS`): the mutation type,
the op (replace-op, insert-node, and the ops of a graph a flip samples), the conv type, kernel and dilation,
and the layer kind a flip turns a layer into (attention or conv). Each kind keeps its own table
(`OperationPriority`): for each option i, N_i (how many evaluated children chose it) and the sum of their
raw rewards. With N = Σ N_i over the kind and μ_i the option's mean reward normalised to [0, 1] by the lowest
and highest raw rewards the kind has seen (an affine map, so it commutes with the mean), the priority is

    u_i = μ_i + c · √(2 ln N / N_i)        (UCB1; an option never chosen has u_i = +∞)

and options are drawn with probabilities softmax(u / temperature) over the options that fit; while some
fitting option has never been chosen, only unseen ones are drawn (uniformly). The raw reward of a child is
its fitness (`reward: fitness`) or its fitness minus its parent's recorded fitness (`reward: improvement`);
a failed child gets the lowest raw reward seen.

Common random numbers (`Chooser`): every decision kind, and the loop's own draws (tournaments, initial
population, random samples, the site of an edit), reads its own seeded stream derived from (search seed,
stream name), and every decision consumes exactly one uniform number u and picks by inverse CDF over its
weights. Regularized evolution (`Chooser`: uniform weights) and OP (`PriorityChooser`) with the same seed
therefore make the same choice wherever the priority's weights are uniform, and differ only where a
priority changed a choice (`Chooser.diverted` counts those). Statistics and streams are saved in the
search state.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .settings import REWARDS

T = TypeVar("T")

DECISIONS = ("mutation", "op", "conv-type", "kernel", "dilation", "layer-kind")
"""The decision kinds a mutation makes from the language, each with its own statistics and stream."""
LOOP_STREAMS = ("tournament", "initial", "sample", "site", "graph")
"""The loop's own draws: tournaments, the initial population, random search's samples, where an edit applies
(layer, node, path, operands), and the structure of a graph a flip samples."""
STREAMS = DECISIONS + LOOP_STREAMS
LAYER_KINDS = ("attention", "conv")


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
        self.sums.update({op: float(total) for op, total in data["sums"].items() if op in self.sums})
        self.low, self.high = data["low"], data["high"]


class UniformOps:
    """The baseline policy of regularized evolution: every fitting op equally likely."""

    def weights(self, ops: Sequence[str]) -> None:
        return None


def stream_seed(seed: int, name: str) -> int:
    """The seed of stream `name` of a search seeded `seed` (independent of every other stream)."""
    return int.from_bytes(hashlib.sha256(f"abz-search:{seed}:{name}".encode()).digest()[:8], "big")


def pick(u: float, n: int, weights: Sequence[float] | None = None) -> int:
    """The index that the uniform number `u` in [0, 1) selects among `n` options, by inverse CDF over
    `weights` (None or all equal: uniform, `int(u * n)`)."""
    if weights is None or all(w == weights[0] for w in weights):
        return min(int(u * n), n - 1)
    total = sum(weights)
    target, acc, last = u * total, 0.0, 0
    for i, w in enumerate(weights):
        if w > 0:
            acc += w
            last = i
            if target < acc:
                return i
    return last


class Chooser:
    """Draws every decision of a search from per-kind seeded streams; uniform over the options (regularized
    evolution and random search). `PriorityChooser` weights the draws by the priority tables."""

    def __init__(self, seed: int, rng: random.Random | None = None) -> None:
        self.streams = {name: rng or random.Random(stream_seed(seed, name)) for name in STREAMS}
        """Stream name → its generator (one shared generator for all when `rng` is given, e.g. in tests)."""
        self.diverted: Counter[str] = Counter()
        """Draws per decision kind where the weights picked another option than a uniform draw would have."""

    def rng(self, name: str) -> random.Random:
        return self.streams[name]

    def weights(self, kind: str, labels: Sequence[str]) -> list[float] | None:
        """Draw weights over the options (None = uniform)."""
        return None

    def choose(self, kind: str, options: Sequence[T]) -> T:
        """One of `options` (non-empty) for decision `kind`: one uniform number of the kind's stream, picked by
        inverse CDF over the weights (the option labels are `str(option)`)."""
        u = self.streams[kind].random()
        weights = self.weights(kind, [str(o) for o in options])
        index = pick(u, len(options), weights)
        if index != pick(u, len(options)):
            self.diverted[kind] += 1
        return options[index]

    def op_weights(self, ops: Sequence[str]) -> list[float] | None:
        """Weights for a whole sampled graph's ops (None = uniform): see `PriorityChooser`."""
        return None

    def credit(self, choices: Sequence[Sequence[str]], raw: float | None) -> None:
        """Credit the (kind, option) choices of one evaluated child with its raw reward (uniform: nothing)."""

    def to_json(self) -> dict[str, Any]:
        return {"streams": {name: rng_to_json(rng) for name, rng in self.streams.items()},
                "diverted": dict(self.diverted), "tables": {}}

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Restore the streams and counters saved by `to_json`."""
        for name, state in data["streams"].items():
            if name in self.streams:
                self.streams[name].setstate(rng_state(state))
        self.diverted = Counter({k: int(v) for k, v in data["diverted"].items()})


class PriorityChooser(Chooser):
    """OP-NAS: each decision kind draws by its UCB table (`OperationPriority`), options labelled `str(option)`."""

    def __init__(self, seed: int, options: Mapping[str, Sequence[str]], *, c: float = 0.5,
                 temperature: float = 0.1, reward: str = "fitness", rng: random.Random | None = None) -> None:
        super().__init__(seed, rng)
        self.tables = {kind: OperationPriority(options.get(kind, ()), c=c, temperature=temperature, reward=reward)
                       for kind in DECISIONS}

    def weights(self, kind: str, labels: Sequence[str]) -> list[float] | None:
        return self.tables[kind].weights(labels)

    def op_weights(self, ops: Sequence[str]) -> list[float] | None:
        """A whole graph needs several ops, and unseen-first weights (0 for seen ops) may leave too few to build
        one: the op table's weights mixed half and half with uniform (None while they are uniform)."""
        weights = self.tables["op"].weights(ops)
        total = sum(weights)
        mixed = [0.5 / len(ops) + 0.5 * w / total for w in weights]
        return None if all(w == mixed[0] for w in mixed) else mixed

    def credit(self, choices: Sequence[Sequence[str]], raw: float | None) -> None:
        by_kind: dict[str, list[str]] = {}
        for kind, option in choices:
            by_kind.setdefault(kind, []).append(option)
        for kind, options in by_kind.items():
            if kind in self.tables:
                self.tables[kind].credit(options, raw)

    def raw_reward(self, fitness: float | None, parent_fitness: float | None) -> float | None:
        return self.tables["op"].raw_reward(fitness, parent_fitness)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "tables": {kind: t.to_json() for kind, t in self.tables.items()}}

    def load_json(self, data: Mapping[str, Any]) -> None:
        super().load_json(data)
        for kind, table in data["tables"].items():
            if kind in self.tables:
                self.tables[kind].load_json(table)


def rng_to_json(rng: random.Random) -> list[Any]:
    """A generator's state as JSON: [version, internal state, gauss]."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_state(data: Sequence[Any]) -> tuple[Any, ...]:
    """The `random.Random.setstate` argument of a state saved by `rng_to_json`."""
    return (data[0], tuple(data[1]), data[2])
