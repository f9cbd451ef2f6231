"""The `abz audit` sub-command (registered into the `abz` parser by `train.cli.register`)."""

from __future__ import annotations

import argparse
import sys


def _audit(args: argparse.Namespace) -> int:
    from autobert_zero.train.audit.run import audit

    report, text = audit(args.supernet, args.candidates, args.out, args.config, cache_dir=args.cache,
                         force=args.force, show=not args.quiet)
    print(text, file=sys.stdout)
    print(f"wrote {args.out}/audit.json and {args.out}/audit.png ({report['scored']} candidates scored)",
          file=sys.stdout)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `audit` to the `abz` sub-command parser."""
    a = subparsers.add_parser(
        "audit", help="ranking audit: how well BIWS and its rivals rank candidates against full scratch training",
        description="Score N candidates at the supernet's size (vanilla BERT, Figure 7, mutated neighbours of "
                    "Figure 7, random genotypes) with BIWS for each k of audit.biws_steps, scratch training at "
                    "the same seconds, parameters alone and rank combinations, against full-budget scratch "
                    "training averaged over audit.reference_seeds. Writes OUT/audit.json and OUT/audit.png and "
                    "prints the table. Reference runs are cached (audit.cache_dir), so a killed audit resumes.")
    a.add_argument("--supernet", required=True, metavar="DIR", help="the --out folder of `abz supernet`")
    a.add_argument("--candidates", required=True, type=int, metavar="N", help="number of candidates (≥ 4; 16-24 "
                                                                              "for a useful τ)")
    a.add_argument("--out", required=True, metavar="DIR", help="output folder (audit.json, audit.png)")
    a.add_argument("--config", metavar="FILE", help="YAML config (default: DIR/config.json of the supernet run); "
                                                    "its audit: and evaluate: sections set the estimators")
    a.add_argument("--cache", metavar="DIR", help="reference cache folder (overrides audit.cache_dir)")
    a.add_argument("--force", action="store_true", help="replace audit.json/audit.png in a non-empty --out")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=_audit)
