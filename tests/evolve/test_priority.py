"""Operation priority: the UCB value, unseen ops first, softmax with a temperature, saved statistics, the
op weights reaching the one sampler (grammar/sampler.py), a table per decision kind steering its draws,
common random numbers shared with uniform evolution, and the improvement reward."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest

from autobert_zero.errors import LanguageError
from autobert_zero.evolve import Search, SyntheticFitness
from autobert_zero.evolve.mutations import Mutation, Mutator
from autobert_zero.evolve.priority import DECISIONS, Chooser, OperationPriority, PriorityChooser, UniformOps
from autobert_zero.evolve.search import decision_options, raw_reward
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.grammar import default_language, load_genotype, sample_graph
from tests.support.paths import GENOTYPES

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


# --- every decision kind, common random numbers, state ------------------------------------------------


@pytest.mark.parametrize("kind", DECISIONS)
def test_each_decision_kind_is_steered_by_its_own_table(kind: str) -> None:
    options = ["a", "b", "c", "d"]
    chooser = PriorityChooser(0, {kind: options})
    chooser.credit([(kind, "a"), (kind, "b"), (kind, "d")], 0.0)
    chooser.credit([(kind, "c")], 1.0)
    steered = Counter(chooser.choose(kind, options) for _ in range(300))
    baseline = Chooser(0)
    uniform = Counter(baseline.choose(kind, options) for _ in range(300))
    assert steered["c"] > 250 and uniform["c"] < 120
    other = next(k for k in DECISIONS if k != kind)  # another kind's table is untouched: uniform there
    assert chooser.weights(other, options) == [1.0] * 4


def test_a_rewarded_kernel_is_drawn_more_often_by_conv_kernel_mutations() -> None:
    language = default_language()
    mutator = Mutator(language, [Mutation.CONV_KERNEL])
    figure7 = load_genotype(GENOTYPES / "autobert_zero.abz").canonical()
    options = decision_options(language, list(Mutation))
    chooser = PriorityChooser(1, options)
    for kernel in options["kernel"]:
        chooser.credit([("kernel", kernel)], 1.0 if kernel == "7" else 0.0)

    def sevens(c: Chooser) -> int:
        children = [mutator.mutate(figure7, c) for _ in range(200)]
        return sum(child.choices[-1] == ("kernel", "7") for child in children)

    assert sevens(chooser) > 3 * sevens(Chooser(1)) and chooser.diverted["kernel"] > 0


def test_op_and_evolution_share_their_draws_until_a_priority_changes_one() -> None:
    language = default_language()
    mutator = Mutator(language)
    parent = load_genotype(GENOTYPES / "autobert_zero.abz").canonical()
    op, uniform = PriorityChooser(5, decision_options(language, list(Mutation))), Chooser(5)
    # untrained tables are uniform: the same children, draw for draw, and no draw diverted
    assert [mutator.mutate(parent, op).genotype.id for _ in range(20)] == \
        [mutator.mutate(parent, uniform).genotype.id for _ in range(20)]
    assert not op.diverted
    # the loop's own streams are the same too
    assert op.rng("tournament").random() == uniform.rng("tournament").random()


def test_chooser_state_round_trips_and_continues_the_same_draws() -> None:
    options = {"op": list(OPS)}
    chooser = PriorityChooser(3, options)
    chooser.credit([("op", "neg"), ("mutation", "replace-op")], 0.5)
    chooser.choose("op", list(OPS))
    restored = PriorityChooser(3, options)
    restored.load_json(json.loads(json.dumps(chooser.to_json())))
    assert restored.to_json() == chooser.to_json()
    assert [restored.choose("op", list(OPS)) for _ in range(10)] == [chooser.choose("op", list(OPS)) for _ in range(10)]


def test_improvement_reward_is_taken_from_the_parent_recorded_fitness() -> None:
    config = SearchSettings(evaluations=60, population_size=6, tournament_size=3, fitness="synthetic",
                            reward="improvement")
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=4)
    search.run()
    fitness = {}
    for line in search.history:
        fitness.setdefault(line.id, line.fitness)
    children = [line for line in search.history if line.parent is not None]
    expected = sum(line.fitness - fitness[line.parent] for line in children)
    chooser = search.chooser
    assert isinstance(chooser, PriorityChooser)
    table = chooser.tables["mutation"]  # every child credits exactly one mutation type
    assert sum(table.counts.values()) == len(children)
    assert sum(table.sums.values()) == pytest.approx(expected)
    assert raw_reward("improvement", 2.5, 2.0) == pytest.approx(0.5) and raw_reward("fitness", 2.5, 2.0) == 2.5
