"""`abz audit`: how well does each cheap estimator rank candidates, against full-budget scratch training?

Steps: the candidate set at the supernet's depth (`audit_candidates`: the drawn set of `candidates.py`, or the
search's own distribution with `--from-search`, `from_search.py`; plus an exposure control's cluster with
`--exposure-control N`); the reference — scratch training for `audit.reference_steps`, once per
`audit.reference_seeds` — read from or written to the reference cache (`fill_reference` fills it with no
supernet); BIWS for each k of `audit.biws_steps`, on each supernet given (`--supernet A --supernet B`: each
supernet's estimates made separately, the bootstrap resamples supernets too); scratch at the same seconds per
candidate as each BIWS k (the cost-matched baseline); with `audit.biws_lrs`, each k > 0 again as a scheduled
fine-tune (warm-up a tenth of k) at each of those learning rates; with `audit.halving_steps`, successive halving (BIWS
k = 0 prunes, scratch runs of growing budget order the survivors, `halving.py`); the zero-cost proxies (the
held-out MLM loss at initialisation, from the Evaluator's scratch estimator with 0 steps; gradient norm and
synflow at initialisation, `proxies.py`); then the figures (`audit_report`), `OUT/audit.json`, `OUT/audit.png` and a
table. Every trained or inherited estimate comes from the project's one evaluation entry point,
`train.evaluate.Evaluator`, and the proxies from its model build (`train.models.build_mlm_model`).

Cost matching: seconds(steps) ≈ overhead + steps × per_step, with the overhead measured by BIWS k = 0
(extract + score, no training; 0 when k = 0 is not tried) and per_step timed in this process, next to the
estimators (`timed_reference`: scratch runs of 1 and 1 + n steps of the first candidate, each repeated
`TIMING_REPEATS` times, per_step = (median long − median short) / n floored at `MIN_STEP_SECONDS`, so a
reference cache filled earlier, on another machine or under another load, does not skew the comparison and
a noisy short run cannot make per_step vanish); the matched scratch gets round((seconds of BIWS k (or of
halving) − overhead) / per_step) steps, clamped to [1, `audit.reference_steps`] (a cheap estimator never trains
longer than the reference), with its schedule fitted to that budget (warm-up a tenth of it, then decay to 0:
a rival set up to win if it can), and both measured costs and the timing itself are reported, so the match can be
checked. Cost ratios divide the same-process estimate of one reference run (median 1-step seconds +
per_step × (reference steps − 1)) by each estimator's seconds; the cached runs' own mean seconds are
reported beside it. Amortised costs add each supernet's training seconds (`supernet_seconds`, from its
`summary.json`) spread over the audit's candidates and over a typical search.

The reference cache (`audit.cache_dir`) holds one JSON file per (genotype id, seed) under a folder named
by the config hash (everything that changes a reference result: sizes, data, the vocabulary's sha256, the
`pretrain:` batch keys and weight decay, `evaluate:` lr and batch, DeepSpeed, the reference steps; not the
supernet's own schedule); files are written atomically as soon as a run ends, so a killed audit resumes where
it stopped and later audits reuse what matches. Each file carries a sha256 of its content and is checked
against a schema when read: a damaged or edited entry is reported and run again, never used. The estimators'
outcomes and the cost timing are cached the same way (`EstimateStore`, under `estimates/` of the cache
folder, keyed by the reference's config hash, the supernets' weights and the estimator seed), so an audit
run again over a filled cache — a killed one resumed, or the same one repeated — gives identical figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from tqdm.auto import tqdm

from autobert_zero.config.schema import Config, Estimator
from autobert_zero.errors import ConfigError, DataError, SupernetError
from autobert_zero.grammar import Genotype, parse_genotype
from autobert_zero.io import atomic_write_text
from autobert_zero.json_files import read_json
from autobert_zero.train.audit.candidates import (
    Candidate,
    candidate_set,
    exposure_cluster,
    neighbour_count,
    shipped,
)
from autobert_zero.train.audit.halving import check_halving, halving_estimator, warmup_steps
from autobert_zero.train.audit.plot import table, write_plot
from autobert_zero.train.audit.report import TYPICAL_SEARCH, AuditInputs, EstimatorRun, Outcome, build_report
from autobert_zero.train.audit.stats import kendall_tau
from autobert_zero.train.mlm import resolve_config

OUTPUTS = ("audit.json", "audit.png")
CACHE_VERSION = 2
"""2: the key holds the vocabulary's sha256, each entry a sha256 of its content."""
ESTIMATE_VERSION = 1
"""Version of the estimate cache's key (`EstimateStore`)."""
CONVERGENCE_TAU = 0.85
"""Least τ between the reference and a reference of twice its budget for the reference to count as converged."""
TIMING_REPEATS = 3
"""Timed scratch runs of each length for the per-step cost (their median is used)."""
TIMING_STEPS = 100
"""Steps the long timed run adds to the 1-step one (fewer when the reference is shorter)."""
MIN_STEP_SECONDS = 1e-4
"""Floor of the measured seconds per training step: a difference of two noisy timings can be ≤ 0."""


