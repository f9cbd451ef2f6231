"""autobert_zero.evolve — OP-NAS: the search over genotypes (imports no torch, transformers or deepspeed).

Files in data-flow order: `settings` (the `search:` section of a config), `mutations` (the closed set of
edits on the IR), `priority` (operation priority: UCB statistics → op weights), `population` (the aging
population and tournaments), `history` (the record: one typed line per evaluated candidate, and its status),
`fitness` (what the search asks of a fitness, and a pure-python stand-in), `state` (state.json +
history.jsonl, exact resume), `search` (the loop: op / evolution / random), `report` (report.md and plots),
`export` (best genotypes as .abz files). The command line lives in `autobert_zero/cli/search.py`.
"""

from .fitness import Fitness, FitnessResult, Result, SyntheticFitness
from .history import SCORED, HistoryLine, Status, best_line, best_lines
from .mutations import Child, Mutation, Mutator, Rejection
from .population import AgingPopulation, Member
from .priority import OperationPriority, UniformOps
from .search import Progress, Search, search_space
from .settings import SEARCH_STRATEGIES, SearchSettings
from .state import StateStore

__all__ = [
    "SCORED", "SEARCH_STRATEGIES", "AgingPopulation", "Child", "Fitness", "FitnessResult", "HistoryLine", "Member",
    "Mutation", "Mutator", "OperationPriority", "Progress", "Rejection", "Result", "Search", "SearchSettings",
    "StateStore", "Status", "SyntheticFitness", "UniformOps", "best_line", "best_lines", "search_space",
]
