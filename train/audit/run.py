"""`abz audit`: how well does each cheap estimator rank candidates, against full-budget scratch training?

Steps: the candidate set at the supernet's depth (`audit_candidates`); the reference — scratch training for
`audit.reference_steps`, once per `audit.reference_seeds` — read from or written to the reference cache
(`fill_reference` fills it with no supernet); BIWS for each k of `audit.biws_steps`; scratch at the same
seconds per candidate as each BIWS k (the cost-matched baseline); then the figures (`audit_report`),
`OUT/audit.json`, `OUT/audit.png` and a table. Every estimate comes from the project's one evaluation entry
point, `train.evaluate.Evaluator`: nothing here trains a model.

Cost matching: seconds(steps) ≈ overhead + steps × per_step, with the overhead measured by BIWS k = 0
(extract + score, no training; 0 when k = 0 is not tried) and per_step timed in this process, next to the
estimators (`timed_reference`: scratch runs of 1 and 1 + n steps of the first candidate, each repeated
`TIMING_REPEATS` times, per_step = (median long − median short) / n floored at `MIN_STEP_SECONDS`, so a
reference cache filled earlier, on another machine or under another load, does not skew the comparison and
a noisy short run cannot make per_step vanish); the matched scratch gets round((seconds of BIWS k −
overhead) / per_step) steps, clamped to [1, `audit.reference_steps`] (a cheap estimator never trains longer
than the reference), and both measured costs and the timing itself are reported, so the match can be
checked. Cost ratios divide the same-process estimate of one reference run (median 1-step seconds +
per_step × (reference steps − 1)) by each estimator's seconds; the cached runs' own mean seconds are
reported beside it.

The reference cache (`audit.cache_dir`) holds one JSON file per (genotype id, seed) under a folder named
by the config hash (everything that changes a reference result: sizes, data, the vocabulary's sha256, the
`pretrain:` batch keys and weight decay, `evaluate:` lr and batch, DeepSpeed, the reference steps; not the
supernet's own schedule); files are written atomically as soon as a run ends, so a killed audit resumes where
it stopped and later audits reuse what matches. Each file carries a sha256 of its content and is checked
against a schema when read: a damaged or edited entry is reported and run again, never used.
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
from typing import Any

from tqdm.auto import tqdm

from autobert_zero.config.schema import Config, Estimator
from autobert_zero.errors import ConfigError, DataError
from autobert_zero.grammar import Genotype
from autobert_zero.io import atomic_write_text
from autobert_zero.json_files import read_json
from autobert_zero.train.audit.candidates import Candidate, candidate_set, neighbour_count
from autobert_zero.train.audit.plot import table, write_plot
from autobert_zero.train.audit.report import AuditInputs, EstimatorRun, Outcome, build_report
from autobert_zero.train.mlm import resolve_config

OUTPUTS = ("audit.json", "audit.png")
CACHE_VERSION = 2
"""2: the key holds the vocabulary's sha256, each entry a sha256 of its content."""
TIMING_REPEATS = 3
"""Timed scratch runs of each length for the per-step cost (their median is used)."""
TIMING_STEPS = 100
"""Steps the long timed run adds to the 1-step one (fewer when the reference is shorter)."""
MIN_STEP_SECONDS = 1e-4
"""Floor of the measured seconds per training step: a difference of two noisy timings can be ≤ 0."""