class EvaluatorBackend:
    """The evaluation stack as the audit uses it: one `Evaluator` per (estimator, steps, init seed, warm-up),
    all sharing the data and tokenizer prepared once (those of the supernet)."""

    def __init__(self, supernet_dir: Path | None, cfg: Config, show: bool, *, prepared: Any = None) -> None:
        from autobert_zero.evolve.state import supernet_identity
        from autobert_zero.train.evaluate import Evaluator
        from autobert_zero.train.models import resolve_genotype

        self.supernet_dir, self.cfg, self.show = supernet_dir, cfg, show
        self._evaluators: dict[tuple[str, int, int, int, float], Evaluator] = {}
        if prepared is not None:  # another backend's data and tokenizer (a second supernet of one audit)
            self.prepared = prepared
        if supernet_dir is None:  # scratch only (filling the reference cache): the config's host sets the depth
            first = self._evaluator("scratch", 1, cfg.seed, 0)
            self.num_layers: int = resolve_genotype(dataclasses.replace(cfg), None).num_layers
            self.identity = "no supernet"
        else:
            first = self._evaluator("biws", 0, cfg.seed, 0)
            self.num_layers = first.supernet.active.num_layers
            self.identity = supernet_identity(supernet_dir)["sha256"]
        self.prepared = first.prepared

    def _evaluator(self, estimator: Estimator, steps: int, seed: int, warmup: int, lr: float | None = None) -> Any:
        from autobert_zero.train.evaluate import Evaluator

        lr = self.cfg.evaluate.lr if lr is None else lr
        key = (estimator, steps, seed, warmup, lr)
        if key not in self._evaluators:
            evaluate = dataclasses.replace(self.cfg.evaluate, estimator=estimator, steps=steps, init_seed=seed,
                                           warmup_steps=warmup, lr=lr, size_prior=None, glue_task=None)
            cfg = dataclasses.replace(self.cfg, evaluate=evaluate)
            supernet = self.supernet_dir if estimator == "biws" else None
            prepared = getattr(self, "prepared", None)  # the first evaluator prepares (and shows that)
            self._evaluators[key] = Evaluator(cfg, supernet, prepared=prepared,
                                              show_progress=self.show and prepared is None)
        return self._evaluators[key]

    def run(self, genotypes: Sequence[Genotype], estimator: Estimator, steps: int, seed: int, warmup: int,
            lr: float | None = None) -> list[Outcome]:
        """Each genotype scored by `estimator` ("scratch" or "biws") after `steps` steps (init seed `seed`, peak
        learning rate `lr`; None = `evaluate.lr`)."""
        results = self._evaluator(estimator, steps, seed, warmup, lr).evaluate(genotypes)
        return [Outcome(r.score, r.eval_loss, r.seconds, r.status, r.reason, r.params, r.flops_per_token)
                for r in results]

    def zero_cost(self, genotype: Genotype, seed: int) -> dict[str, Outcome]:
        """The zero-cost proxies of `proxies.py` for one genotype, from the model the scratch estimator would
        start from (init seed `seed`)."""
        from autobert_zero.train.audit.proxies import zero_cost

        return zero_cost(genotype, self.cfg, self.prepared, seed)


def check_audit_config(cfg: Config) -> None:
    """Refuse audit settings no field check catches (distinct seeds and k values, an estimator seed that is a
    reference seed, the halving rungs of `check_halving`); the schema has checked each field (at least two
    seeds, one k, none negative, `audit.size_prior` among `SIZE_PRIORS`)."""
    a = cfg.audit
    seeds = a.reference_seeds
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{cfg.source}: audit.reference_seeds = {seeds}: expected distinct seeds (their mean is "
                          f"the reference, their τ the noise ceiling)")
    if len(set(a.biws_steps)) != len(a.biws_steps):
        raise ConfigError(f"{cfg.source}: audit.biws_steps = {a.biws_steps}: expected distinct step counts "
                          f"(k of each BIWS estimator tried, e.g. [0, 5, 20])")
    if cfg.evaluate.init_seed in seeds:
        raise ConfigError(f"{cfg.source}: evaluate.init_seed = {cfg.evaluate.init_seed} is also a reference seed "
                          f"(audit.reference_seeds = {seeds}); a short run sharing a reference run's initialisation "
                          f"would rank too well: choose another seed or null")
    check_halving(cfg)


def load_audit_config(supernet_dir: Path, config: Config | str | os.PathLike[str] | None) -> Config:
    """The config given (an object is copied), else the supernet run's own `config.json`; the audit section
    checked."""
    if not supernet_dir.is_dir():
        raise ConfigError(f"--supernet {supernet_dir}: no such folder (expected the --out folder of an "
                          f"`abz supernet` run)")
    if config is not None:
        cfg = resolve_config(config)
        cfg.audit = dataclasses.replace(cfg.audit)
    else:
        from autobert_zero.train.supernet import saved_config

        cfg = saved_config(supernet_dir)
    check_audit_config(cfg)
    return cfg


