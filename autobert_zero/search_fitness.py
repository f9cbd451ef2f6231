"""The fitness objects `abz search` hands to `autobert_zero.evolve` (`search.fitness` picks one).

- `scratch`: each candidate is pre-trained from scratch for `search.fitness_steps` MLM steps on data
  prepared once (`train.pretrain`), and scored by minus its held-out MLM loss. A candidate that cannot be
  built or trained (or whose loss is not finite) is `failed` with the reason; the search goes on.
- `biws`: the supernet evaluator of `autobert_zero.train` (when this installation has it).
- `synthetic`: `evolve.SyntheticFitness`, a deterministic pure-python stand-in (tests, loop benchmarks).

Under a launcher (several processes) `DistributedFitness` splits the candidates of each call across the
ranks and gathers the results through torch.distributed, so every rank's search sees every result in
order and the history equals the one-process history. torch is imported here only when needed, never by
`autobert_zero.evolve`.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autobert_zero.errors import ConfigError
from autobert_zero.evolve import FitnessResult, SyntheticFitness
from autobert_zero.grammar import Genotype

if TYPE_CHECKING:
    from autobert_zero.evolve.fitness import Fitness
    from autobert_zero.train.config_schema import TrainConfig

FITNESSES = ("scratch", "biws", "synthetic")


def build_fitness(cfg: TrainConfig, workdir: Path, world_size: int = 1) -> Fitness:
    """The fitness the config's `search.fitness` names (wrapped for several processes if `world_size` > 1)."""
    kind = cfg.search.fitness
    fitness: Any
    if kind == "synthetic":
        fitness = SyntheticFitness(cfg.seed, hidden=cfg.model.hidden_size, seq_len=cfg.data.max_seq_length)
    elif kind == "scratch":
        if world_size > 1:
            raise ConfigError(f"{cfg.source}: search.fitness = scratch trains each candidate on all processes; "
                              f"run it in one process, or use search.fitness: biws under a launcher")
        fitness = ScratchFitness(cfg, workdir)
    elif kind == "biws":
        try:
            from autobert_zero.train.biws import Evaluator
        except ImportError:
            raise ConfigError(f"{cfg.source}: search.fitness = biws needs the BIWS evaluator "
                              f"(autobert_zero.train.biws.Evaluator), which this installation does not have "
                              f"yet; use search.fitness: scratch") from None
        fitness = Evaluator(cfg)
    else:
        raise ConfigError(f"{cfg.source}: search.fitness = {kind!r}; expected one of {', '.join(FITNESSES)}")
    if world_size > 1:
        chunk = max(cfg.search.round_size, cfg.search.population_size)
        return DistributedFitness(fitness, chunk)
    return fitness


class ScratchFitness:
    """Minus the held-out MLM loss after a short pre-training from scratch (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, workdir: Path) -> None:
        from autobert_zero.train.pretrain import prepare_mlm_data

        steps = cfg.search.fitness_steps
        pretrain = dataclasses.replace(cfg.pretrain, max_steps=steps, warmup_steps=min(cfg.pretrain.warmup_steps,
                                       steps // 10), checkpoint_every=steps, keep_checkpoints=1)
        logging = dataclasses.replace(cfg.logging, progress_bar=False, tensorboard=False)
        self.cfg = dataclasses.replace(cfg, pretrain=pretrain, logging=logging)
        if self.cfg.data.eval_blocks < 1:
            raise ConfigError(f"{cfg.source}: search.fitness = scratch scores held-out MLM loss, so data.eval_blocks "
                              f"must be at least 1, got {cfg.data.eval_blocks}")
        self.workdir = workdir
        self.prepared = prepare_mlm_data(self.cfg)

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return [self._one(g) for g in genotypes]

    def _one(self, genotype: Genotype) -> FitnessResult:
        from autobert_zero.compiler.analysis import StaticSizes, flops_per_token, parameter_report
        from autobert_zero.train.pretrain import pretrain

        m = self.cfg.model
        sizes = StaticSizes(hidden_size=m.hidden_size, num_attention_heads=m.num_attention_heads,
                            intermediate_size=m.intermediate_size, max_position_embeddings=m.max_position_embeddings,
                            type_vocab_size=m.type_vocab_size, vocab_size=len(self.prepared.tokenizer))
        try:
            params = parameter_report(genotype, sizes).total
            flops = flops_per_token(genotype, sizes, self.cfg.data.max_seq_length).per_token
            self.workdir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="candidate-", dir=self.workdir) as tmp:
                summary = pretrain(self.cfg, tmp, genotype_path=genotype, prepared=self.prepared)
        except Exception as error:  # one candidate failing must not stop the search
            return FitnessResult(genotype.id, None, "failed", f"{type(error).__name__}: {error}")
        loss = summary.get("eval_loss")
        if loss is None or not math.isfinite(loss):
            return FitnessResult(genotype.id, None, "failed", f"held-out MLM loss is {loss}", params, flops)
        return FitnessResult(genotype.id, -float(loss), "ok", "", params, flops)


class DistributedFitness:
    """Splits each call's candidates across ranks (round-robin) and gathers the results in order."""

    def __init__(self, fitness: Any, chunk_size: int) -> None:
        import torch.distributed as dist

        self.fitness, self.chunk_size = fitness, chunk_size
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if hasattr(fitness, "adapt"):
            self.adapt = fitness.adapt

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Any]:
        import torch.distributed as dist

        mine = list(self.fitness.evaluate(list(genotypes[self.rank::self.world])))
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, mine)
        return [gathered[i % self.world][i // self.world] for i in range(len(genotypes))]