class EvaluatorBackend:
    """The evaluation stack as the audit uses it: one `Evaluator` per (estimator, steps, init seed, warm-up),
    all sharing the data and tokenizer prepared once (those of the supernet)."""

    def __init__(self, supernet_dir: Path | None, cfg: Config, show: bool) -> None:
        from autobert_zero.train.evaluate import Evaluator
        from autobert_zero.train.models import resolve_genotype

        self.supernet_dir, self.cfg, self.show = supernet_dir, cfg, show
        self._evaluators: dict[tuple[str, int, int, int], Evaluator] = {}
        if supernet_dir is None:  # scratch only (filling the reference cache): the config's host sets the depth
            first = self._evaluator("scratch", 1, cfg.seed, 0)
            self.num_layers: int = resolve_genotype(dataclasses.replace(cfg), None).num_layers
        else:
            first = self._evaluator("biws", 0, cfg.seed, 0)
            self.num_layers = first.supernet.active.num_layers
        self.prepared = first.prepared

    def _evaluator(self, estimator: Estimator, steps: int, seed: int, warmup: int) -> Any:
        from autobert_zero.train.evaluate import Evaluator

        key = (estimator, steps, seed, warmup)
        if key not in self._evaluators:
            evaluate = dataclasses.replace(self.cfg.evaluate, estimator=estimator, steps=steps, init_seed=seed,
                                           warmup_steps=warmup, size_prior=None, glue_task=None)
            cfg = dataclasses.replace(self.cfg, evaluate=evaluate)
            supernet = self.supernet_dir if estimator == "biws" else None
            prepared = getattr(self, "prepared", None)  # the first evaluator prepares (and shows that)
            self._evaluators[key] = Evaluator(cfg, supernet, prepared=prepared,
                                              show_progress=self.show and prepared is None)
        return self._evaluators[key]

    def run(self, genotypes: Sequence[Genotype], estimator: Estimator, steps: int, seed: int, warmup: int
            ) -> list[Outcome]:
        """Each genotype scored by `estimator` ("scratch" or "biws") after `steps` steps (init seed `seed`)."""
        results = self._evaluator(estimator, steps, seed, warmup).evaluate(genotypes)
        return [Outcome(r.score, r.eval_loss, r.seconds, r.status, r.reason, r.params, r.flops_per_token)
                for r in results]


def check_audit_config(cfg: Config) -> None:
    """Refuse audit settings no field check catches (distinct seeds and k values, an estimator seed that is a
    reference seed); the schema has checked each field (at least two seeds, one k, none negative,
    `audit.size_prior` among `SIZE_PRIORS`)."""
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
    data["held_out_seed"] = cfg.seed
    data["vocab_sha256"] = vocab_sha256
    data["reference"] = {"steps": cfg.audit.reference_steps, "warmup": cfg.audit.reference_warmup_steps,
                         "version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class ReferenceCache:
    """Reference outcomes on disk, one atomic JSON file per (genotype id, seed), each with a sha256 of its
    content (`digest`)."""

    def __init__(self, root: str | os.PathLike[str] | None, key: str) -> None:
        base = Path(root).expanduser() if root else Path.home() / ".cache" / "autobert_zero" / "audit"
        self.key = key
        self.folder = base / key[:16]

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
            print(f"abz audit: ignoring reference cache entry {problem}; running it again", file=sys.stderr)
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
                   cfg: Config, desc: str, show: bool) -> list[Outcome]:
    """Every candidate under one estimator, one at a time (for the progress bar)."""
    seed = estimator_seed(cfg)
    warmup = min(cfg.evaluate.warmup_steps, steps)
    return [backend.run([c.genotype], estimator, steps, seed, warmup)[0]
            for c in tqdm(candidates, desc=desc, unit="cand", disable=not show)]


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


def _mean_seconds(outcomes: Sequence[Outcome]) -> float:
    return sum(o.seconds for o in outcomes) / len(outcomes)