def config_hash(cfg: Config, vocab_sha256: str) -> str:
    """sha256 of what changes a reference result (see the module docstring); `vocab_sha256` is the audit's
    tokenizer's (`checkpoint.vocabulary_sha256`): a vocabulary trained anew may differ for the same config."""
    data = dataclasses.asdict(cfg)
    for key in ("source", "genotype", "seed", "logging", "finetune", "search", "supernet", "audit"):
        data.pop(key, None)
    pretrain = data.get("pretrain", {})  # only what a reference run reads (supernet length/schedule is not)
    data["pretrain"] = {k: pretrain.get(k) for k in ("micro_batch_size", "gradient_accumulation_steps",
                                                     "batch_size", "weight_decay")}
    evaluate = data.get("evaluate", {})
    for key in ("estimator", "steps", "init_seed", "warmup_steps", "size_prior", "prior_weight",
                "glue_task", "glue_data_dir"):
        evaluate.pop(key, None)
    data["model"].pop("gradient_checkpointing", None)  # memory only: the same results (and the caches of before)
    data["held_out_seed"] = cfg.seed
    data["vocab_sha256"] = vocab_sha256
    data["reference"] = {"steps": cfg.audit.reference_steps, "warmup": cfg.audit.reference_warmup_steps,
                         "version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class ReferenceCache:
    """Reference outcomes on disk, one atomic JSON file per (genotype id, seed), each with a sha256 of its
    content (`digest`)."""

    def __init__(self, root: str | os.PathLike[str] | None, key: str, *, label: str = "reference") -> None:
        base = Path(root).expanduser() if root else Path.home() / ".cache" / "autobert_zero" / "audit"
        self.key = key
        self.folder = base / key[:16]
        self.label = label

    def _path(self, genotype_id: str, seed: int) -> Path:
        return self.folder / f"{genotype_id[:40]}-seed{seed}.json"

    def get(self, genotype_id: str, seed: int) -> Outcome | None:
        """The stored outcome, or None when there is none; an entry that is damaged, edited, or written for
        another config, genotype or seed is reported on stderr and None is returned (it is run again)."""
        path = self._path(genotype_id, seed)
        if not path.is_file():
            return None
        try:
            return self._read(path, genotype_id, seed)
        except DataError as problem:
            print(f"abz audit: ignoring {self.label} cache entry {problem}; running it again", file=sys.stderr)
            return None

    def _read(self, path: Path, genotype_id: str, seed: int) -> Outcome:
        record = read_json(path, DataError, max_depth=4, max_bytes=1 << 20, allow_nonfinite=True)
        if not isinstance(record, dict) or set(record) != {"config_hash", "genotype_id", "seed", "outcome", "digest"}:
            raise DataError(f"{path}: expected the keys config_hash, genotype_id, seed, outcome and digest")
        if record["digest"] != _digest(record):
            raise DataError(f"{path}: its content does not match its sha256 digest (damaged or edited)")
        if (record["config_hash"], record["genotype_id"], record["seed"]) != (self.key, genotype_id, seed):
            raise DataError(f"{path}: written for another config, genotype or seed")
        return _outcome(record["outcome"], path)

    def put(self, genotype_id: str, seed: int, outcome: Outcome) -> None:
        record: dict[str, Any] = {"config_hash": self.key, "genotype_id": genotype_id, "seed": seed,
                                  "outcome": dataclasses.asdict(outcome)}
        record["digest"] = _digest(record)
        atomic_write_text(self._path(genotype_id, seed), json.dumps(record, indent=1))


def _digest(record: dict[str, Any]) -> str:
    """sha256 of a cache entry's content (all but its `digest`), in a canonical JSON form."""
    content = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


OUTCOME_TYPES: dict[str, tuple[type, ...]] = {
    "score": (float, int, type(None)), "eval_loss": (float, int, type(None)), "seconds": (float, int),
    "status": (str,), "reason": (str,), "params": (int, type(None)), "flops_per_token": (float, int, type(None))}
"""The fields of a cached `Outcome` and their JSON types."""


def _outcome(data: Any, path: Path) -> Outcome:
    """A cached outcome, checked field by field (types, a status the audit writes, finite seconds ≥ 0)."""
    if not isinstance(data, dict) or set(data) != set(OUTCOME_TYPES):
        raise DataError(f"{path}: 'outcome' should hold exactly {', '.join(OUTCOME_TYPES)}")
    for key, types in OUTCOME_TYPES.items():
        if isinstance(data[key], bool) or not isinstance(data[key], types):
            raise DataError(f"{path}: outcome.{key} has the wrong type ({type(data[key]).__name__})")
    if data["status"] not in ("ok", "failed", "duplicate") or not (
            math.isfinite(data["seconds"]) and data["seconds"] >= 0):
        raise DataError(f"{path}: outcome.status or outcome.seconds is out of range")
    return Outcome(**data)


def reference_cache(cfg: Config, tokenizer: Any) -> ReferenceCache:
    """The reference cache of a config and the audit's tokenizer (its vocabulary is part of the key)."""
    from autobert_zero.train.checkpoint import vocabulary_sha256

    return ReferenceCache(cfg.audit.cache_dir, config_hash(cfg, vocabulary_sha256(tokenizer)))


class EstimateStore:
    """The estimators' outcomes and the cost timing of one audit setting, cached beside the reference runs
    (`<cache>/estimates/<key>/`): the key is a sha256 of the reference's config hash (sizes, data, vocabulary,
    batch, `evaluate:` lr and held-out slice), the supernets' weights (`supernet_identity`), the estimator seed
    and `evaluate.warmup_steps`; one `ReferenceCache` folder per estimator name (which holds its k or its
    steps), and `timing-<first candidate>.json` (with a sha256 of its content) for the cost timing. What is
    damaged is run again; delete the folder to measure anew (e.g. the timing under another load)."""

    def __init__(self, reference: ReferenceCache, supernets: Sequence[str], cfg: Config) -> None:
        setting = {"reference": reference.key, "supernets": list(supernets), "seed": estimator_seed(cfg),
                   "warmup_steps": cfg.evaluate.warmup_steps, "version": ESTIMATE_VERSION}
        self.key = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()
        self.folder = reference.folder.parent / "estimates" / self.key[:16]

    def cache(self, name: str) -> ReferenceCache:
        """The cache of one estimator (by its name in the report)."""
        return ReferenceCache(self.folder, hashlib.sha256(f"{self.key} {name}".encode()).hexdigest(),
                              label=f"{name} estimate")

    def timing(self, candidate: Candidate, measure: Callable[[], StepTiming]) -> StepTiming:
        """The cached cost timing of `candidate`, else `measure()` (then cached)."""
        path = self.folder / f"timing-{candidate.id[:16]}.json"
        if path.is_file():
            try:
                return _timing(read_json(path, DataError, max_depth=3, max_bytes=1 << 16), self.key, path)
            except DataError as problem:
                print(f"abz audit: ignoring cached cost timing ({problem}); timing again", file=sys.stderr)
        timing = measure()
        record: dict[str, Any] = {"key": self.key, "timing": dataclasses.asdict(timing)}
        record["digest"] = _digest(record)
        atomic_write_text(path, json.dumps(record, indent=1))
        return timing


def _timing(record: Any, key: str, path: Path) -> StepTiming:
    """A cached `StepTiming`, checked (its digest, its key, every field's type)."""
    if (not isinstance(record, dict) or set(record) != {"key", "timing", "digest"}
            or record["digest"] != _digest(record)):
        raise DataError(f"{path}: not a timing record of this audit, or its content does not match its digest")
    data = record["timing"]
    fields = {f.name for f in dataclasses.fields(StepTiming)}
    if record["key"] != key or not isinstance(data, dict) or set(data) != fields:
        raise DataError(f"{path}: written for another audit setting, or its fields differ")
    if not (isinstance(data["short_seconds"], list) and isinstance(data["long_seconds"], list)):
        raise DataError(f"{path}: the timed seconds are not lists")
    numbers = (data["per_step"], data["reference_seconds"], *data["short_seconds"], *data["long_seconds"])
    if not (all(isinstance(data[k], int) and not isinstance(data[k], bool) for k in ("short_steps", "long_steps"))
            and isinstance(data["floored"], bool)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)):
        raise DataError(f"{path}: a field has the wrong type")
    return StepTiming(data["short_steps"], data["long_steps"], tuple(data["short_seconds"]),
                      tuple(data["long_seconds"]), data["per_step"], data["floored"], data["reference_seconds"])


