"""The search's settings (`search:` section of a config, `abz search`): strategy, budget, search space, fitness.

A plain dataclass: `evolve` reads it and never imports `train` or the config loader. Value constraints are
declared in the annotations with `annotated_types` (bounds) and `Literal` (choices); the config loader
(`autobert_zero/config/load.py`) enforces them when it reads YAML, so a search built from a loaded config
sees only valid values. Code that builds `SearchSettings(...)` by hand gets no checks beyond its type checker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, get_args

from annotated_types import Ge, Gt, Le, MinLen

BIG = 10**9
"""Upper bound of step and example counts: far beyond any run, far below what breaks arithmetic."""
MAX_LAYERS = 256
"""= `grammar.language.MAX_LAYERS` (not imported: this module stays a plain dataclass; a test keeps them equal)."""

SearchStrategy = Literal["op", "evolution", "random"]
"""`op`: mutations draw ops by operation priority; `evolution`: uniformly; `random`: the sampler only."""
SEARCH_STRATEGIES: tuple[str, ...] = get_args(SearchStrategy)

Reward = Literal["fitness", "improvement"]
"""What a child's ops are credited with: its fitness, or its improvement over its parent."""
REWARDS: tuple[str, ...] = get_args(Reward)

AdaptStrategy = Literal["population", "fair"]
"""How supernet adaptation draws from the live population (as `supernet.strategy` population / fair)."""

FitnessKind = Literal["evaluate", "synthetic", "halving"]
"""`evaluate`: the candidate evaluator; `synthetic`: a deterministic pure-python stand-in; `halving`: the
evaluator as rung 0 of asynchronous successive halving (scratch runs of growing budget for the best)."""
FITNESSES: tuple[str, ...] = get_args(FitnessKind)

MutationName = Literal["replace-op", "insert-node", "delete-node", "rewire-operand", "conv-type", "conv-kernel",
                       "conv-dilation", "flip-layer", "copy-layer"]
"""The values of `evolve.mutations.Mutation` (a test keeps the two equal)."""


@dataclass
class SearchSettings:
    """The OP-NAS search (`abz search`): strategy, budget, search space and fitness."""

    strategy: SearchStrategy = "op"
    """`op` (operation priority), `evolution` (regularized evolution, uniform op choice) or `random`."""
    evaluations: Annotated[int, Gt(0), Le(BIG)] = 200
    """Budget: candidates evaluated in all (the initial population included, duplicates included)."""
    population_size: Annotated[int, Gt(0), Le(10**6)] = 16
    """P: members of the aging population (and size of the initial population)."""
    tournament_size: Annotated[int, Gt(0), Le(10**6)] = 4
    """S: members drawn per tournament; the fittest becomes the parent."""
    round_size: Annotated[int, Gt(0), Le(10**6)] = 1
    """Children made per round from the same population (split across processes under a launcher)."""
    seed_genotypes: list[str] = field(default_factory=list)
    """Genotype files put first into the initial population (the sampler fills the rest)."""
    num_layers: Annotated[int, Gt(0), Le(MAX_LAYERS)] | None = None
    """Layers of every candidate; null = the layer count of `genotype`."""
    conv_probability: Annotated[float, Ge(0), Le(1)] = 0.5
    """Share of conv layers in sampled genotypes (initial population, random search); 1 = attention-free."""
    ops: Annotated[list[str], MinLen(1)] | None = None
    """Ops mutations and the sampler may use; null = every op of the language."""
    conv_types: Annotated[list[str], MinLen(1)] | None = None
    """Conv block types allowed; null = all (light, depthwise, sepconv)."""
    kernels: Annotated[list[int], MinLen(1)] | None = None
    """Conv kernel sizes allowed; null = all of the language."""
    dilations: Annotated[list[int], MinLen(1)] | None = None
    """Conv dilations allowed; null = all of the language."""
    max_nodes: Annotated[int, Gt(0), Le(1024)] | None = None
    """Largest attention graph (op nodes); null = the language's limit."""
    mutations: Annotated[list[MutationName], MinLen(1)] | None = None
    """Mutation types enabled (names as in evolve/mutations.py, e.g. replace-op); null = all."""
    priority_c: Annotated[float, Ge(0), Le(1e6)] = 0.5
    """c of the priority u_i = μ_i + c·√(2 ln N / N_i): weight of exploration."""
    priority_temperature: Annotated[float, Gt(0), Le(1e6)] = 0.1
    """Temperature of the softmax over priorities (small = greedy)."""
    reward: Reward = "fitness"
    """Reward credited to the ops of a child: `fitness` or `improvement` (over the parent)."""
    max_params: Annotated[int, Gt(0), Le(10**15)] | None = None
    """Candidates with more parameters are recorded but never join the population; null = no limit."""
    max_flops_per_token: Annotated[float, Gt(0), Le(1e18)] | None = None
    """Same for forward FLOPs per token; null = no limit."""
    adapt_steps: Annotated[int, Ge(0), Le(BIG)] = 0
    """Supernet training steps on the live population between rounds (BIWS fitness); 0 = off."""
    adapt_strategy: AdaptStrategy = "population"
    """How adaptation draws from the live population: `population` (uniformly) or `fair` (weights that give
    every layer choice the same exposure, as `supernet.strategy: fair`)."""
    fitness: FitnessKind = "evaluate"
    """`evaluate`: the candidate evaluator with the `evaluate:` section (estimator scratch or biws);
    `synthetic`: a deterministic pure-python stand-in (tests, loop benchmarks; not a model-quality measure);
    `halving`: asynchronous successive halving (`train/promotion.py`): the `evaluate:` estimator is rung 0, and
    a candidate among the best 1/`halving_eta` of a rung so far is trained from scratch for the next budget of
    `halving_steps`; its fitness is 1000 × scratch rungs completed + its score at the last one."""
    halving_steps: list[Annotated[int, Gt(0), Le(BIG)]] = field(default_factory=list)
    """For `fitness: halving` (required there, non-empty): the scratch budgets (MLM steps) of rungs 1, 2, ...,
    strictly increasing; each run warms up a tenth of its budget, then decays linearly to 0."""
    halving_eta: Annotated[int, Ge(2), Le(BIG)] = 3
    """For `fitness: halving`: a candidate goes on to the next rung when its score is among the best
    floor(n / eta) of the n scores that rung holds so far (n ≥ eta)."""
    supernet: str | None = None
    """Folder of a trained supernet (`abz supernet --out`), needed by `evaluate.estimator: biws`."""
    candidate_timeout_s: Annotated[float, Gt(0), Le(1e9)] | None = None
    """Seconds the `evaluate` fitness may spend on one candidate (building it, its training steps, its held-out
    loss); one that takes longer is recorded `failed` ("timed out after N s") and the search goes on. Checked
    before every training step and before the held-out loss, so a straggler stops within one step of the
    limit; under a launcher each rank checks its own candidates. null = no limit. Wall time is not
    reproducible: with a limit the history may differ between runs (a resume keeps what the history holds)."""
