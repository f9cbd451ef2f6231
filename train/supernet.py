"""BIWS supernet training (`abz supernet`): masked LM through the shared MLM run, one candidate per step.

The run is `mlm.run_mlm` — same engine, `deepspeed:` section, data order, checkpoint layout, metrics and
`final/` export as pre-training — with the supernet as the model and a hook that activates step s's
candidate before its forward on every rank. The candidate of step s is a pure function of (seed, s)
(`CandidateSchedule`, like `data/order.py` for batches), so a resumed run continues the same candidate
sequence, and every rank of a data-parallel run trains the same candidate. The schedule (strategy, seed,
population ids) is part of the run identity in every checkpoint.

Strategies (`supernet.strategy`):

- `population` (the default) draws uniformly from a list of genotypes (`supernet.population`; left empty,
  the loader fills in a fallback population: `genotype`, the search's seed genotypes and the shipped ones of
  the same depth), so a layer choice that many members share is trained as often as it occurs in the list;
- `fair` draws from the list with weights that give every layer choice the same exposure
  (`exposure_weights`), raised to `supernet.fair_exponent` (1: equal exposure; 0: `population`), so a family
  of near-copies does not take the shared weights' training for itself;
- `uniform` draws a fresh sample of the supernet's sampler each step (any layer choice the supernet hosts,
  a convolution with `supernet.conv_probability`).

`benchmarks/RESULTS.md` records how each strategy ranks candidates in the ranking audit.

`adapt_supernet` keeps training a loaded supernet during a search (`search.adapt_steps` between rounds, drawn
from the live population per `search.adapt_strategy`); the Evaluator, which holds the supernet, calls it.

A shared weight that the step's candidate does not use gets no gradient, which DeepSpeed accepts under
ZeRO 0, 1 and 2 (tested); its gradient is then zero rather than absent, so AdamW's momentum still moves a
weight that an earlier step used (equally in all three stages, so data-parallel runs agree).

`load_supernet(DIR, cfg)` reads `DIR/final` back (for `abz evaluate` and the audit), refusing a missing or
damaged folder and sizes that disagree with the config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autobert_zero.config.load import BatchPlan, config_from_dict
from autobert_zero.config.paths import resolve_shipped
from autobert_zero.config.schema import POPULATION_STRATEGIES, SIZE_KEYS, Config
from autobert_zero.errors import AbzError, ConfigError, TrainingError
from autobert_zero.grammar import ConvLayer, Genotype, Language
from autobert_zero.json_files import read_json
from autobert_zero.run_dir import check_out_dir
from autobert_zero.train.data.mlm_blocks import MlmData
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.data.seeds import (
    ADAPT_DROPOUT,
    ADAPT_ORDER,
    ADAPT_SCHEDULE,
    CANDIDATE_SCHEDULE,
    derived_seed,
)
from autobert_zero.train.engine import build_engine, check_zero_stage, init_distributed
from autobert_zero.train.loop import LoopSettings, TrainLoop
from autobert_zero.train.mlm import MlmHooks, mlm_step, prepare_or_check, resolve_config, run_mlm, stop_step
from autobert_zero.train.models import load_genotype_file, mlm_config, resolve_genotype


def read_population(entries: Sequence[str], where: str = "supernet.population",
                    language: Language | None = None) -> list[Genotype]:
    """Genotypes from .abz files, folders of .abz files and .txt lists of .abz paths (see the config key), in
    `language` (default: the active one)."""
    genotypes: list[Genotype] = []
    for entry in entries:
        path = resolve_shipped(entry)
        if path.is_dir():
            files = sorted(path.glob("*.abz"))
            if not files:
                raise ConfigError(f"{where}: folder {entry} holds no .abz genotype files")
            genotypes += [load_genotype_file(f, language) for f in files]
        elif path.suffix == ".txt" and path.is_file():
            lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            genotypes += [load_genotype_file(path.parent / line, language) for line in lines if line]
        else:
            genotypes.append(load_genotype_file(entry, language))
    return genotypes


def layer_choice(genotype: Genotype, index: int) -> str:
    """What layer `index` of `genotype` is, as text independent of graph names (canonical attention graph)."""
    from autobert_zero.grammar.canonical import canonical_graph

    graph = genotype.layer_graph(index)
    if graph is None:
        layer = genotype.layers[index]
        assert isinstance(layer, ConvLayer)
        return f"conv {layer.kind} {layer.kernel} {layer.dilation}"
    return f"attention {canonical_graph(graph).output}"


def exposure_weights(population: Sequence[Genotype]) -> list[float]:
    """Draw weights that equalise exposure: member c gets 1 / (mean over positions of how many members hold
    c's layer choice there). A member whose layers no other member shares gets 1; each of n exact copies
    gets 1/n, so together they are drawn as often as one distinct member."""
    choices = [[layer_choice(g, i) for i in range(g.num_layers)] for g in population]
    counts: list[dict[str, int]] = []
    for position in zip(*choices, strict=True):
        tally: dict[str, int] = {}
        for choice in position:
            tally[choice] = tally.get(choice, 0) + 1
        counts.append(tally)
    return [len(row) / sum(counts[p][choice] for p, choice in enumerate(row)) for row in choices]


@dataclass
class CandidateSchedule:
    """The candidate of each training step: a pure function of (seed, step)."""

    strategy: str
    seed: int
    population: list[Genotype]
    sampler: Callable[[random.Random], Genotype] | None = None
    """`uniform`: draws a candidate from an rng (the supernet's `sample`)."""
    fair_exponent: float = 1.0
    """`fair`: the power the exposure weights are raised to (1 = equal exposure, 0 = `population`)."""

    def __post_init__(self) -> None:
        self.weights = ([w ** self.fair_exponent for w in exposure_weights(self.population)]
                        if self.strategy == "fair" else None)

    @classmethod
    def from_population(cls, population: list[Genotype], seed: int, strategy: str = "population",
                        fair_exponent: float = 1.0) -> CandidateSchedule:
        if not population:
            raise ConfigError("the candidate population is empty: give at least one genotype")
        return cls(strategy, seed, population, fair_exponent=fair_exponent)

    def candidate(self, step: int) -> Genotype:
        """The candidate of 0-based step `step`."""
        rng = random.Random(derived_seed(self.seed, step, CANDIDATE_SCHEDULE))
        if self.strategy == "fair":
            assert self.weights is not None
            return rng.choices(self.population, self.weights)[0]
        if self.strategy == "population":
            return self.population[rng.randrange(len(self.population))]
        assert self.sampler is not None
        return self.sampler(rng)

    def identity(self) -> dict[str, Any]:
        """What fixes the candidate sequence beyond the config keys (`supernet.strategy`, `conv_probability`,
        `fair_exponent`, ... are in the run identity already): the seed and the population's genotype ids."""
        ids = hashlib.sha256(" ".join(g.id for g in self.population).encode()).hexdigest()[:16]
        return {"candidate_strategy": self.strategy, "candidate_seed": self.seed,
                "candidate_population": ids if self.population else None}


def build_supernet(host: Genotype, cfg: Config, vocab_size: int, pad_token_id: int) -> Any:
    """A freshly initialised supernet at the config's sizes; `host` fixes the layer count."""
    from autobert_zero.compiler import AutoBertZeroSupernetForMaskedLM

    torch.manual_seed(cfg.seed)
    per_branch = tuple(cfg.supernet.per_branch)
    return AutoBertZeroSupernetForMaskedLM(mlm_config(host, cfg.model, vocab_size, pad_token_id),
                                           per_branch=per_branch)


def train_supernet(config: Config | str | os.PathLike[str], out_dir: str | os.PathLike[str],
                   corpus: str | list[str] | None = None, max_steps: int | None = None,
                   resume: bool = False, force: bool = False) -> dict[str, Any]:
    """Train the supernet of the config (`abz supernet`); returns the summary (also `<out>/summary.json`)."""
    cfg = resolve_config(config)
    check_zero_stage(cfg.deepspeed, "`abz supernet`")  # early: before data and model
    if corpus is not None:
        cfg.data = dataclasses.replace(cfg.data, corpus=corpus)
    sn = cfg.supernet
    if sn.strategy in POPULATION_STRATEGIES and not sn.population:
        raise ConfigError(f"{cfg.source}: supernet.strategy is {sn.strategy!r} but supernet.population is empty; "
                          f"list .abz files, folders or .txt lists of genotypes")
    stop = stop_step(cfg, max_steps)
    out = Path(out_dir)
    check_out_dir(out, "abz supernet", force=force, resume=resume)  # early: before data and model
    from autobert_zero.config.language import language_from_config

    host = resolve_genotype(cfg, None)
    language = language_from_config(cfg)
    population = read_population(sn.population, language=language) if sn.strategy in POPULATION_STRATEGIES else []
    for g in population:
        if g.num_layers != host.num_layers:
            raise ConfigError(f"{cfg.source}: supernet.population holds a {g.num_layers}-layer genotype "
                              f"({g.source_name}); the supernet hosts {host.num_layers} layers (from {cfg.genotype})")
    rank, _ = init_distributed()
    prepared = prepare_or_check(cfg, None, rank)
    tokenizer = prepared.tokenizer
    assert tokenizer.pad_token_id is not None
    supernet = build_supernet(host, cfg, len(tokenizer), tokenizer.pad_token_id)
    schedule = CandidateSchedule(sn.strategy, derived_seed(cfg.seed, CANDIDATE_SCHEDULE), population,
                                 lambda rng: supernet.sample(rng, conv_probability=sn.conv_probability),
                                 fair_exponent=sn.fair_exponent)
    hooks = MlmHooks(before_step=lambda step: supernet.activate(schedule.candidate(step)),
                     identity=schedule.identity(),
                     record_fields=lambda done: {"candidate": schedule.candidate(done - 1).id[:12]},
                     summary={"genotype": cfg.genotype, "strategy": sn.strategy, "fair_exponent": sn.fair_exponent,
                              "population": len(population), "per_branch": list(sn.per_branch)})
    return run_mlm(cfg, out, supernet, prepared, stop, resume, "supernet", hooks, force=force)


def adapt_engine(supernet: Any, cfg: Config, plan: BatchPlan) -> Any:
    """The engine that adapts a loaded supernet during a search: AdamW at the constant learning rate
    `pretrain.lr` (a schedule too long to decay, no warm-up). Build it once and pass it to every
    `adapt_supernet` call, so the optimizer state carries over between rounds."""
    return build_engine(supernet, cfg.deepspeed, plan, cfg.pretrain.lr, cfg.pretrain.weight_decay, 10**12, 0)


def adapt_supernet(engine: Any, supernet: Any, population: Sequence[Genotype], cfg: Config, data: MlmData,
                   plan: BatchPlan, rank: int, start: int, steps: int) -> int:
    """Train the supernet (inside `engine`, from `adapt_engine`) MLM steps `start..start+steps-1`, each on a
    candidate drawn from `population` per `search.adapt_strategy` (`population` or `fair`, with
    `supernet.fair_exponent`); returns the new step count (`start + steps`). Data-parallel over all ranks:
    every rank calls it with the same arguments. Candidates, data order and dropout are seeded from
    (`cfg.seed`, step), so the calls of a search draw one continuous, reproducible sequence; the caller's
    torch RNG stream is not consumed."""
    schedule = CandidateSchedule.from_population(list(population), derived_seed(cfg.seed, ADAPT_SCHEDULE),
                                                 cfg.search.adapt_strategy, cfg.supernet.fair_exponent)
    order = StreamOrder(len(data.train_blocks), derived_seed(cfg.seed, ADAPT_ORDER))

    def step_fn(step: int) -> float:
        supernet.activate(schedule.candidate(step))
        return mlm_step(engine, data, order, plan, step, rank)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(cfg.seed, rank, start, ADAPT_DROPOUT))
        TrainLoop(engine, step_fn, LoopSettings(stop=start + steps), rank=rank).run(start)
    return start + steps


def _supernet_error(folder: Path, problem: str) -> TrainingError:
    return TrainingError(f"supernet folder {folder}: {problem}; expected the --out folder of a finished "
                         f"`abz supernet` run (it holds final/config.json, final/model.safetensors and the "
                         f"tokenizer)")


def saved_config(folder: str | os.PathLike[str]) -> Config:
    """The resolved config a supernet run saved as `<folder>/config.json`."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise _supernet_error(Path(folder), "no config.json")
    try:
        data = read_json(path, TrainingError)  # bounded depth and size, no NaN
    except TrainingError as problem:
        raise _supernet_error(Path(folder), str(problem).replace(f"{path}: ", "config.json: ")) from None
    if not isinstance(data, dict):
        raise _supernet_error(Path(folder), "config.json is not a mapping")
    data.pop("source", None)
    return config_from_dict(data, str(path))


def _refuse_unmatched_weights(root: Path, info: dict[str, Any]) -> None:
    """Refuse a supernet whose final/model.safetensors lacks weights its config asks for (they would be
    initialised at random and scored as trained) or holds weights it does not (e.g. a pre-trained model's
    folder with a supernet key added to its config), as `abz finetune --init` refuses such a folder."""
    def listing(names: Any, limit: int = 4) -> str:
        names = sorted(str(name) for name in names)
        return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")

    problems = [f"{label} {listing(info[key])}" for key, label in (
        ("missing_keys", "missing"), ("unexpected_keys", "unexpected"), ("mismatched_keys", "other shapes:"))
        if info.get(key)]
    if problems:
        raise _supernet_error(root, f"final/model.safetensors does not match the supernet its config.json "
                                    f"describes ({'; '.join(problems)})")


def supernet_language(folder: str | os.PathLike[str]) -> Language:
    """The language recorded in `<folder>/final/config.json` (op code it carries runs only under
    `grammar.loading.trust_language_code`, unless this process built that language already)."""
    from autobert_zero.grammar.loading import language_from_record

    path = Path(folder) / "final" / "config.json"
    if not path.is_file():
        raise _supernet_error(Path(folder), "no final/config.json")
    try:
        data = read_json(path, TrainingError)
    except TrainingError as problem:
        raise _supernet_error(Path(folder), str(problem)) from None
    return language_from_record(data.get("language") if isinstance(data, dict) else None,
                                where=f"supernet folder {folder}: final/config.json")


def load_supernet(folder: str | os.PathLike[str], cfg: Config) -> tuple[Any, Any]:
    """(supernet, tokenizer) from `<folder>/final`; sizes and language must equal the config's (`model:`,
    `language:`). A custom language is rebuilt from final/config.json's record: its op code runs only under
    `grammar.loading.trust_language_code`, unless the config names the same language."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroSupernetForMaskedLM
    from autobert_zero.config.language import language_from_config
    from autobert_zero.grammar.loading import language_changes, language_from_record

    root = Path(folder)
    final = root / "final"
    if not root.is_dir():
        raise _supernet_error(root, "not found")
    if not (final / "config.json").is_file() or not (final / "model.safetensors").is_file():
        raise _supernet_error(root, "no final/config.json and final/model.safetensors")
    try:
        read_json(final / "config.json", TrainingError)  # bounded depth and size before transformers reads it
    except TrainingError as problem:
        raise _supernet_error(root, str(problem).replace(f"{final}{os.sep}", "final/")) from None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # missing weights are refused below, not listed in a load report
    try:
        saved = AutoBertZeroConfig.from_pretrained(str(final))
        if not hasattr(saved, "supernet_per_branch"):
            raise _supernet_error(root, "final/ holds a stand-alone model, not a supernet")
        expected = language_from_config(cfg)
        language = language_from_record(saved.language, where=f"supernet folder {root}: final/config.json")
        changed = language_changes(language.record, expected.record)
        if changed:
            raise ConfigError(f"{cfg.source}: the language differs from the supernet's in {root} ({'; '.join(changed)})"
                              f"; use the `language:` section the supernet was trained with ({root}/config.json)")
        differ = [f"model.{k}: checkpoint {getattr(saved, k)}, config {getattr(cfg.model, k)}"
                  for k in SIZE_KEYS if getattr(saved, k) != getattr(cfg.model, k)]
        if differ:
            raise ConfigError(f"{cfg.source}: sizes disagree with the supernet in {root}: {'; '.join(differ)}; "
                              f"evaluate with the config the supernet was trained with ({root}/config.json)")
        supernet, info = AutoBertZeroSupernetForMaskedLM.from_pretrained(str(final), output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(str(final))
    except AbzError:
        raise
    except Exception as exc:  # damaged safetensors, JSON or tokenizer files
        raise _supernet_error(root, f"final/ could not be loaded ({type(exc).__name__}: {exc})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    _refuse_unmatched_weights(root, info)
    if len(tokenizer) != supernet.config.vocab_size:
        raise _supernet_error(root, f"its tokenizer has {len(tokenizer)} tokens but the model "
                                    f"{supernet.config.vocab_size}")
    supernet.config.sparse_mlm_logits = True
    supernet.eval()
    return supernet, tokenizer
