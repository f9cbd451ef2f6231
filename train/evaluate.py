"""Candidate evaluation: genotypes in, one `CandidateResult` each out — the fitness the search calls.

`Evaluator(config, supernet_dir)` prepares the corpus, tokenizer, MLM blocks and the fixed held-out batches
once, then `.evaluate(genotypes)` scores candidates with the estimator of the config's `evaluate:` section:

- `scratch`: a freshly initialised model (seed `evaluate.init_seed`) trained `evaluate.steps` MLM steps;
- `biws`: the supernet's weights inherited (`supernet.extract`), then `evaluate.steps` steps of the copy;

both through `deepspeed.initialize` and the one loop (`loop.py`), then the mean MLM loss on the same
held-out blocks with the same mask positions (`MlmData.eval_batches`), never training batches. The score is
higher-is-better: −loss, or a rank combination with a size prior (`evaluate.size_prior`: ranks among every
candidate this Evaluator has scored, so a score is comparable across calls of one Evaluator), or, with a
second stage (`evaluate.glue_task`), the GLUE dev score of a short fine-tune. A NaN/inf loss, or a second
stage that cannot score (missing data, a non-finite dev score), makes a candidate `failed` with the reason and
the run goes on; so does a candidate past `candidate_timeout_s` (`search.candidate_timeout_s`: checked before
every training step and before the held-out loss; reason "timed out after N s"). Results are cached by
genotype id; a candidate
whose functional fingerprint equals an evaluated one's is a `duplicate` naming its twin and sharing its
score. Evaluation never changes the supernet, and a candidate's score is a function of the supernet's weights
and the genotype alone (every candidate trains a copy with the same seeds), so a resumed search that rebuilds
the weights gets the same scores; `.adapt(population, steps)` trains it on purpose (`supernet.adapt_supernet`)
and empties the cache, whose scores belonged to the old weights. `.remember(results)` takes back what an
interrupted run's Evaluator held; `.check_space(space, num_layers)` refuses a search its supernet cannot host.

Under a launcher every rank must call `evaluate` (and `adapt`) with the same list. `evaluate` first decides,
identically on every rank, which genotypes need scoring (not cached, not a fingerprint duplicate of a cached
one or of an earlier one in the list), deals those out round-robin over the ranks, scores each rank's share
by itself and all-gathers the results in order, so every rank's cache, duplicates and results are the ones
a one-process run gets. A rank scores its share as one process would: a training estimator (`scratch`, or
`biws` with `evaluate.steps` > 0) builds each candidate's engine on a group of this rank alone
(`engine.RankLocal`) with the one-process batch plan (micro batch × accumulation × 1), data order and
dropout seed, so the scores equal the one-process scores (bit for bit on the same machine and thread count);
`biws` with 0 steps needs no engine at all. Only a GLUE second stage (`evaluate.glue_task`), whose fine-tune
runs data-parallel, keeps every rank scoring every candidate together. `adapt` trains the supernet
data-parallel over all ranks. Each split call logs (DEBUG, logger `autobert_zero.train.evaluate`) how many
candidates this rank scored. A rank never leaves the others waiting in the gather: a candidate that fails
(cannot be built, NaN loss, out of memory, past its time limit) is a `failed` result like any other, and any
other error of a rank's share (a bug) is gathered too and raised on every rank alike (`TrainingError`), as
one process raises it; a time limit on candidates scored together is decided together (`_check_time`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from autobert_zero.config.load import BatchPlan, batch_plan
from autobert_zero.config.schema import Config
from autobert_zero.errors import AbzError, ConfigError, TrainingError
from autobert_zero.grammar import AttentionLayer, Genotype, Language, parse_genotype
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.data.seeds import DROPOUT, derived_seed
from autobert_zero.train.engine import (
    RankLocal,
    build_engine,
    check_zero_stage,
    init_distributed,
    mean_over_ranks,
    round_robin,
    unwrap,
)
from autobert_zero.train.loop import LoopSettings, NonFiniteLoss, TrainLoop
from autobert_zero.train.mlm import (
    PreparedMlm,
    check_prepared,
    export_model,
    mean_loss,
    mlm_step,
    prepare_mlm_data,
    resolve_config,
)
from autobert_zero.train.models import build_mlm_model
from autobert_zero.train.supernet import adapt_engine, adapt_supernet, load_supernet

LONG_RUN = 200
"""Per-candidate training runs at least this long get a progress bar of their own."""
log = logging.getLogger(__name__)


@dataclasses.dataclass
class CandidateResult:
    """The evaluation of one genotype."""

    id: str
    genotype: str
    """The genotype as text."""
    score: float | None
    """Higher is better (−eval_loss unless a rank combination or GLUE stage is used); None when failed."""
    eval_loss: float | None
    """Mean MLM loss on the fixed held-out batches."""
    params: int | None
    flops_per_token: float | None
    seconds: float
    status: str
    """"ok", "failed" or "duplicate"."""
    reason: str = ""
    twin: str | None = None
    """For a duplicate: the id of the evaluated genotype with the same functional fingerprint."""
    glue_score: float | None = None

    @property
    def fidelity_scores(self) -> list[float] | None:
        """None: the Evaluator scores at one fidelity (`train/promotion.py` reports the rungs of `halving`)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class CandidateTimeout(AbzError):
    """A candidate's scoring passed the Evaluator's `timeout_s` (`search.candidate_timeout_s`): it is recorded
    `failed` with this message as the reason."""

    def __init__(self, limit: float, where: str) -> None:
        self.limit, self.where = limit, where
        super().__init__(f"timed out after {limit:g} s (search.candidate_timeout_s), stopped before {where}")


