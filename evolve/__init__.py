"""autobert_zero.evolve — OP-NAS: the search over genotypes (imports no torch, transformers or deepspeed).

Files in data-flow order: `mutations` (the closed set of edits on the IR), `priority` (operation priority:
UCB statistics → op weights), `population` (the aging population and tournaments), `fitness` (what the
search asks of a fitness, and a pure-python stand-in), `state` (state.json + history.jsonl, exact resume),
`search` (the loop: op / evolution / random), `report` (report.md and plots), `export` (best genotypes as
.abz files). The command line lives in `autobert_zero/cli_search.py`.
"""

from .fitness import Fitness, FitnessResult, SyntheticFitness
from .mutations import Child, Mutation, Mutator, Rejection
from .population import AgingPopulation, Member
from .priority import OperationPriority, UniformOps
from .search import STRATEGIES, Progress, Search, search_space
from .state import StateStore

__all__ = [
    "STRATEGIES", "AgingPopulation", "Child", "Fitness", "FitnessResult", "Member", "Mutation", "Mutator",
    "OperationPriority", "Progress", "Rejection", "Search", "StateStore", "SyntheticFitness", "UniformOps",
    "search_space",
]
