"""The fitness objects `abz search` hands to `autobert_zero.evolve` (`search.fitness` picks one).

- `evaluate`: the candidate evaluator of `autobert_zero.train.evaluate` with the config's `evaluate:` section
  — estimator `scratch` (a fresh model trained a few MLM steps) or `biws` (weights inherited from the supernet
  folder `search.supernet`) — scored by minus the held-out MLM loss; `adapt` keeps training the supernet on
  the live population between rounds (`search.adapt_steps`, drawn per `search.adapt_strategy`). Under a
  launcher the Evaluator splits the candidates of each call across the ranks and gathers their results (each
  rank scores its share as one process would: training estimators on an engine of that rank alone), and
  `EvaluatorFitness.chunk_size` hands it a whole round per call, so the history equals the one-process
  history; `adapt` (supernet training) stays data-parallel over all ranks. Not split: a GLUE second stage
  (`evaluate.glue_task`: every rank scores every candidate, the fine-tune data-parallel), and with a size
  prior (`evaluate.size_prior`) one candidate per call as in one process, since a rank combination ranks
  against everything scored so far and so depends on how candidates are grouped into calls.
- `halving`: asynchronous successive halving (`promotion.py`): the `evaluate` fitness as rung 0, scratch runs of
  `search.halving_steps` for the candidates it promotes; one process only, one candidate per call.
- `synthetic`: `evolve.SyntheticFitness`, a deterministic pure-python stand-in (tests, loop benchmarks).
  Under a launcher `RankSplitFitness` splits the candidates of each call across the ranks and gathers the
  results in order through torch.distributed, so every rank's search sees every result and the history
  equals the one-process history.

Under a launcher a search whose rounds are split refuses a `search.round_size` that is not a multiple of
the process count (`check_round_split`: it would leave ranks idle every round; refused, not rounded up, so a
config's history does not depend on the process count). `search.candidate_timeout_s` limits each candidate's
scoring by the Evaluator (`Evaluator.timeout_s`): a straggler is recorded `failed` and the gather goes on.

torch is imported here only when needed, never by `autobert_zero.evolve`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.evolve import Fitness, HistoryLine, Result, Status, SyntheticFitness
from autobert_zero.grammar import Genotype, Language
from autobert_zero.train.promotion import check_promotion, promotion_fitness

if TYPE_CHECKING:
    from autobert_zero.config.schema import Config
    from autobert_zero.train.evaluate import CandidateResult, Evaluator


def build_fitness(cfg: Config, world_size: int = 1, show_progress: bool = False) -> Fitness:
    """The fitness the config's `search.fitness` names (its choices, and `search.adapt_strategy`'s, are the
    config schema's to check). Under a launcher (`world_size` > 1) a fitness that splits each round across
    the ranks refuses a round size they cannot share evenly (`check_round_split`); `halving` refuses a launcher
    and settings it cannot rank under (`check_promotion`)."""
    check_promotion(cfg, world_size)
    check_round_split(cfg, world_size)
    if cfg.search.fitness == "synthetic":
        from autobert_zero.config.language import language_from_config

        fitness = SyntheticFitness(cfg.seed, language_from_config(cfg), hidden=cfg.model.hidden_size,
                                   seq_len=cfg.data.max_seq_length)
        if world_size > 1:
            return RankSplitFitness(fitness, round_chunk(cfg))
        return fitness
    from autobert_zero.train.evaluate import Evaluator

    if cfg.search.adapt_steps and cfg.search.supernet is None:
        raise ConfigError(f"{cfg.source}: search.adapt_steps = {cfg.search.adapt_steps} trains a supernet between "
                          f"rounds; name its folder in search.supernet (from `abz supernet --out`), or set "
                          f"adapt_steps: 0")
    evaluator = Evaluator(cfg, cfg.search.supernet, show_progress=show_progress,
                          candidate_timeout_s=cfg.search.candidate_timeout_s)
    if cfg.search.fitness == "halving":
        return promotion_fitness(cfg, EvaluatorFitness(evaluator), evaluator)
    split = evaluator.split and cfg.evaluate.size_prior is None
    return EvaluatorFitness(evaluator, round_chunk(cfg) if split else 1)


def round_chunk(cfg: Config) -> int:
    """Candidates handed over per call when they are split across ranks: a whole round (or the initial
    population, which is larger)."""
    return max(cfg.search.round_size, cfg.search.population_size)


def splits_rounds(cfg: Config, world_size: int) -> bool:
    """Whether the search's fitness deals each round's candidates out over `world_size` ranks: the synthetic
    fitness and the Evaluator do under a launcher, except with a GLUE second stage (every rank scores every
    candidate) or a size prior (one candidate per call); see the module doc. `halving` never does."""
    if world_size <= 1 or cfg.search.fitness == "halving":
        return False
    return cfg.search.fitness == "synthetic" or (cfg.evaluate.glue_task is None and cfg.evaluate.size_prior is None)


def check_round_split(cfg: Config, world_size: int) -> None:
    """Refuse (`ConfigError`) a search that splits its rounds over `world_size` ranks (`splits_rounds`) when
    `search.round_size` is not a multiple of it: some ranks would sit idle in every round. Refused rather
    than rounded up, so that a config's history never depends on how many processes run it (the one-process
    history is the history of every process count that divides the round size). Checked for `abz search`
    and `abz resume` alike, before anything is built; the initial population (`population_size`) is one
    call and may be uneven."""
    size = cfg.search.round_size
    if not splits_rounds(cfg, world_size) or size % world_size == 0:
        return
    up = -(-size // world_size) * world_size
    counts = ", ".join(str(n) for n in [n for n in range(1, min(size, 64) + 1) if size % n == 0][:8])
    raise ConfigError(f"{cfg.source}: search.round_size = {size} does not split evenly over the {world_size} "
                      f"processes of this launcher (each round's candidates are dealt out over them, so every "
                      f"round {world_size - size % world_size} of them would wait idle for the others' last "
                      f"candidate); set search.round_size to a multiple of {world_size} (e.g. {up}) for a new "
                      f"search, or run this one with a process count that divides {size} ({counts}): its "
                      f"history is the same at any of them")


class EvaluatorFitness(Fitness):
    """The Evaluator as the search's fitness. `chunk_size`: how many waiting candidates the search hands over
    per call (1: its state is saved after every candidate; a round when the Evaluator splits them across
    ranks). `remember`: after a resume, the Evaluator takes back the results of the history (`Evaluator.remember`),
    so it recognises the same duplicates."""

    def __init__(self, evaluator: Evaluator, chunk_size: int = 1) -> None:
        self.evaluator = evaluator
        self.chunk_size = chunk_size

    @property
    def supernet_reference(self) -> str | None:
        """The supernet folder of the config (`search.supernet`), which the Evaluator was built with."""
        return self.evaluator.cfg.search.supernet

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[CandidateResult]:
        return list(self.evaluator.evaluate(genotypes))

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        self.evaluator.adapt(population, steps)

    def check(self, space: Language, num_layers: int) -> None:
        self.evaluator.check_space(space, num_layers)

    def data_identity(self) -> dict[str, Any]:
        from autobert_zero.train.checkpoint import vocabulary_sha256

        prepared = self.evaluator.prepared
        held_out = {} if prepared.eval_corpus is None else {"eval_corpus_sha256": prepared.eval_corpus.fingerprint}
        return {"corpus_sha256": prepared.corpus.fingerprint, "vocab_sha256": vocabulary_sha256(prepared.tokenizer),
                **held_out}

    def remember(self, lines: Sequence[HistoryLine]) -> None:
        """The lines the Evaluator answered itself, as the results it holds: `ok`, `over-limit` (which the search
        refused after scoring) and `failed` (a failed candidate's functional twin is its duplicate, as in the
        interrupted run); not duplicates, which are no results of their own. Each with its raw score
        (`raw_score`), which a size prior ranks against."""
        from autobert_zero.train.evaluate import CandidateResult

        self.evaluator.remember(
            CandidateResult(line.id, line.genotype, self.raw_score(line), line.eval_loss, line.params,
                            line.flops_per_token, 0.0, "failed" if line.status == Status.FAILED else "ok",
                            line.reason if line.status == Status.FAILED else "")
            for line in lines if line.status in (Status.OK, Status.OVER_LIMIT, Status.FAILED))

    def raw_score(self, line: HistoryLine) -> float | None:
        """The score the Evaluator gave a line before any rank combination: its fitness, or under a size prior
        (the fitness is then a rank) the GLUE dev score of a second stage, else −eval_loss."""
        if line.status == Status.FAILED or line.fitness is None:
            return None
        ev = self.evaluator.cfg.evaluate
        if ev.size_prior is None:
            return line.fitness
        raw = line.glue_score if ev.glue_task is not None else -line.eval_loss if line.eval_loss is not None else None
        if raw is None:
            raise SearchError(f"history line #{line.index} has a rank score under evaluate.size_prior but no "
                              f"{'glue_score' if ev.glue_task else 'eval_loss'} to rank again; it was not written "
                              f"by this evaluator")
        return raw


class RankSplitFitness(Fitness):
    """Splits each call's candidates across ranks (round-robin) and gathers the results in order."""

    def __init__(self, fitness: Fitness, chunk_size: int) -> None:
        self.fitness, self.chunk_size = fitness, chunk_size

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Result]:
        from autobert_zero.train.engine import round_robin

        return round_robin(list(genotypes), self.fitness.evaluate)