class _Action(enum.Enum):
    """What `Evaluator.evaluate` does with one genotype of its list."""

    CACHED = "cached"
    """A result exists, or an earlier entry of the list will make one."""
    SCORE = "score"
    DUPLICATE = "duplicate"
    """Of `_Step.twin` (equal functional fingerprint)."""
    FAILED = "failed"
    """Its fingerprint could not be computed (`_Step.reason`)."""


@dataclasses.dataclass
class _Step:
    """What `Evaluator.evaluate` does with one genotype of its list, decided before anything is scored."""

    genotype: Genotype
    action: _Action
    seconds: float = 0.0
    """Time spent deciding (the fingerprint)."""
    twin: str | None = None
    reason: str = ""


def genotype_fingerprint(genotype: Genotype) -> str:
    """What the backbone computes, hashed: per layer the attention graph's functional fingerprint or the
    conv layer's (kind, kernel, dilation); equal for genotypes that differ only in how a graph is written."""
    from autobert_zero.compiler import fingerprint

    parts = [fingerprint(genotype.graph(layer.graph)) if isinstance(layer, AttentionLayer) else repr(layer_key(layer))
             for layer in genotype.layers]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def layer_key(layer: Any) -> tuple[Any, ...]:
    return (layer.kind, layer.kernel, layer.dilation)


def combine_ranks(results: list[CandidateResult], size_prior: str, weight: float,
                  reference: list[CandidateResult] | None = None) -> None:
    """Replace each scored result's score by (1−w)·quality-rank + w·size-rank, both ranks in [0, 1] among
    the `reference` results (default: `results` themselves; larger is better; ties share their mean rank;
    a lone reference ranks 0.5)."""

    def size(r: CandidateResult) -> float:
        return float((r.params or 0) if size_prior == "params" else (r.flops_per_token or 0.0))

    def rank(value: float, values: list[float]) -> float:
        if len(values) < 2:
            return 0.5
        below, equal = sum(v < value for v in values), sum(v == value for v in values)
        return (below + (max(equal, 1) - 1) / 2) / (len(values) - 1)

    scored = [r for r in (results if reference is None else reference) if r.score is not None]
    qualities, sizes = [r.score for r in scored if r.score is not None], [size(r) for r in scored]
    for r in results:
        if r.score is not None:
            r.score = (1 - weight) * rank(r.score, qualities) + weight * rank(size(r), sizes)


