"""The `abz audit` sub-command (registered into the `abz` parser by `register`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.cli.options import (
    MAX_AUDIT_CANDIDATES,
    MIN_AUDIT_CANDIDATES,
    IntIn,
    add_config,
    add_force,
    add_out,
    add_supernet,
    report,
)

if TYPE_CHECKING:
    from autobert_zero.cli.options import Subparsers


def _audit(args: argparse.Namespace) -> int:
    from autobert_zero.train.audit.run import audit

    summary, text = audit(args.supernet, args.candidates, args.out, args.config, cache_dir=args.cache,
                          force=args.force, show=not args.quiet)
    report(text)
    report(f"wrote {args.out}/audit.json and {args.out}/audit.png ({summary['scored']} candidates scored)")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    """Add `audit` to the `abz` sub-command parser."""
    a = subparsers.add_parser(
        "audit", help="ranking audit: how well BIWS and its rivals rank candidates against full scratch training",
        description="Score N candidates at the supernet's size (vanilla BERT, Figure 7, mutated neighbours of "
                    "Figure 7, random genotypes) with BIWS for each k of audit.biws_steps, scratch training at "
                    "the same seconds, parameters alone and rank combinations, against full-budget scratch "
                    "training averaged over audit.reference_seeds. Writes OUT/audit.json and OUT/audit.png and "
                    "prints the table. Reference runs are cached (audit.cache_dir), so a killed audit resumes.")
    add_supernet(a, "the --out folder of `abz supernet`", required=True)
    candidates = IntIn("--candidates", MIN_AUDIT_CANDIDATES, MAX_AUDIT_CANDIDATES, "candidates")
    a.add_argument("--candidates", required=True, type=candidates, metavar="N",
                   help=f"number of candidates ({MIN_AUDIT_CANDIDATES} to {MAX_AUDIT_CANDIDATES:,}; 16-24 for a "
                   "useful τ)")
    add_out(a, "output folder (audit.json, audit.png)", metavar="DIR")
    add_config(a, "YAML config (default: DIR/config.json of the supernet run); its audit: and evaluate: sections "
                  "set the estimators", metavar="FILE")
    a.add_argument("--cache", metavar="DIR", help="reference cache folder (overrides audit.cache_dir)")
    add_force(a, "replace audit.json/audit.png in a non-empty --out")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=_audit)
