"""The ranking audit's candidate sets.

Drawn (the default): vanilla BERT, Figure 7, mutated neighbours of Figure 7, random genotypes. All have the
supernet's layer count (hidden size and heads come from the config), so size confounding is limited to what the
layers themselves change. The two shipped genotypes are 12 layers; at another depth vanilla BERT repeats its
one graph and Figure 7 repeats its 12-layer pattern from the start (cut or cycled), which is exact only at 12
layers. Neighbours are one small edit away from Figure 7 (replace one op, change one conv kernel or type, flip
one layer), made by the search's own `Mutator` (`evolve/mutations.py`), so close pairs are in the set; they
form one sibling group (`Candidate.group` "figure7"). Random ones come from the seeded sampler. The set is a
pure function of (layer count, size, seed, neighbour count): each kind draws from its own `random.Random`
keyed by the seed.

From search histories: see `train/audit/from_search.py` (top decile, sibling groups, uniform).

Exposure control (`exposure_cluster`): N one-edit mutants of a weak genotype (BERT in the drawn set, the
weakest `ok` genotype of the histories otherwise), kind "exposure", one group; a caller can over-represent
them in a supernet's training population, and the report measures how far each estimator lifts their rank.

Candidates are distinct by canonical id and by function (the Evaluator's `genotype_fingerprint`, so none is
scored as a duplicate), and every one validates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from autobert_zero.config.paths import shipped_file, shipped_names
from autobert_zero.errors import ConfigError, LanguageError
from autobert_zero.evolve.mutations import Mutation, Mutator
from autobert_zero.grammar import (
    Genotype,
    Language,
    canonicalize,
    current_language,
    load_genotype,
    sample_genotype,
    validate,
)
from autobert_zero.train.evaluate import genotype_fingerprint

MIN_CANDIDATES = 4
"""Fewest candidates an audit accepts: the two shipped genotypes, one neighbour and one random one."""
NEIGHBOUR_MUTATIONS = (Mutation.REPLACE_OP, Mutation.CONV_KERNEL, Mutation.CONV_TYPE, Mutation.FLIP_LAYER)
MAX_DRAWS = 50
"""Draws per wanted candidate before giving up on finding a new distinct one."""


@dataclass(frozen=True)
class Candidate:
    """One audit candidate and where it came from."""

    name: str
    """Short label: `bert`, `figure7`, `neighbour-3`, `random-7`, `top-2`, `sibling-1.3`, `exposure-4`."""
    kind: str
    """"bert", "figure7", "neighbour", "random"; from a search "top", "sibling" or "uniform"; "exposure"."""
    genotype: Genotype
    detail: str
    """How it was made (for a neighbour: the edit, in words; from a search: the history line)."""
    group: str | None = None
    """Sibling group: candidates one edit from the same parent (the parent's id or name); None when in none."""
    fitness: float | None = None
    """The search's fitness of a candidate drawn from a history (None otherwise)."""

    @property
    def id(self) -> str:
        return self.genotype.id


def at_depth(genotype: Genotype, num_layers: int) -> Genotype:
    """`genotype` with its layer pattern repeated or cut to `num_layers` layers (canonical form)."""
    layers = tuple(genotype.layers[i % genotype.num_layers] for i in range(num_layers))
    return canonicalize(Genotype(genotype.graphs, layers))


def shipped(name: str, num_layers: int) -> Genotype:
    """A shipped genotype (`genotypes/<name>.abz` of the package, never a file of that name in the working
    directory) at `num_layers` layers."""
    path = shipped_file(f"genotypes/{name}.abz")
    if path is None:
        raise ConfigError(f"no shipped genotype genotypes/{name}.abz; expected one of {shipped_names('genotypes')}")
    return at_depth(load_genotype(path), num_layers)


def neighbour_count(count: int, neighbours: int | None) -> int:
    """How many neighbours of Figure 7 a set of `count` holds (default count // 3); refuses bad counts."""
    if count < MIN_CANDIDATES:
        raise ConfigError(f"--candidates {count}: an audit needs at least {MIN_CANDIDATES} candidates (vanilla "
                          f"BERT, Figure 7, a neighbour and a random genotype); use 16 or more for a useful τ")
    wanted = count // 3 if neighbours is None else neighbours
    if not 1 <= wanted <= count - 3:
        raise ConfigError(f"audit.neighbours = {wanted}: expected 1..{count - 3} with {count} candidates "
                          f"(two shipped genotypes and at least one random one take the other places)")
    return wanted


class Distinct:
    """A growing list of candidates distinct by id and by functional fingerprint (`add` refuses a repeat)."""

    def __init__(self, language: Language, existing: Iterable[Candidate] = ()) -> None:
        self.language = language
        self.chosen: list[Candidate] = []
        self.ids: set[str] = set()
        self.fingerprints: set[str] = set()
        for candidate in existing:
            self.ids.add(candidate.id)
            self.fingerprints.add(genotype_fingerprint(candidate.genotype))

    def add(self, candidate: Candidate) -> bool:
        key = genotype_fingerprint(candidate.genotype)
        if candidate.id in self.ids or key in self.fingerprints:
            return False
        assert not validate(candidate.genotype, self.language)
        self.ids.add(candidate.id)
        self.fingerprints.add(key)
        self.chosen.append(candidate)
        return True


def candidate_set(num_layers: int, count: int, seed: int = 0, *, neighbours: int | None = None,
                  language: Language | None = None) -> list[Candidate]:
    """`count` distinct valid candidates: BERT, Figure 7, `neighbours` (default count // 3) edits of Figure 7
    and random genotypes for the rest."""
    language = language or current_language()
    wanted = neighbour_count(count, neighbours)
    if num_layers < 1:
        raise ConfigError(f"the supernet has {num_layers} layers; expected at least 1")
    distinct = Distinct(language)
    chosen, add = distinct.chosen, distinct.add
    bert = shipped("bert", num_layers)
    figure7 = shipped("autobert_zero", num_layers)
    add(Candidate("bert", "bert", bert, f"genotypes/bert.abz at {num_layers} layers"))
    add(Candidate("figure7", "figure7", figure7, f"genotypes/autobert_zero.abz at {num_layers} layers"))
    mutator = Mutator(language, NEIGHBOUR_MUTATIONS)
    rng = random.Random(f"audit-neighbours-{seed}")
    _fill(chosen, len(chosen) + wanted, "neighbours of Figure 7",
          lambda i: _neighbour(mutator, figure7, rng, i, "neighbour", "figure7"), add)
    rng_random = random.Random(f"audit-random-{seed}")
    _fill(chosen, count, "random genotypes",
          lambda i: Candidate(f"random-{i}", "random", sample_genotype(rng_random, num_layers, language=language),
                              "grammar.sample_genotype"), add)
    return chosen


MIN_EXPOSURE = 3
"""Fewest members of an exposure cluster (a group needs 3 for its within-group τ)."""
MAX_EXPOSURE = 100


def exposure_cluster(base: Genotype, size: int, seed: int, *, label: str, existing: Iterable[Candidate] = (),
                     language: Language | None = None) -> list[Candidate]:
    """`size` distinct one-edit mutants of `base` (a weak genotype, named `label`), none equal to a candidate
    of `existing` (by id or function): kind "exposure", one group."""
    if not MIN_EXPOSURE <= size <= MAX_EXPOSURE:
        raise ConfigError(f"--exposure-control {size}: expected {MIN_EXPOSURE} to {MAX_EXPOSURE} mutants (a cluster "
                          f"of fewer than {MIN_EXPOSURE} has no within-group τ)")
    language = language or current_language()
    distinct = Distinct(language, existing)
    mutator = Mutator(language, NEIGHBOUR_MUTATIONS)
    rng = random.Random(f"audit-exposure-{seed}")
    group = f"exposure:{label}"
    _fill(distinct.chosen, size, f"mutants of {label}",
          lambda i: _neighbour(mutator, base, rng, i, "exposure", group, f" of {label}"), distinct.add)
    return distinct.chosen


def _neighbour(mutator: Mutator, parent: Genotype, rng: random.Random, index: int, kind: str, group: str,
               suffix: str = "") -> Candidate:
    child = mutator.mutate(parent, rng)
    return Candidate(f"{kind}-{index}", kind, child.genotype, f"{child.mutation.value}: {child.detail}{suffix}",
                     group=group)


def _fill(chosen: list[Candidate], until: int, what: str, draw: Callable[[int], Candidate],
          add: Callable[[Candidate], bool]) -> None:
    index, draws = 1, 0
    while len(chosen) < until:
        draws += 1
        if draws > MAX_DRAWS * until:
            raise LanguageError(f"found only {len(chosen)} distinct candidates after {draws} draws of {what}; "
                                f"the language may be too narrow for {until} distinct genotypes")
        if add(draw(index)):
            index += 1