def reference_runs(backend: EvaluatorBackend, candidates: Sequence[Candidate], cfg: Config,
                   cache: ReferenceCache, show: bool, *, backwards: bool = False) -> dict[int, list[Outcome]]:
    """Every candidate's reference outcome per seed, from the cache or run (and cached) now. The cache is
    read again before each run, so two processes can fill it at once: one going `backwards` (the last
    candidate and seed first), they meet in the middle and no run is done twice."""
    a = cfg.audit
    results: dict[int, list[Outcome | None]] = {
        s: [cache.get(c.id, s) for c in candidates] for s in a.reference_seeds}
    todo = [(s, i) for s in a.reference_seeds for i, o in enumerate(results[s]) if o is None]
    total = len(candidates) * len(a.reference_seeds)
    bar = tqdm(total=total, initial=total - len(todo), desc="reference", unit="run", disable=not show)
    for seed, i in reversed(todo) if backwards else todo:
        outcome = cache.get(candidates[i].id, seed)
        if outcome is None:
            (outcome,) = backend.run([candidates[i].genotype], "scratch", a.reference_steps, seed,
                                     a.reference_warmup_steps)
            cache.put(candidates[i].id, seed, outcome)
        results[seed][i] = outcome
        bar.update(1)
    bar.close()
    return {s: [o for o in outcomes if o is not None] for s, outcomes in results.items()}


def estimator_seed(cfg: Config) -> int:
    """Init/data-order seed of the short estimators: `evaluate.init_seed`, else one past the reference seeds
    (a short scratch run that shared a reference run's initialisation would look better than it is)."""
    return cfg.evaluate.init_seed if cfg.evaluate.init_seed is not None else max(cfg.audit.reference_seeds) + 1


def estimator_runs(backend: EvaluatorBackend, candidates: Sequence[Candidate], estimator: Estimator, steps: int,
                   cfg: Config, desc: str, show: bool, cache: ReferenceCache | None = None, *,
                   warmup: int | None = None, lr: float | None = None) -> list[Outcome]:
    """Every candidate under one estimator, one at a time (for the progress bar); from `cache` (an
    `EstimateStore.cache`) where it holds one, and written there as soon as it is run. `warmup`: the
    per-candidate warm-up steps; None = `evaluate.warmup_steps` (at most `steps`); `lr`: the peak learning
    rate, None = `evaluate.lr`."""
    seed = estimator_seed(cfg)
    warmup = min(cfg.evaluate.warmup_steps, steps) if warmup is None else warmup
    outcomes = []
    for c in tqdm(candidates, desc=desc, unit="cand", disable=not show):
        outcome = cache.get(c.id, seed) if cache is not None else None
        if outcome is None:
            (outcome,) = backend.run([c.genotype], estimator, steps, seed, warmup, lr)
            if cache is not None:
                cache.put(c.id, seed, outcome)
        outcomes.append(outcome)
    return outcomes


def matched_scratch(backend: EvaluatorBackend, candidates: Sequence[Candidate], target: str, seconds: float,
                    overhead: float, timing: StepTiming, cfg: Config, store: EstimateStore, show: bool
                    ) -> EstimatorRun:
    """The cost-matched scratch rival of estimator `target` (`seconds` per candidate): every candidate trained
    the steps those seconds buy (`matched_steps`) with its schedule fitted to that budget (warm-up a tenth of
    it, then linear decay to 0), cached in `store` per budget and warm-up."""
    cap = cfg.audit.reference_steps
    steps = matched_steps(seconds, overhead, timing.per_step, cap=cap)
    warmup = warmup_steps(steps)
    outcomes = estimator_runs(backend, candidates, "scratch", steps, cfg, f"scratch {steps} steps", show,
                              store.cache(f"scratch_s{steps}_w{warmup}"), warmup=warmup)
    return EstimatorRun(outcomes, {"kind": "scratch", "steps": steps, "matched_to": target, "warmup": warmup,
                                   "target_seconds": round(seconds, 3), "max_steps": cap},
                        f"scratch {steps} steps: −held-out loss")


