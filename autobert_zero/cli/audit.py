"""The `abz audit` sub-command (registered into the `abz` parser by `register`).

`--supernet DIR` may be repeated (each supernet's BIWS estimates made separately, supernets resampled by the
bootstrap); `--from-search DIR [DIR ...]` draws the candidates from search histories instead of the drawn set;
`--exposure-control N` adds N one-edit mutants of a weak genotype (see `train/audit/run.py`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.options import (
    MAX_AUDIT_CANDIDATES,
    MIN_AUDIT_CANDIDATES,
    IntIn,
    add_config,
    add_force,
    add_out,
    add_trust,
    report,
)

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers


def _audit(args: argparse.Namespace) -> int:
    from autobert_zero.grammar import using_language
    from autobert_zero.grammar.loading import trust_language_code
    from autobert_zero.train.audit.run import audit

    with trust_language_code(args.trust_language_code), using_language(_language(args)):
        summary, text = audit(args.supernet, args.candidates, args.out, args.config, cache_dir=args.cache,
                              force=args.force, show=not args.quiet, from_search=args.from_search or (),
                              exposure=args.exposure_control or 0)
    report(text)
    report(f"wrote {args.out}/audit.json and {args.out}/audit.png ({summary['scored']} candidates scored)")
    return ExitCode.OK


def _language(args: argparse.Namespace) -> Any:
    """The audit's language: --config's `language:` section, else the first supernet's record (op code it
    carries runs only with --trust-language-code)."""
    from autobert_zero.config.language import language_from_config
    from autobert_zero.config.load import load_config
    from autobert_zero.errors import TrainingError
    from autobert_zero.grammar import default_language
    from autobert_zero.grammar.loading import trust_language_code
    from autobert_zero.train.supernet import supernet_language

    if args.config is not None:
        return language_from_config(load_config(args.config))
    with trust_language_code(args.trust_language_code):
        try:
            return supernet_language(args.supernet[0])
        except TrainingError:  # no supernet there: the audit's own checks name the folder
            return default_language()


def register(subparsers: Subparsers) -> None:
    """Add `audit` to the `abz` sub-command parser."""
    a = subparsers.add_parser(
        "audit", help="ranking audit: how well BIWS and its rivals rank candidates against full scratch training",
        description="Score N candidates at the supernet's size (by default vanilla BERT, Figure 7, mutated "
                    "neighbours of Figure 7, random genotypes; with --from-search, drawn from search histories: a "
                    "third from the top decile, a quarter in sibling groups, the rest uniformly) with BIWS for each "
                    "k of audit.biws_steps, scratch training at the same seconds, successive halving when "
                    "audit.halving_steps is set, zero-cost proxies at initialisation, parameters alone and rank "
                    "combinations, against full-budget scratch training averaged over audit.reference_seeds. "
                    "Reports τ overall, in the top half and quarter and within sibling groups, precision@5, "
                    "regret@1/@5, each with a bootstrap interval, "
                    "paired differences between estimators and a leave-one-out noise ceiling. Writes "
                    "OUT/audit.json and OUT/audit.png and prints the table. Reference runs and estimates are "
                    "cached (audit.cache_dir), so a killed audit resumes with identical figures.")
    a.add_argument("--supernet", action="append", required=True, metavar="DIR",
                   help="the --out folder of `abz supernet`; repeat for several supernets (each one's BIWS "
                        "estimates are made separately and the bootstrap resamples supernets too)")
    candidates = IntIn("--candidates", MIN_AUDIT_CANDIDATES, MAX_AUDIT_CANDIDATES, "candidates")
    a.add_argument("--candidates", required=True, type=candidates, metavar="N",
                   help=f"number of candidates ({MIN_AUDIT_CANDIDATES} to {MAX_AUDIT_CANDIDATES:,}; 16-24 for a "
                   "useful τ)")
    add_out(a, "output folder (audit.json, audit.png)", metavar="DIR")
    add_config(a, "YAML config (default: DIR/config.json of the supernet run); its audit: and evaluate: sections "
                  "set the estimators", metavar="FILE")
    a.add_argument("--from-search", nargs="+", metavar="DIR",
                   help="draw the candidates from these `abz search` folders (ok lines of their history.jsonl) "
                        "instead of the drawn set; at least 6 candidates")
    exposure = IntIn("--exposure-control", 3, 100, "mutants")
    a.add_argument("--exposure-control", type=exposure, metavar="N",
                   help="add N one-edit mutants of a weak genotype (BERT, or the weakest ok genotype of the "
                        "searches) and report how far each estimator lifts their mean rank")
    a.add_argument("--cache", metavar="DIR", help="reference cache folder (overrides audit.cache_dir)")
    add_force(a, "replace audit.json/audit.png in a non-empty --out")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    add_trust(a, "the --supernet folders (without --config) and --from-search folders")
    a.set_defaults(func=_audit)
