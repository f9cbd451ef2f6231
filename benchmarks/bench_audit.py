"""The ranking audit at full size on real text: a 12-layer BIWS supernet, then `abz audit`.

Trains the supernet of `configs/audit.yaml` (12 layers as Figure 7, hidden 64, 2 heads) on WikiText-2 raw +
the NLTK corpora of shared/data, unless `--supernet DIR` already holds a finished one (an unfinished one is
resumed), then runs the audit (`train/audit/run.py`): N candidates, BIWS for each k of `audit.biws_steps`,
scratch at the same seconds, zero-cost proxies, parameters alone, rank combinations, against scratch training
of `audit.reference_steps` steps averaged over two seeds. The held-out text is document-disjoint
(`data.eval_corpus`): WikiText-2's test split and two Gutenberg books (`EVAL_TEXTS`), whose lines are dropped
from the training text (the rest of WikiText-2 raw and NLTK); `--held-out-from-corpus` draws held-out blocks
from the training corpus instead, as audits before it did. The reference runs are cached in `--cache` (default
runs/audit-cache), and so are the estimates and the cost timing, so a killed benchmark continues where it
stopped when started again, with identical figures. Writes benchmarks/results/audit.json (the audit report plus
machine and timings) and audit.png, and prints the table.

Candidates: the drawn set by default; `--from-search DIR [DIR ...]` draws them from search histories (a third
from the top decile, a quarter as sibling groups, the rest uniform); `--exposure-control N` adds N one-edit
mutants of a weak genotype, which `--population` puts into the supernet's population `--exposure-copies` times
each (over-represented: if a BIWS fitness lifts them, it measures exposure, not quality). `--also-supernet
DIR ...` audits further finished supernets of the same config beside the trained one (each one's estimates
made separately, the bootstrap resamples supernets too). `--convergence-check M` trains the reference of a
seeded subset of M scored candidates at twice its budget and reports whether the two agree (τ ≥ 0.85);
top-quarter figures are reported unresolvable when the reference seeds' own leave-one-out top-quarter τ is
below 0.6 (in every audit).

Variants of the supernet (`--per-branch norm ffn uses_v`, `--population [--fair [--fair-exponent X]] |
--held-out`) go with `--tag NAME` (results audit-NAME.json/png) and their own `--supernet`/`--out` folders; they
reuse the cached reference runs. `--held-out` trains the supernet on N other candidates (those the audit's
2N-candidate set adds), never on the N it ranks: what a search does to a new child. `--reference-only` fills
the reference cache alone (no supernet), e.g. in a second process while the supernet trains; it goes last
candidate first while the audit goes first candidate first, and both re-read the cache before each run, so they
meet halfway and no run is done twice. With `--convergence-check M` it then fills the 2× references of the
check's subset the same way (last first), so a second process shares the check too.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_audit     # the full audit
    # or in two processes (both cores): the second fills the reference cache from the other end
    OMP_NUM_THREADS=1 python -m benchmarks.bench_audit --reference-only &
    OMP_NUM_THREADS=1 python -m benchmarks.bench_audit
    # the same with the convergence check: give both processes --convergence-check M
    python -m benchmarks.bench_audit --candidates 4 --supernet-steps 10 --reference-steps 4 \\
        --biws-steps 0 2 --bootstrap 100 --out /tmp/audit-dry --supernet /tmp/audit-dry-sn \\
        --cache /tmp/audit-dry-cache --results /tmp/audit-dry-results   # a dry run of a few minutes
    python -m benchmarks.bench_audit --from-search runs/search-a runs/search-b --candidates 24 \\
        --exposure-control 6 --population --tag search-pop   # the search's own distribution, exposure control
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
from autobert_zero.train.audit.run import audit, fill_reference, reference_convergence
from autobert_zero.train.checkpoint import read_latest
from autobert_zero.train.supernet import train_supernet
from benchmarks.report import RESULTS, commit, machine

CORPORA = ("wikitext-2-raw", "nltk")
EVAL_TEXTS = ("wikitext-2-raw/wiki.test.raw", "nltk/gutenberg/austen-persuasion.txt",
              "nltk/gutenberg/chesterton-thursday.txt")
"""The document-disjoint held-out text (`data.eval_corpus`), relative to shared/data; dropped from training."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/audit.yaml")
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--supernet", default="runs/audit-supernet", help="supernet folder (trained if absent)")
    parser.add_argument("--supernet-steps", type=int, help="supernet steps (default: pretrain.max_steps)")
    parser.add_argument("--reference-steps", type=int, help="override audit.reference_steps")
    parser.add_argument("--biws-steps", type=int, nargs="+", help="override audit.biws_steps")
    parser.add_argument("--bootstrap", type=int, help="override audit.bootstrap_samples")
    parser.add_argument("--biws-lrs", type=float, nargs="+", metavar="LR",
                        help="override audit.biws_lrs (each k > 0 fine-tuned with warm-up at each of these lrs)")
    parser.add_argument("--halving-steps", type=int, nargs="+", metavar="STEPS",
                        help="override audit.halving_steps (successive halving's scratch budget per rung)")
    parser.add_argument("--reference-seeds", type=int, nargs="+", metavar="SEED",
                        help="override audit.reference_seeds (three or more for a leave-one-out top-quarter ceiling)")
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
                        help="only fill the reference cache (no supernet needed; e.g. while one trains); with "
                             "--convergence-check M, then also the check's 2× references")
    parser.add_argument("--from-search", nargs="+", metavar="DIR",
                        help="draw the candidates from these search folders (top decile, sibling groups, uniform)")
    parser.add_argument("--exposure-control", type=int, metavar="N",
                        help="add N one-edit mutants of a weak genotype (BERT, or the searches' weakest)")
    parser.add_argument("--exposure-copies", type=int, default=4, metavar="K",
                        help="with --population and --exposure-control: each mutant appears K times in the "
                             "supernet's population (default 4)")
    parser.add_argument("--also-supernet", nargs="+", metavar="DIR", default=[],
                        help="further finished supernets of the same config, audited beside --supernet")
    parser.add_argument("--convergence-check", type=int, metavar="M",
                        help="train the reference of M scored candidates at twice its budget; converged at τ ≥ 0.85")
    parser.add_argument("--held-out-from-corpus", action="store_true",
                        help="draw held-out blocks from the training corpus (no data.eval_corpus), as earlier audits")
    args = parser.parse_args()
    if args.population and args.held_out:
        parser.error("--population trains on the audit's own candidates, --held-out on others: give one")
    if args.held_out and args.from_search:
        parser.error("--held-out draws a second drawn set; with --from-search use --population or neither")
    if args.exposure_copies < 1:
        parser.error("--exposure-copies must be at least 1")
    if args.fair and not args.population:
        parser.error("--fair chooses how the audit's population is drawn; it needs --population")
    if args.fair_exponent is not None and not args.fair:
        parser.error("--fair-exponent tempers the --fair weights; it needs --fair")

    cfg = real_text_config(args.config, disjoint_held_out=not args.held_out_from_corpus)
    searches: list[str] = args.from_search or []
    exposure: int = args.exposure_control or 0
    if args.supernet_steps is not None:
        cfg.pretrain = dataclasses.replace(cfg.pretrain, max_steps=args.supernet_steps,
                                           warmup_steps=min(cfg.pretrain.warmup_steps, args.supernet_steps // 10),
                                           checkpoint_every=min(cfg.pretrain.checkpoint_every, args.supernet_steps))
    audit_changes = {"reference_steps": args.reference_steps, "biws_steps": args.biws_steps,
                     "bootstrap_samples": args.bootstrap, "reference_seeds": args.reference_seeds,
                     "halving_steps": args.halving_steps, "biws_lrs": args.biws_lrs}
    cfg.audit = dataclasses.replace(cfg.audit, **{k: v for k, v in audit_changes.items() if v is not None})
    if args.reference_steps is not None:
        cfg.audit.reference_warmup_steps = reference_warmup(cfg, args.reference_steps)

    if args.reference_only:
        folder = fill_reference(args.candidates, cfg, cache_dir=args.cache, from_search=searches, exposure=exposure,
                                convergence_subset=args.convergence_check)
        check = f" (and the 2× references of the convergence check's {args.convergence_check})" * (
            args.convergence_check is not None)
        print(f"reference runs of {args.candidates} candidates{check} are in {folder} and beside it")
        return
    if args.per_branch is not None:
        cfg.supernet = dataclasses.replace(cfg.supernet, per_branch=list(args.per_branch))
    supernet = Path(args.supernet)
    if args.population:
        population = write_population(cfg, args.candidates, supernet, copies=args.exposure_copies,
                                      from_search=searches, exposure=exposure)
        cfg.supernet = dataclasses.replace(cfg.supernet, strategy="fair" if args.fair else "population",
                                           population=[str(population)])
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
    report, table = audit([supernet, *map(Path, args.also_supernet)], args.candidates, args.out, cfg,
                          cache_dir=args.cache, force=True, from_search=searches, exposure=exposure)
    audit_seconds = time.perf_counter() - t1
    print(table)
    if args.convergence_check is not None:
        t2 = time.perf_counter()
        audit_cfg = dataclasses.replace(cfg, audit=dataclasses.replace(cfg.audit, cache_dir=args.cache))
        report["reference_convergence"] = {**reference_convergence(report, supernet, audit_cfg,
                                                                   subset=args.convergence_check),
                                           "seconds": round(time.perf_counter() - t2, 1)}
        check = report["reference_convergence"]
        verdict = "converged" if check["converged"] else "NOT converged"
        print(f"reference convergence: τ(reference, 2× reference) = {check['tau']} on "
              f"{check['scored_at_both_budgets']} candidates ({verdict}, threshold {check['threshold']})")

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "audit", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
               "commit": commit(),
               "command": "python -m benchmarks.bench_audit " + " ".join(given_words(args, parser)),
               "supernet_dir": str(supernet), "supernet_steps": cfg.pretrain.max_steps,
               "supernet_seconds_this_run": round(supernet_seconds, 1), "audit_seconds": round(audit_seconds, 1),
               **report}
    name = f"audit-{args.tag}" if args.tag else "audit"
    atomic_write_text(results / f"{name}.json", json.dumps(payload, indent=1) + "\n")
    shutil.copyfile(Path(args.out) / "audit.png", results / f"{name}.png")
    print(f"\nwrote {results / name}.json and .png (supernet {supernet_seconds:.0f} s, audit {audit_seconds:.0f} s)")