def mean_seconds(run: EstimatorRun) -> float:
    """Mean seconds per candidate of an estimator, over every supernet it ran on."""
    return fmean(o.seconds for row in run.rows() for o in row)


def halving_runs(backend: EvaluatorBackend, candidates: Sequence[Candidate], biws_rows: Sequence[Sequence[Outcome]],
                 cfg: Config, store: EstimateStore, show: bool) -> EstimatorRun:
    """The `halving` estimator (`halving.py`) on each supernet's BIWS k = 0 row; its scratch runs (on `backend`,
    the estimators' seed, warm-up a tenth of the budget) cached per budget in `store` (`halving_s<steps>`),
    so the supernets share them, a killed audit resumes and a repeat runs nothing."""

    def scratch(chosen: Sequence[Candidate], steps: int, desc: str) -> list[Outcome]:
        return estimator_runs(backend, chosen, "scratch", steps, cfg, desc, show, store.cache(f"halving_s{steps}"),
                              warmup=warmup_steps(steps))

    return halving_estimator(candidates, biws_rows, cfg.audit.halving_steps, cfg.audit.halving_eta, scratch)


def proxy_runs(backend: EvaluatorBackend, candidates: Sequence[Candidate], cfg: Config, store: EstimateStore,
               show: bool) -> dict[str, list[Outcome]]:
    """The zero-cost proxies of every candidate: `init_loss` from the Evaluator (scratch, 0 steps), the others
    from `EvaluatorBackend.zero_cost`; cached in `store` like every estimate."""
    from autobert_zero.train.audit.proxies import PROXIES

    seed = estimator_seed(cfg)
    runs = {"init_loss": estimator_runs(backend, candidates, "scratch", 0, cfg, "proxy init loss", show,
                                        store.cache("proxy_init_loss"))}
    caches = {name: store.cache(f"proxy_{name}") for name in PROXIES}
    runs.update({name: [] for name in PROXIES})
    for c in tqdm(candidates, desc="zero-cost proxies", unit="cand", disable=not show):
        found = {name: cache.get(c.id, seed) for name, cache in caches.items()}
        if any(o is None for o in found.values()):
            fresh = backend.zero_cost(c.genotype, seed)
            for name, cache in caches.items():
                cache.put(c.id, seed, fresh[name])
            found = dict(fresh)
        for name in PROXIES:
            outcome = found[name]
            assert outcome is not None
            runs[name].append(outcome)
    return runs


Timer = Callable[[int, int, int], float]
"""Seconds of one scratch run of the timed candidate: (steps, init seed, warm-up steps) → seconds."""


@dataclass(frozen=True)
class StepTiming:
    """How the per-step cost was measured: `repeats` scratch runs of `short_steps` and of `long_steps` steps."""

    short_steps: int
    long_steps: int
    short_seconds: tuple[float, ...]
    long_seconds: tuple[float, ...]
    per_step: float
    """(median long − median short) / (long − short steps), at least `MIN_STEP_SECONDS`."""
    floored: bool
    """The difference of the medians was below the floor (timing noise exceeded the cost of the steps)."""
    reference_seconds: float
    """Estimated seconds of one reference run: median short + per_step × (reference steps − short steps)."""

    def to_json(self) -> dict[str, Any]:
        return {"method": "median of repeated scratch runs of the first candidate, timed in the audit process",
                "repeats": len(self.short_seconds), "short_steps": self.short_steps, "long_steps": self.long_steps,
                "short_seconds": [round(t, 4) for t in self.short_seconds],
                "long_seconds": [round(t, 4) for t in self.long_seconds],
                "median_short_seconds": round(statistics.median(self.short_seconds), 4),
                "median_long_seconds": round(statistics.median(self.long_seconds), 4),
                "per_step_seconds": round(self.per_step, 6), "per_step_floor": MIN_STEP_SECONDS,
                "floored": self.floored, "reference_seconds": round(self.reference_seconds, 3)}


def timed_reference(backend: EvaluatorBackend, candidate: Candidate, cfg: Config, *,
                    repeats: int = TIMING_REPEATS, timer: Timer | None = None) -> StepTiming:
    """The per-step cost and one reference run's seconds, timed now in this process: `repeats` scratch runs of
    1 and of 1 + n steps of `candidate` (n = min(`TIMING_STEPS`, reference steps − 1); the long ones at the
    reference's warm-up), interleaved so that a change of load hits both, each repeat under its own init seed
    (the Evaluator would return a cached result for the same one); medians, per-step floored at
    `MIN_STEP_SECONDS`. `timer` replaces the scratch runs (tests)."""
    a = cfg.audit
    if repeats < 1:
        raise ValueError(f"repeats = {repeats}: expected at least 1")

    def scratch(steps: int, seed: int, warmup: int) -> float:
        (outcome,) = backend.run([candidate.genotype], "scratch", steps, seed, warmup)
        return outcome.seconds

    run = timer or scratch
    n = min(TIMING_STEPS, a.reference_steps - 1)
    seed = estimator_seed(cfg) + 1  # not the estimators' own seed: their scratch results are cached
    short: list[float] = []
    long: list[float] = []
    for r in range(repeats):
        short.append(run(1, seed + r, 0))
        if n >= 1:
            long.append(run(1 + n, seed + r, min(a.reference_warmup_steps, n)))
    one = statistics.median(short)
    if n < 1:  # a 1-step reference: the 1-step run is the whole of it
        per_step, floored = max(one, MIN_STEP_SECONDS), one < MIN_STEP_SECONDS
        return StepTiming(1, 1, tuple(short), tuple(short), per_step, floored, one)
    measured = (statistics.median(long) - one) / n
    per_step = measured if math.isfinite(measured) and measured >= MIN_STEP_SECONDS else MIN_STEP_SECONDS
    return StepTiming(1, 1 + n, tuple(short), tuple(long), per_step, per_step != measured,
                      one + per_step * (a.reference_steps - 1))


