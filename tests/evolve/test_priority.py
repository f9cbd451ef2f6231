"""Operation priority: the UCB value, unseen ops first, softmax with a temperature, saved statistics, and
the op weights reaching the one sampler (grammar/sampler.py)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from autobert_zero.errors import LanguageError
from autobert_zero.evolve.priority import OperationPriority, UniformOps
from autobert_zero.grammar import default_language, sample_graph

OPS = ("neg", "softmax", "matmul")


def test_unseen_ops_come_first() -> None:
    priority = OperationPriority(OPS)
    assert priority.weights(OPS) == [1.0, 1.0, 1.0]
    priority.credit(["neg"], 1.0)
    assert priority.weights(OPS) == [0.0, 1.0, 1.0]
    assert math.isinf(priority.priorities()["softmax"])


def test_priority_is_the_normalised_mean_plus_the_ucb_term() -> None:
    priority = OperationPriority(OPS, c=0.5)
    for op, reward in (("neg", 1.0), ("neg", 3.0), ("softmax", 0.0), ("matmul", 4.0)):
        priority.credit([op], reward)
    u = priority.priorities()
    # raw rewards span [0, 4]; neg's mean 2 normalises to 0.5; N = 4, N_neg = 2
    assert u["neg"] == pytest.approx(0.5 + 0.5 * math.sqrt(2 * math.log(4) / 2))
    assert u["softmax"] == pytest.approx(0.0 + 0.5 * math.sqrt(2 * math.log(4) / 1))
    assert u["matmul"] == pytest.approx(1.0 + 0.5 * math.sqrt(2 * math.log(4) / 1))


def test_improvement_reward_and_failed_children() -> None:
    priority = OperationPriority(OPS, reward="improvement")
    assert priority.raw_reward(2.5, 2.0) == pytest.approx(0.5)
    assert priority.raw_reward(None, 2.0) is None
    priority.credit(["neg"], -1.0)
    priority.credit(["softmax"], None)  # a failed child counts with the lowest reward seen
    assert priority.counts["softmax"] == 1 and priority.sums["softmax"] == -1.0


def test_temperature_sharpens_the_softmax_and_draws_favour_the_rewarded_op() -> None:
    hot, cold = OperationPriority(OPS, temperature=10.0), OperationPriority(OPS, temperature=0.05)
    for priority in (hot, cold):
        for op, reward in (("neg", 0.0), ("softmax", 0.5), ("matmul", 1.0)):
            priority.credit([op], reward)
    share = {name: p.weights(OPS)[2] / sum(p.weights(OPS)) for name, p in (("hot", hot), ("cold", cold))}
    assert 1 / 3 < share["hot"] < 0.4 and share["cold"] > 0.99
    rng = random.Random(0)
    drawn = Counter(rng.choices(OPS, hot.weights(OPS))[0] for _ in range(3000))
    assert drawn["matmul"] > drawn["neg"] and set(drawn) == set(OPS)  # favoured, yet every op drawn


def test_statistics_round_trip() -> None:
    priority = OperationPriority(OPS)
    priority.credit(["neg", "matmul"], 0.25)
    restored = OperationPriority(OPS)
    restored.load_json(priority.to_json())
    assert restored.priorities() == priority.priorities()
    assert UniformOps().weights(OPS) is None


def test_sampler_draws_ops_by_weight() -> None:
    language = default_language()
    rng = random.Random(3)

    def share_of_add(add_weight: float) -> float:
        weights = {"matmul": 1.0, "transpose": 1.0, "softmax": 1.0, "add": add_weight}  # other ops weigh 0
        drawn = Counter(c.op for _ in range(300) for c in sample_graph(rng, language=language, weights=weights).calls)
        assert set(drawn) == set(weights)  # only weighted ops, eventually all of them
        return drawn["add"] / sum(drawn.values())

    assert share_of_add(5.0) > 1.5 * share_of_add(1.0)
    with pytest.raises(LanguageError, match="positive weight"):
        sample_graph(rng, language=language, weights={"neg": 0.0})