def real_text_config(path: str, *, disjoint_held_out: bool = True) -> Config:
    """The audit config at `path`, reading WikiText-2 raw + the NLTK corpora of shared/data; with
    `disjoint_held_out`, the held-out blocks come from `EVAL_TEXTS` alone (`data.eval_corpus`), whose lines are
    dropped from the training text."""
    cfg = load_config(path)
    held_out = [str(data_dir() / name) for name in EVAL_TEXTS] if disjoint_held_out else None
    cfg.data = dataclasses.replace(cfg.data, corpus=[str(data_dir() / name) for name in CORPORA],
                                   eval_corpus=held_out)
    return cfg


def reference_warmup(cfg: Config, reference_steps: int) -> int:
    """The config's reference warm-up, capped at a tenth of an overridden reference length."""
    return min(cfg.audit.reference_warmup_steps, reference_steps // 10)


def write_population(cfg: Config, count: int, supernet: Path, *, held_out: bool = False, copies: int = 1,
                     from_search: list[str] | None = None, exposure: int = 0) -> Path:
    """The audit's candidates as .abz files in a folder beside the supernet's (the same set the audit draws,
    an exposure control's mutants `copies` times each, so the supernet trains them more often);
    `held_out`: instead the `count` candidates that the audit's drawn set of 2 × `count` adds to them."""
    from autobert_zero.config.paths import resolve_shipped
    from autobert_zero.grammar import load_genotype
    from autobert_zero.train.audit.candidates import candidate_set
    from autobert_zero.train.audit.run import audit_candidates

    layers = load_genotype(resolve_shipped(cfg.genotype)).num_layers
    folder = supernet.with_name(supernet.name + "-population")
    ranked, _ = audit_candidates(cfg, layers, count, from_search=from_search or [], exposure=exposure)
    if held_out:
        seen = {c.id for c in ranked}
        pool = candidate_set(layers, 2 * count, cfg.seed, neighbours=cfg.audit.neighbours)
        ranked = [c for c in pool if c.id not in seen][:count]
    for c in ranked:
        times = copies if c.kind == "exposure" else 1
        for copy in range(times):
            name = c.name if copy == 0 else f"{c.name}-copy{copy + 1}"
            atomic_write_text(folder / f"{name}.abz", c.genotype.to_text())
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