def matched_steps(biws_seconds: float, overhead: float, per_step: float, *, cap: int) -> int:
    """Scratch steps whose predicted seconds (overhead + steps × per_step) match `biws_seconds`, clamped to
    [1, `cap`] (the reference's own step count: no estimator trains longer than the reference)."""
    if cap < 1:
        raise ValueError(f"cap = {cap}: expected at least 1")
    steps = (biws_seconds - overhead) / max(per_step, MIN_STEP_SECONDS)
    if not math.isfinite(steps):
        return cap if steps > 0 else 1
    return min(cap, max(1, round(steps)))


def audit_candidates(cfg: Config, num_layers: int, count: int, *, from_search: Sequence[str | os.PathLike[str]] = (),
                     exposure: int = 0) -> tuple[list[Candidate], str | None]:
    """The audit's candidates and the name of the exposure cluster's base (None without a cluster): the drawn
    set (`candidate_set`), or `count` from the search histories (`from_search.draw_from_searches`); then
    `exposure` one-edit mutants of a weak genotype (BERT, or the weakest `ok` genotype of the histories)."""
    if from_search:
        from autobert_zero.train.audit.from_search import draw_from_searches, read_searches

        pool = read_searches(list(from_search), num_layers)
        candidates = draw_from_searches(pool, count, cfg.seed)
        weakest = pool.weakest()
        base, label = weakest.genotype, f"{weakest.where} (fitness {weakest.line.fitness}, the weakest ok genotype)"
    else:
        candidates = candidate_set(num_layers, count, cfg.seed, neighbours=cfg.audit.neighbours)
        base, label = shipped("bert", num_layers), "bert"
    if not exposure:
        return candidates, None
    return [*candidates, *exposure_cluster(base, exposure, cfg.seed, label=label, existing=candidates)], label


def run_audit(backend: EvaluatorBackend | Sequence[EvaluatorBackend], cfg: Config,
              candidates: int | Sequence[Candidate], *, show: bool = True, context: dict[str, Any] | None = None,
              timer: Timer | None = None, supernet_seconds: float | None = None,
              exposure_base: str | None = None) -> dict[str, Any]:
    """Measure everything and return the `audit.json` mapping (writes only the caches). `backend`: one per
    supernet (the first also runs the reference, scratch and proxies); `candidates`: a list, or a count for
    the drawn set; `timer` replaces the timed scratch runs of the cost matching (`timed_reference`);
    `supernet_seconds`: the training seconds of one supernet, for the amortised costs."""
    a = cfg.audit
    check_halving(cfg)  # before any run
    backends = list(backend) if isinstance(backend, Sequence) else [backend]
    first = backends[0]
    candidates = (candidate_set(first.num_layers, candidates, cfg.seed, neighbours=a.neighbours)
                  if isinstance(candidates, int) else list(candidates))
    cache = reference_cache(cfg, first.prepared.tokenizer)
    reference = reference_runs(first, candidates, cfg, cache, show)  # first: the costly, cached part
    store = EstimateStore(cache, [b.identity for b in backends], cfg)
    several = len(backends) > 1
    estimators: dict[str, EstimatorRun] = {}
    for k in a.biws_steps:
        rows = [estimator_runs(b, candidates, "biws", k, cfg, f"biws k={k}" + (f" supernet {s + 1}" if several else ""),
                               show, store.cache(f"biws_k{k}@{b.identity}")) for s, b in enumerate(backends)]
        estimators[f"biws_k{k}"] = EstimatorRun(rows[0], {"kind": "biws", "k": k}, f"BIWS k={k}: −held-out loss",
                                                replicas=rows if several else (), uses_supernet=True)
    for k in (k for k in a.biws_steps if k > 0):
        for lr in a.biws_lrs:  # the k-step fine-tune properly scheduled: warm-up a tenth, at each lr
            name, w = f"biws_k{k}_lr{lr:g}", warmup_steps(k)
            rows = [estimator_runs(b, candidates, "biws", k, cfg, f"biws k={k} lr={lr:g}" + (
                f" supernet {s + 1}" if several else ""), show, store.cache(f"{name}_w{w}@{b.identity}"),
                warmup=w, lr=lr) for s, b in enumerate(backends)]
            estimators[name] = EstimatorRun(rows[0], {"kind": "biws", "k": k, "lr": lr, "warmup": w},
                                            f"BIWS k={k}, lr {lr:g}, warm-up {w}: −held-out loss",
                                            replicas=rows if several else (), uses_supernet=True)
    timing = store.timing(candidates[0], lambda: timed_reference(first, candidates[0], cfg, timer=timer))
    overhead = mean_seconds(estimators["biws_k0"]) if 0 in a.biws_steps else 0.0
    for k in a.biws_steps:
        if k == 0:
            continue  # a scratch model with no training step is not a cost-matched estimator (see proxy_init_loss)
        estimators[f"scratch_k{k}"] = matched_scratch(first, candidates, f"biws_k{k}",
                                                      mean_seconds(estimators[f"biws_k{k}"]), overhead, timing, cfg,
                                                      store, show)
    if a.halving_steps:
        estimators["halving"] = halving_runs(first, candidates, estimators["biws_k0"].rows(), cfg, store, show)
        estimators["scratch_halving"] = matched_scratch(  # its rival at equal total cost: every candidate trained
            first, candidates, "halving", mean_seconds(estimators["halving"]), overhead, timing, cfg, store, show)
    axes = {"init_loss": "−held-out MLM loss at initialisation", "grad_norm": "gradient norm at initialisation",
            "synflow": "synflow at initialisation"}
    for name, outcomes in proxy_runs(first, candidates, cfg, store, show).items():
        estimators[f"proxy_{name}"] = EstimatorRun(outcomes, {"kind": "zero-cost", "proxy": name}, axes[name])
    measured = [*(row for run in estimators.values() for row in run.rows()), *reference.values()]
    sizes = [next(((o[i].params, o[i].flops_per_token) for o in measured if o[i].params is not None), (0, 0.0))
             for i in range(len(candidates))]
    inputs = AuditInputs(
        candidates=candidates, params=[int(p or 0) for p, _ in sizes], flops_per_token=[f or 0.0 for _, f in sizes],
        reference=reference, reference_steps=a.reference_steps, reference_seconds=timing.reference_seconds,
        estimators=estimators, size_prior=a.size_prior,
        prior_weight=cfg.evaluate.prior_weight, combine=[f"biws_k{k}" for k in a.biws_steps],
        hurdles=[(f"biws_k{k}", f"scratch_k{k}") for k in a.biws_steps if k > 0],
        bootstrap_samples=a.bootstrap_samples, seed=cfg.seed, supernets=len(backends),
        supernet_seconds=supernet_seconds, amortise_over=TYPICAL_SEARCH, exposure_base=exposure_base,
        context={**(context or {}), "num_layers": first.num_layers, "hidden_size": cfg.model.hidden_size,
                 "num_attention_heads": cfg.model.num_attention_heads, "seq_len": cfg.data.max_seq_length,
                 "estimator_seed": estimator_seed(cfg), "config_hash": cache.key,
                 "reference_cache": str(cache.folder), "estimate_cache": str(store.folder),
                 "cost_timing": timing.to_json(),
                 "cost_ratio_note": "seconds of ONE reference run (one seed), timed in this process next to the "
                                    "estimators, / the estimator's seconds; the two-seed reference costs twice "
                                    "that"})
    return build_report(inputs)


