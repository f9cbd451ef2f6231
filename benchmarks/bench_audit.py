"""The ranking audit at full size on real text: a 12-layer BIWS supernet, then `abz audit`.

Trains the supernet of `configs/audit.yaml` (12 layers as Figure 7, hidden 64, 2 heads) on
WikiText-2 raw + the NLTK corpora of shared/data, unless `--supernet DIR` already holds a finished one (an
unfinished one is resumed), then runs the audit (`train/audit/run.py`): N candidates, BIWS for each k of
`audit.biws_steps`, scratch at the same seconds, parameters alone, rank combinations, against scratch
training of `audit.reference_steps` steps averaged over two seeds. The reference runs are cached in
`--cache` (default runs/audit-cache), so a killed benchmark continues where it stopped when started again.
Writes benchmarks/results/audit.json (the audit report plus machine and timings) and audit.png, and prints
the table. Variants of the supernet (`--per-branch norm ffn uses_v`, `--population [--fair [--fair-exponent
X]] | --held-out`) go with `--tag NAME` (results audit-NAME.json/png) and their own `--supernet`/`--out`
folders; they reuse the cached reference runs. `--held-out` trains the supernet on N other candidates (those
the audit's 2N-candidate set adds), never on the N it ranks: what a search does to a new child.
`--reference-only` fills the reference cache alone (no supernet), e.g. in a second process while the
supernet trains; it goes last candidate first while the audit goes first candidate first, and both re-read
the cache before each run, so they meet halfway and no run is done twice.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_audit     # the full audit
    # or in two processes (both cores): the second fills the reference cache from the other end
    OMP_NUM_THREADS=1 python -m benchmarks.bench_audit --reference-only &
    OMP_NUM_THREADS=1 python -m benchmarks.bench_audit
    python -m benchmarks.bench_audit --candidates 4 --supernet-steps 10 --reference-steps 4 \\
        --biws-steps 0 2 --bootstrap 100 --out /tmp/audit-dry --supernet /tmp/audit-dry-sn \\
        --cache /tmp/audit-dry-cache --results /tmp/audit-dry-results   # a dry run of a few minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from autobert_zero.config.load import load_config
from autobert_zero.config.paths import data_dir
from autobert_zero.config.schema import Config
from autobert_zero.io import atomic_write_text
from autobert_zero.train.audit.run import audit, fill_reference
from autobert_zero.train.checkpoint import read_latest
from autobert_zero.train.supernet import train_supernet
from benchmarks.report import RESULTS, commit, machine

CORPORA = ("wikitext-2-raw", "nltk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/audit.yaml")
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--supernet", default="runs/audit-supernet", help="supernet folder (trained if absent)")
    parser.add_argument("--supernet-steps", type=int, help="supernet steps (default: pretrain.max_steps)")
    parser.add_argument("--reference-steps", type=int, help="override audit.reference_steps")
    parser.add_argument("--biws-steps", type=int, nargs="+", help="override audit.biws_steps")
    parser.add_argument("--bootstrap", type=int, help="override audit.bootstrap_samples")
    parser.add_argument("--out", default="runs/audit", help="audit folder (its audit.json/png are replaced)")
    parser.add_argument("--cache", default="runs/audit-cache", help="reference cache folder")
    parser.add_argument("--results", default=str(RESULTS), help="where audit.json and audit.png are copied")
    parser.add_argument("--tag", default="", help="variant name: results go to audit-TAG.json/png")
    parser.add_argument("--per-branch", nargs="*", choices=("norm", "ffn", "uses_v"),
                        help="override supernet.per_branch (few-shot splits: norm/ffn per branch, uses_v)")
    parser.add_argument("--population", action="store_true",
                        help="train the supernet on the audit's own candidates (supernet.strategy population): "
                             "the most favourable case of population sampling")
    parser.add_argument("--held-out", action="store_true",
                        help="train the supernet on a held-out population: the N candidates that a 2N-candidate "
                             "audit adds (same kinds: Figure-7 mutants and samples), none of the N it ranks")
    parser.add_argument("--fair", action="store_true",
                        help="with --population: draw the candidates with exposure-equalising weights "
                             "(supernet.strategy fair) instead of uniformly")
    parser.add_argument("--fair-exponent", type=float,
                        help="with --fair: override supernet.fair_exponent (power of the exposure weights)")
    parser.add_argument("--reference-only", action="store_true",
                        help="only fill the reference cache (no supernet needed; e.g. while one trains)")
    args = parser.parse_args()
    if args.population and args.held_out:
        parser.error("--population trains on the audit's own candidates, --held-out on others: give one")
    if args.fair and not args.population:
        parser.error("--fair chooses how the audit's population is drawn; it needs --population")
    if args.fair_exponent is not None and not args.fair:
        parser.error("--fair-exponent tempers the --fair weights; it needs --fair")

    cfg = real_text_config(args.config)
    if args.supernet_steps is not None:
        cfg.pretrain = dataclasses.replace(cfg.pretrain, max_steps=args.supernet_steps,
                                           warmup_steps=min(cfg.pretrain.warmup_steps, args.supernet_steps // 10),
                                           checkpoint_every=min(cfg.pretrain.checkpoint_every, args.supernet_steps))
    audit_changes = {"reference_steps": args.reference_steps, "biws_steps": args.biws_steps,
                     "bootstrap_samples": args.bootstrap}
    cfg.audit = dataclasses.replace(cfg.audit, **{k: v for k, v in audit_changes.items() if v is not None})
    if args.reference_steps is not None:
        cfg.audit.reference_warmup_steps = reference_warmup(cfg, args.reference_steps)

    if args.reference_only:
        folder = fill_reference(args.candidates, cfg, cache_dir=args.cache)
        print(f"reference runs of {args.candidates} candidates are in {folder}")
        return
    if args.per_branch is not None:
        cfg.supernet = dataclasses.replace(cfg.supernet, per_branch=list(args.per_branch))
    supernet = Path(args.supernet)
    if args.population:
        cfg.supernet = dataclasses.replace(cfg.supernet, strategy="fair" if args.fair else "population",
                                           population=[str(write_population(cfg, args.candidates, supernet))])
        if args.fair_exponent is not None:
            cfg.supernet.fair_exponent = args.fair_exponent
    elif args.held_out:
        population = write_population(cfg, args.candidates, supernet, held_out=True)
        cfg.supernet = dataclasses.replace(cfg.supernet, strategy="population", population=[str(population)])
    t0 = time.perf_counter()
    if not (supernet / "summary.json").is_file():
        resume = read_latest(supernet / "checkpoints") is not None
        train_supernet(cfg, supernet, resume=resume, force=not resume)  # killed before its first checkpoint: anew
    supernet_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    report, table = audit(supernet, args.candidates, args.out, cfg, cache_dir=args.cache, force=True)
    audit_seconds = time.perf_counter() - t1
    print(table)

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "audit", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
               "commit": commit(),
               "command": "python -m benchmarks.bench_audit " + " ".join(given_words(args, parser)),
               "supernet_dir": str(supernet), "supernet_steps": cfg.pretrain.max_steps,
               "supernet_seconds_this_run": round(supernet_seconds, 1), "audit_seconds": round(audit_seconds, 1),
               **report}
    from autobert_zero.io import atomic_write_text

    name = f"audit-{args.tag}" if args.tag else "audit"
    atomic_write_text(results / f"{name}.json", json.dumps(payload, indent=1) + "\n")
    shutil.copyfile(Path(args.out) / "audit.png", results / f"{name}.png")
    print(f"\nwrote {results / name}.json and .png (supernet {supernet_seconds:.0f} s, audit {audit_seconds:.0f} s)")


def real_text_config(path: str) -> Config:
    """The audit config at `path`, reading WikiText-2 raw + the NLTK corpora of shared/data."""
    cfg = load_config(path)
    cfg.data = dataclasses.replace(cfg.data, corpus=[str(data_dir() / name) for name in CORPORA])
    return cfg


def reference_warmup(cfg: Config, reference_steps: int) -> int:
    """The config's reference warm-up, capped at a tenth of an overridden reference length."""
    return min(cfg.audit.reference_warmup_steps, reference_steps // 10)


def write_population(cfg: Config, count: int, supernet: Path, *, held_out: bool = False) -> Path:
    """The audit's candidates as .abz files in a folder beside the supernet's (same set as the audit draws);
    `held_out`: instead the `count` candidates that the audit's set of 2 × `count` adds to them."""
    from autobert_zero.config.paths import resolve_shipped
    from autobert_zero.grammar import load_genotype
    from autobert_zero.train.audit.candidates import candidate_set

    layers = load_genotype(resolve_shipped(cfg.genotype)).num_layers
    folder = supernet.with_name(supernet.name + "-population")
    ranked = candidate_set(layers, count, cfg.seed, neighbours=cfg.audit.neighbours)
    if held_out:
        seen = {c.id for c in ranked}
        pool = candidate_set(layers, 2 * count, cfg.seed, neighbours=cfg.audit.neighbours)
        ranked = [c for c in pool if c.id not in seen][:count]
    for c in ranked:
        atomic_write_text(folder / f"{c.name}.abz", c.genotype.to_text())
    return folder


def given_words(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The arguments that differ from their defaults, as command-line words (positionals without a name)."""
    words: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest == "help" or value == action.default:
            continue
        values = [] if value is True else value if isinstance(value, list) else [value]  # a flag has no value
        words += [*action.option_strings[:1], *map(str, values)]
    return words


if __name__ == "__main__":
    main()