class Evaluator:
    """Prepared data, tokenizer, supernet and result cache for scoring candidates (see the module doc)."""

    def __init__(self, config: Config | str | os.PathLike[str], supernet_dir: str | os.PathLike[str] | None = None,
                 *, prepared: PreparedMlm | None = None, show_progress: bool = False,
                 candidate_timeout_s: float | None = None, keep_results: bool = True) -> None:
        self.cfg = cfg = resolve_config(config)
        self.keep_results = keep_results
        """Whether results and fingerprints are kept between calls (a later call reuses them, or names a
        functional twin a duplicate); False: every call scores its genotypes afresh (a promotion rung that must
        train each genotype it is handed, even one an earlier call scored)."""
        check_zero_stage(cfg.deepspeed, "candidate evaluation (`abz evaluate`, `abz search`, `abz audit`)")
        self.timeout_s = candidate_timeout_s
        """Seconds one candidate's scoring may take (`search.candidate_timeout_s`; see `CandidateTimeout`)."""
        self._deadline: float | None = None
        """While a candidate is scored under a limit: the `time.perf_counter()` it must finish by."""
        from autobert_zero.config.language import language_from_config

        self.language = language_from_config(cfg)
        """The language of the config (a supernet must have been trained in it)."""
        ev = cfg.evaluate
        if ev.estimator == "biws" and supernet_dir is None:
            raise ConfigError("evaluate.estimator = 'biws' needs a supernet: pass --supernet DIR (the --out folder "
                              "of `abz supernet`)")
        self.rank, self.world = init_distributed()
        self.plan = batch_plan(cfg, "pretrain", self.world)
        self.split = self.world > 1 and ev.glue_task is None
        """Whether `evaluate` deals the candidates out over the ranks (see the module doc)."""
        self._local: RankLocal | None = None
        """Under a split with training: the groups of this rank alone each candidate's engine is built on."""
        if self.split and ev.steps > 0:
            self._local = RankLocal()  # collective: every rank builds its Evaluator at the same point
        self.show = show_progress and self.rank == 0
        self.supernet: Any = None
        tokenizer = None
        if supernet_dir is not None:
            self.supernet, tokenizer = load_supernet(supernet_dir, cfg)
        self.prepared = prepared or prepare_mlm_data(cfg, self.show, tokenizer=tokenizer)
        check_prepared(cfg, self.prepared)
        self.eval_batches = self.prepared.data.eval_batches(ev.eval_batch_size, ev.eval_offset, ev.eval_limit)
        if not self.eval_batches:
            raise ConfigError(f"{cfg.source}: data.eval_blocks = {cfg.data.eval_blocks} with evaluate.eval_offset = "
                              f"{ev.eval_offset} leaves no held-out blocks to score candidates on (the corpus holds "
                              f"{len(self.prepared.data.eval_blocks)}); raise data.eval_blocks or lower eval_offset")
        self.init_seed = cfg.seed if ev.init_seed is None else ev.init_seed
        self.cache: dict[str, CandidateResult] = {}
        self.fingerprints: dict[str, str] = {}
        self.adapted_steps = 0
        self._supernet_engine: Any = None

    @property
    def tokenizer(self) -> Any:
        return self.prepared.tokenizer

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[CandidateResult]:
        """One result per genotype, in order (cached ones reused); see the module doc."""
        steps = self._triage(genotypes)
        fresh = iter(self._score_all([step.genotype for step in steps if step.action is _Action.SCORE]))
        results = []
        for step in steps:
            genotype = step.genotype
            if step.action is _Action.SCORE:
                self.cache[genotype.id] = result = next(fresh)
                result.seconds += step.seconds
            elif step.action is _Action.DUPLICATE:
                assert step.twin is not None
                self.cache[genotype.id] = dataclasses.replace(
                    self.cache[step.twin], id=genotype.id, genotype=genotype.to_text(), status="duplicate",
                    reason=f"computes the same as {step.twin} (equal functional fingerprint)", twin=step.twin,
                    seconds=step.seconds)
            elif step.action is _Action.FAILED:
                self.cache[genotype.id] = CandidateResult(genotype.id, genotype.to_text(), None, None, None, None,
                                                          step.seconds, "failed", step.reason)
            results.append(dataclasses.replace(self.cache[genotype.id]))
        if self.cfg.evaluate.size_prior is not None:
            reference = [r for r in self.cache.values() if r.status == "ok"]  # all scored so far
            combine_ranks(results, self.cfg.evaluate.size_prior, self.cfg.evaluate.prior_weight, reference)
        if not self.keep_results:
            self.cache.clear()
            self.fingerprints.clear()
        return results

    def _triage(self, genotypes: Sequence[Genotype]) -> list[_Step]:
        """What to do with each genotype, in list order, as if each were handled before the next: a known id
        is cached; a genotype whose functional fingerprint is a cached (or earlier listed) genotype's is a
        duplicate of it; any other is scored, and its fingerprint registered. Depends only on the list and
        the cache and fingerprint table, so every rank decides the same."""
        steps, known = [], set(self.cache)
        for genotype in genotypes:
            if genotype.id in known:
                steps.append(_Step(genotype, _Action.CACHED))
                continue
            known.add(genotype.id)
            t0 = time.perf_counter()
            try:
                fp = genotype_fingerprint(genotype)
            except (AbzError, RuntimeError, ValueError) as exc:  # a genotype that cannot be compiled
                steps.append(_Step(genotype, _Action.FAILED, time.perf_counter() - t0,
                                   reason=f"{type(exc).__name__}: {exc}"))
                continue
            twin = self.fingerprints.get(fp)
            if twin is not None and twin in known:
                steps.append(_Step(genotype, _Action.DUPLICATE, time.perf_counter() - t0, twin=twin))
            else:
                self.fingerprints[fp] = genotype.id
                steps.append(_Step(genotype, _Action.SCORE, time.perf_counter() - t0))
        return steps

    def _score_all(self, genotypes: list[Genotype]) -> list[CandidateResult]:
        """A result for each genotype, in order. Split across ranks (see the module doc): rank r scores
        genotypes r, r + world, …, and the results are all-gathered back into list order."""
        if not self.split:
            return self._score_share(genotypes)
        gathered = round_robin(genotypes, self._share_or_error)
        errors = [item for item in gathered if isinstance(item, str)]
        if errors:  # every rank raises the same error, after the gather: none is left waiting in a collective
            raise TrainingError(f"scoring a candidate raised {errors[0]}")
        results = [item for item in gathered if isinstance(item, CandidateResult)]
        if genotypes:
            log.debug("rank %d of %d scored %d of %d candidates", self.rank, self.world,
                      len(genotypes[self.rank::self.world]), len(genotypes))
        return results

    def _share_or_error(self, genotypes: list[Genotype]) -> list[CandidateResult | str]:
        """This rank's share, or (an error `_scored` does not turn into a failed candidate: a bug) the error
        as text in every slot, which the gather hands to every rank."""
        try:
            return list(self._score_share(genotypes))
        except Exception as exc:
            log.exception("rank %d of %d: scoring its share of the candidates raised", self.rank, self.world)
            return [f"{type(exc).__name__} on rank {self.rank}: {exc}"] * len(genotypes)

    def _score_share(self, genotypes: list[Genotype]) -> list[CandidateResult]:
        return [self._scored(genotype) for genotype in tqdm(
            genotypes, desc=f"evaluate ({self.cfg.evaluate.estimator})", unit="cand", disable=not self.show)]

    def _scored(self, genotype: Genotype) -> CandidateResult:
        t0 = time.perf_counter()
        result = CandidateResult(genotype.id, genotype.to_text(), None, None, None, None, 0.0, "failed")
        self._deadline = None if self.timeout_s is None else t0 + self.timeout_s
        try:
            self._score(genotype, result)
        except NonFiniteLoss as exc:
            result.reason = f"training loss became {exc.loss} at step {exc.step}"
        except CandidateTimeout as exc:
            result.reason = str(exc)
        except (AbzError, RuntimeError, ValueError) as exc:  # a candidate that cannot be built or run
            result.reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._deadline = None
        result.seconds = time.perf_counter() - t0
        return result

    def _score(self, genotype: Genotype, result: CandidateResult) -> None:
        from autobert_zero.compiler import count_parameters, flops_per_token

        ev = self.cfg.evaluate
        with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is not consumed
            model = self._candidate_model(genotype)
            result.params = count_parameters(model)
            result.flops_per_token = flops_per_token(genotype, model.config, self.prepared.data.block_length).per_token
            model = self.train(model, ev.steps, self.init_seed, f"train {genotype.id[:8]}")
            self._check_time("the held-out loss")
            loss = mean_loss(model, self.eval_batches)
        if not math.isfinite(loss):  # results hold finite numbers only (a history line refuses others)
            result.reason = f"held-out loss is {loss}"
            return
        result.eval_loss, score = loss, -loss
        if ev.glue_task is not None:  # the second stage decides: a candidate it cannot score has failed
            try:
                score = self._glue(model)
            except (AbzError, RuntimeError, ValueError) as exc:
                result.reason = f"GLUE second stage ({ev.glue_task}): {type(exc).__name__}: {exc}"
                return
            if not math.isfinite(score):
                result.reason = f"GLUE second stage ({ev.glue_task}): the dev score is {score}"
                return
            result.glue_score = score
        result.score, result.status = score, "ok"

    def _candidate_model(self, genotype: Genotype) -> Any:
        if self.cfg.evaluate.estimator == "biws":
            child = self.supernet.extract(genotype)
            child.config.sparse_mlm_logits = True
            return child
        tok = self.tokenizer
        return build_mlm_model(genotype, self.cfg.model, len(tok), tok.pad_token_id, self.init_seed)

    def train(self, model: Any, steps: int, seed: int, desc: str = "train") -> Any:
        """`steps` MLM steps of `model` (no checkpoints, no log) with data order and dropout from `seed`;
        returns the trained model (the engine's module). Every candidate sees the same batches. Runs of
        `LONG_RUN` steps or more (reference runs) show their own progress bar. Under a split (see the module
        doc) this rank trains alone, exactly as one process would; otherwise data-parallel over all ranks."""
        if steps == 0:
            return model
        cfg, data, local = self.cfg, self.prepared.data, self._local
        plan = BatchPlan(self.plan.micro_batch_size, self.plan.gradient_accumulation_steps, 1) if local else self.plan
        rank = 0 if local else self.rank  # which share of each batch, and the dropout seed
        with local.active() if local else contextlib.nullcontext():
            engine = build_engine(model, cfg.deepspeed, plan, cfg.evaluate.lr, cfg.pretrain.weight_decay, steps,
                                  cfg.evaluate.warmup_steps, mpu=local)
            order = StreamOrder(len(data.train_blocks), seed)
            torch.manual_seed(derived_seed(seed, rank, DROPOUT))

            def step_fn(step: int) -> float:
                self._check_time(f"training step {step + 1} of {steps}")
                return mlm_step(engine, data, order, plan, step, rank)

            TrainLoop(engine, step_fn,
                      LoopSettings(stop=steps, desc=desc, progress_bar=self.show and steps >= LONG_RUN),
                      rank=self.rank).run()
        return unwrap(engine)

    def _check_time(self, where: str) -> None:
        """Raise `CandidateTimeout` when the candidate being scored is past its deadline (no-op without one).
        Where the ranks score a candidate together (no split under a launcher) they decide together: all stop
        once any rank is past it, at the same check, so no collective is left half-done."""
        if self._deadline is None or self.timeout_s is None:
            return
        over = time.perf_counter() > self._deadline
        if self.world > 1 and not self.split:
            over = mean_over_ranks(float(over)) > 0
        if over:
            raise CandidateTimeout(self.timeout_s, where)

    def _glue(self, model: Any) -> float:
        """The dev score of a short fine-tune (`finetune:` section) of the trained candidate."""
        from autobert_zero.config.paths import data_dir
        from autobert_zero.train.finetune import finetune

        ev = self.cfg.evaluate
        glue = Path(ev.glue_data_dir) if ev.glue_data_dir else data_dir() / "glue"
        with tempfile.TemporaryDirectory(prefix="abz-glue-") as tmp:
            export_model(model, self.tokenizer, Path(tmp) / "init")
            result = finetune(self.cfg, str(ev.glue_task), glue, Path(tmp) / "init", Path(tmp) / "ft")
        return float(result["score"])

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        """Train this Evaluator's supernet `steps` more steps on `population` (`supernet.adapt_supernet`; the
        step counter and optimizer continue across calls). Empties the result cache and fingerprint table,
        whose scores belonged to the old weights."""
        if self.supernet is None:
            raise ConfigError("adapt() needs a supernet: build the Evaluator with a supernet folder")
        if steps <= 0 or not population:
            return
        if self._supernet_engine is None:
            self._supernet_engine = adapt_engine(self.supernet, self.cfg, self.plan)
        self.adapted_steps = adapt_supernet(self._supernet_engine, self.supernet, population, self.cfg,
                                            self.prepared.data, self.plan, self.rank, self.adapted_steps, steps)
        self.cache.clear()
        self.fingerprints.clear()

    def remember(self, results: Iterable[CandidateResult]) -> None:
        """Take results scored earlier (by an interrupted run, under the same weights) into the result cache and
        the fingerprint table, as if this Evaluator had scored them: they are reused, and genotypes that compute
        the same are their duplicates — failed ones included, as `evaluate` registers them. `score` must be the
        raw score (−loss, or the GLUE dev score), not a rank combination: `evaluate` ranks against raw scores.
        Ids already cached keep their result; a genotype without a fingerprint (it failed for that) is cached
        only, as `_triage` does."""
        for result in results:
            if result.id in self.cache:
                continue
            self.cache[result.id] = result
            try:
                fp = genotype_fingerprint(parse_genotype(result.genotype, language=self.language))
            except (AbzError, RuntimeError, ValueError):
                continue
            self.fingerprints.setdefault(fp, result.id)

    def check_space(self, space: Language, num_layers: int) -> None:
        """Refuse (`ConfigError`) a search whose candidates this Evaluator's supernet cannot host: another layer
        count, or conv types and kernels beyond it (`check_hostable`'s conditions, for the whole space)."""
        net = self.supernet
        if net is None:
            return
        where = f"{self.cfg.source}: the supernet {self.cfg.search.supernet}"
        if num_layers != net.num_positions:
            raise ConfigError(f"{where} hosts {net.num_positions}-layer backbones but the search's candidates have "
                              f"{num_layers} layers (search.num_layers, or the layers of `genotype`); search with "
                              f"the supernet's layer count or train a supernet for {num_layers} layers")
        types = sorted(set(space.conv_types) - set(net.language.conv_types))
        kernels = sorted(k for k in space.conv_kernels if k > net.max_kernel)
        if types or kernels:
            raise ConfigError(f"{where} hosts conv types {', '.join(net.language.conv_types)} with kernels up to "
                              f"{net.max_kernel}; the search space also has " + ", ".join(
                                  [*(f"type {t}" for t in types), *(f"kernel {k}" for k in kernels)])
                              + " (narrow search.conv_types / search.kernels)")


def results_table(results: Sequence[CandidateResult]) -> str:
    """A plain-text table of results, one row per candidate."""
    rows = [f"{'id':<12} {'status':<9} {'score':>9} {'eval_loss':>9} {'params':>10} {'MFLOP/tok':>9} {'s':>6}  reason"]
    for r in results:
        score = f"{r.score:.4f}" if r.score is not None else "-"
        loss = f"{r.eval_loss:.4f}" if r.eval_loss is not None else "-"
        params = str(r.params) if r.params is not None else "-"
        flops = f"{r.flops_per_token / 1e6:.3f}" if r.flops_per_token is not None else "-"
        rows.append(f"{r.id[:12]:<12} {r.status:<9} {score:>9} {loss:>9} {params:>10} {flops:>9} {r.seconds:>6.2f}  "
                    f"{r.reason}")
    return "\n".join(rows)