def write_outputs(report: dict[str, Any], out: Path) -> str:
    """`audit.json` and `audit.png` into `out` (atomically); returns the printed table."""
    atomic_write_text(out / "audit.json", json.dumps(report, indent=1, allow_nan=False))
    write_plot(report, out / "audit.png")
    return table(report)


def supernet_seconds(folder: str | os.PathLike[str]) -> float | None:
    """A supernet's training seconds, estimated from its `summary.json`: steps × train batch × block length /
    tokens per second (the rate of its last run; None when the summary lacks any of them)."""
    path = Path(folder) / "summary.json"
    try:
        summary = read_json(path, DataError, max_depth=4, max_bytes=1 << 20)
    except DataError:
        return None
    if not isinstance(summary, dict):
        return None
    values = [summary.get(k) for k in ("steps", "train_batch_size", "block_length", "tokens_per_s")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        return None
    steps, batch, block, rate = values
    return float(steps * batch * block / rate)  # type: ignore[operator]


def _as_list(supernet_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(supernet_dir, (str, os.PathLike)):
        return [Path(supernet_dir)]
    return [Path(d) for d in supernet_dir]


def audit(supernet_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], count: int,
          out_dir: str | os.PathLike[str], config: Config | str | os.PathLike[str] | None = None, *,
          cache_dir: str | None = None, force: bool = False, show: bool = True,
          from_search: Sequence[str | os.PathLike[str]] = (), exposure: int = 0) -> tuple[dict[str, Any], str]:
    """The whole `abz audit`: checks, measurements, `OUT/audit.json` + `OUT/audit.png`; returns the report and
    its table. `supernet_dir`: one folder or several (each supernet's BIWS estimates made separately; the
    first's config is the default config). Bad input fails before any training and before the output folder
    is made (folders, config, candidate count, search histories)."""
    from autobert_zero.run_dir import open_run_dir
    from autobert_zero.train.checkpoint import vocabulary_sha256

    supernets = _as_list(supernet_dir)
    if not supernets:
        raise ConfigError("abz audit needs at least one --supernet folder")
    if len(set(map(str, supernets))) != len(supernets):
        raise ConfigError(f"--supernet {' '.join(map(str, supernets))}: a folder is given twice")
    cfg = load_audit_config(supernets[0], config)
    for folder in supernets[1:]:
        if not folder.is_dir():
            raise ConfigError(f"--supernet {folder}: no such folder (expected the --out folder of an `abz supernet` "
                              f"run)")
    if cache_dir is not None:
        cfg.audit.cache_dir = cache_dir
    if not from_search:
        neighbour_count(count, cfg.audit.neighbours)  # a bad count is refused before anything is loaded
    from autobert_zero.train.supernet import load_supernet

    loaded = [load_supernet(folder, cfg) for folder in supernets]  # a damaged folder or other sizes: refused here
    depths = {folder: sn.active.num_layers for folder, (sn, _) in zip(supernets, loaded, strict=True)}
    vocabularies = {folder: vocabulary_sha256(tok)[:12] for folder, (_, tok) in zip(supernets, loaded, strict=True)}
    for what, values, unit in (("depth", depths, " layers"), ("vocabulary", vocabularies, "")):
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{folder}: {value}{unit}" for folder, value in values.items())
            raise SupernetError(f"the supernets differ in {what} ({listing}); an audit compares supernets of one "
                                f"config, depth and tokenizer")
    candidates, exposure_base = audit_candidates(cfg, depths[supernets[0]], count, from_search=from_search,
                                                 exposure=exposure)
    del loaded
    seconds = [supernet_seconds(folder) for folder in supernets]
    known = [t for t in seconds if t is not None]
    with open_run_dir(out_dir, "abz audit", force=force, outputs=OUTPUTS, can_resume=False) as run:
        backends = [EvaluatorBackend(supernets[0], cfg, show)]
        backends += [EvaluatorBackend(folder, cfg, show, prepared=backends[0].prepared) for folder in supernets[1:]]
        report = run_audit(backends, cfg, candidates, show=show, supernet_seconds=fmean(known) if known else None,
                           exposure_base=exposure_base,
                           context={"supernet": str(supernets[0]), "supernet_dirs": [str(f) for f in supernets],
                                    "supernet_training_seconds": seconds, "config": cfg.source,
                                    "candidate_source": ({"from_search": [str(f) for f in from_search]}
                                                         if from_search else "drawn"),
                                    "exposure_mutants": exposure})
        return report, write_outputs(report, run.path)


def fill_reference(count: int, config: Config | str | os.PathLike[str], *, cache_dir: str | None = None,
                   show: bool = True, from_search: Sequence[str | os.PathLike[str]] = (), exposure: int = 0,
                   convergence_subset: int | None = None) -> Path:
    """Run (or find) the reference runs of the audit's candidates at the config's host depth, with no supernet
    (e.g. in a second process while the audit trains its supernet), last candidate first so that it meets
    the audit's own forward pass in the middle; returns the cache folder the audit will read. With
    `convergence_subset` M, then also the 2× references of the convergence check's subset (`reference_convergence`
    with M), last first, so that a second process shares that check's runs too."""
    cfg = resolve_config(config)
    cfg.audit = dataclasses.replace(cfg.audit, cache_dir=cache_dir or cfg.audit.cache_dir)
    check_audit_config(cfg)
    if not from_search:
        neighbour_count(count, cfg.audit.neighbours)
    backend = EvaluatorBackend(None, cfg, show)
    candidates, _ = audit_candidates(cfg, backend.num_layers, count, from_search=from_search, exposure=exposure)
    cache = reference_cache(cfg, backend.prepared.tokenizer)
    reference = reference_runs(backend, candidates, cfg, cache, show, backwards=True)
    if convergence_subset is not None:
        ok = [all(reference[s][i].ok for s in reference) for i in range(len(candidates))]
        chosen = [c for c, good in zip(candidates, ok, strict=True) if good]
        chosen = [chosen[i] for i in convergence_choice(len(chosen), convergence_subset, cfg.seed)]
        double = double_reference_config(cfg)
        longer = EvaluatorBackend(None, double, show, prepared=backend.prepared)
        reference_runs(longer, chosen, double, reference_cache(double, backend.prepared.tokenizer), show,
                       backwards=True)
    return cache.folder


def convergence_choice(scored: int, subset: int, seed: int) -> list[int]:
    """The convergence check's subset: `subset` of the `scored` candidates (indices in the audit's order among
    those whose reference runs all succeeded), drawn with the config seed; refused below 3."""
    import random

    if subset < 3 or scored < 3:
        raise ConfigError(f"the convergence check needs a subset of at least 3 scored candidates (asked {subset}, "
                          f"{scored} scored)")
    return sorted(random.Random(f"audit-convergence-{seed}").sample(range(scored), min(subset, scored)))


def double_reference_config(cfg: Config) -> Config:
    """`cfg` with the reference at twice its steps and warm-up (the convergence check's longer reference)."""
    return dataclasses.replace(cfg, audit=dataclasses.replace(
        cfg.audit, reference_steps=2 * cfg.audit.reference_steps,
        reference_warmup_steps=2 * cfg.audit.reference_warmup_steps))


def reference_convergence(report: dict[str, Any], supernet_dir: str | os.PathLike[str], config: Config, *,
                          subset: int, show: bool = True) -> dict[str, Any]:
    """Does the reference rank as a reference of twice its budget would? On a seeded subset of `subset`
    scored candidates of `report` (`convergence_choice`): the same reference seeds trained 2 ×
    `audit.reference_steps` steps (with 2 × the warm-up; cached like any reference, under its own config hash,
    so `fill_reference(convergence_subset=subset)` in a second process shares the work); τ between the two
    references' seed means; converged when τ ≥ `CONVERGENCE_TAU`."""
    cfg = dataclasses.replace(config, audit=dataclasses.replace(config.audit))
    scored = [c for c in report["candidates"] if c["reference"]["score"] is not None]
    rows = [scored[i] for i in convergence_choice(len(scored), subset, cfg.seed)]
    candidates = [Candidate(r["name"], r["kind"], parse_genotype(r["genotype"]), r["detail"]) for r in rows]
    double = double_reference_config(cfg)
    backend = EvaluatorBackend(Path(supernet_dir), double, show)
    longer = reference_runs(backend, candidates, double, reference_cache(double, backend.prepared.tokenizer), show)
    ok = [j for j in range(len(rows)) if all(longer[s][j].ok for s in longer)]
    once = [rows[j]["reference"]["score"] for j in ok]
    twice = [fmean(float(longer[s][j].score or 0.0) for s in longer) for j in ok]
    tau = kendall_tau(once, twice) if len(ok) >= 2 else math.nan
    return {"subset": [r["name"] for r in rows], "scored_at_both_budgets": len(ok),
            "steps": cfg.audit.reference_steps, "double_steps": double.audit.reference_steps,
            "tau": None if math.isnan(tau) else round(tau, 4), "threshold": CONVERGENCE_TAU,
            "converged": (not math.isnan(tau)) and tau >= CONVERGENCE_TAU}