def run_audit(backend: EvaluatorBackend, cfg: Config, count: int, *, show: bool = True,
              context: dict[str, Any] | None = None, timer: Timer | None = None) -> dict[str, Any]:
    """Measure everything and return the `audit.json` mapping (writes only the reference cache). `timer`
    replaces the timed scratch runs of the cost matching (`timed_reference`)."""
    a = cfg.audit
    candidates = candidate_set(backend.num_layers, count, cfg.seed, neighbours=a.neighbours)
    cache = reference_cache(cfg, backend.prepared.tokenizer)
    reference = reference_runs(backend, candidates, cfg, cache, show)  # first: the costly, cached part
    estimators: dict[str, EstimatorRun] = {}
    for k in a.biws_steps:
        outcomes = estimator_runs(backend, candidates, "biws", k, cfg, f"biws k={k}", show)
        estimators[f"biws_k{k}"] = EstimatorRun(outcomes, {"kind": "biws", "k": k}, f"BIWS k={k}: −held-out loss")
    timing = timed_reference(backend, candidates[0], cfg, timer=timer)
    overhead = _mean_seconds(estimators["biws_k0"].outcomes) if 0 in a.biws_steps else 0.0
    for k in a.biws_steps:
        if k == 0:
            continue  # a scratch model with no training step is not an estimator
        biws_seconds = _mean_seconds(estimators[f"biws_k{k}"].outcomes)
        steps = matched_steps(biws_seconds, overhead, timing.per_step, cap=a.reference_steps)
        outcomes = estimator_runs(backend, candidates, "scratch", steps, cfg, f"scratch {steps} steps", show)
        estimators[f"scratch_k{k}"] = EstimatorRun(
            outcomes, {"kind": "scratch", "steps": steps, "matched_to": f"biws_k{k}",
                       "target_seconds": round(biws_seconds, 3), "max_steps": a.reference_steps},
            f"scratch {steps} steps: −held-out loss")
    measured = [*(run.outcomes for run in estimators.values()), *reference.values()]
    sizes = [next(((o[i].params, o[i].flops_per_token) for o in measured if o[i].params is not None), (0, 0.0))
             for i in range(len(candidates))]
    inputs = AuditInputs(
        candidates=candidates, params=[int(p or 0) for p, _ in sizes], flops_per_token=[f or 0.0 for _, f in sizes],
        reference=reference, reference_steps=a.reference_steps, reference_seconds=timing.reference_seconds,
        estimators=estimators, size_prior=a.size_prior,
        prior_weight=cfg.evaluate.prior_weight, combine=[f"biws_k{k}" for k in a.biws_steps],
        hurdles=[(f"biws_k{k}", f"scratch_k{k}") for k in a.biws_steps if k > 0],
        bootstrap_samples=a.bootstrap_samples, seed=cfg.seed,
        context={**(context or {}), "num_layers": backend.num_layers, "hidden_size": cfg.model.hidden_size,
                 "num_attention_heads": cfg.model.num_attention_heads, "seq_len": cfg.data.max_seq_length,
                 "estimator_seed": estimator_seed(cfg), "config_hash": cache.key,
                 "reference_cache": str(cache.folder), "cost_timing": timing.to_json(),
                 "cost_ratio_note": "seconds of ONE reference run (one seed), timed in this process next to the "
                                    "estimators, / the estimator's seconds; the two-seed reference costs twice "
                                    "that"})
    return build_report(inputs)


def write_outputs(report: dict[str, Any], out: Path) -> str:
    """`audit.json` and `audit.png` into `out` (atomically); returns the printed table."""
    atomic_write_text(out / "audit.json", json.dumps(report, indent=1, allow_nan=False))
    write_plot(report, out / "audit.png")
    return table(report)


def audit(supernet_dir: str | os.PathLike[str], count: int, out_dir: str | os.PathLike[str],
          config: Config | str | os.PathLike[str] | None = None, *, cache_dir: str | None = None,
          force: bool = False, show: bool = True) -> tuple[dict[str, Any], str]:
    """The whole `abz audit`: checks, measurements, `OUT/audit.json` + `OUT/audit.png`; returns the report and
    its table. Bad input fails before any training (folder, config, candidate count)."""
    from autobert_zero.run_dir import open_run_dir

    supernet = Path(supernet_dir)
    cfg = load_audit_config(supernet, config)
    if cache_dir is not None:
        cfg.audit.cache_dir = cache_dir
    neighbour_count(count, cfg.audit.neighbours)  # a bad count is refused before anything is loaded
    from autobert_zero.train.supernet import load_supernet

    load_supernet(supernet, cfg)  # a damaged folder or other sizes are refused before the output folder is made
    with open_run_dir(out_dir, "abz audit", force=force, outputs=OUTPUTS, can_resume=False) as run:
        backend = EvaluatorBackend(supernet, cfg, show)
        report = run_audit(backend, cfg, count, show=show,
                           context={"supernet": str(supernet), "config": cfg.source})
        return report, write_outputs(report, run.path)


def fill_reference(count: int, config: Config | str | os.PathLike[str], *, cache_dir: str | None = None,
                   show: bool = True) -> Path:
    """Run (or find) the reference runs of the `count` candidates at the config's host depth, with no supernet
    (e.g. in a second process while the audit trains its supernet), last candidate first so that it meets
    the audit's own forward pass in the middle; returns the cache folder the audit will read."""
    cfg = resolve_config(config)
    cfg.audit = dataclasses.replace(cfg.audit, cache_dir=cache_dir or cfg.audit.cache_dir)
    check_audit_config(cfg)
    neighbour_count(count, cfg.audit.neighbours)
    backend = EvaluatorBackend(None, cfg, show)
    candidates = candidate_set(backend.num_layers, count, cfg.seed, neighbours=cfg.audit.neighbours)
    cache = reference_cache(cfg, backend.prepared.tokenizer)
    reference_runs(backend, candidates, cfg, cache, show, backwards=True)
    return cache.folder
