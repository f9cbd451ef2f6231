"""The `abz` command line: one sub-command per stage, every user error a clean message and exit code.

Exit codes: 0 success; 1 a user error (bad config, missing data, ...); 2 an invalid genotype or bad
command-line usage; 130 interrupted. No traceback reaches the user unless ABZ_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from autobert_zero.errors import AbzError, GenotypeError


def build_parser() -> argparse.ArgumentParser:
    from autobert_zero.cli import genotype as cli_genotype

    parser = argparse.ArgumentParser(
        prog="abz",
        description="AutoBERT-Zero: BERT backbones from primitive math operations — check, show, compile, "
        "pre-train and fine-tune text genotypes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_genotype.register(sub)
    from autobert_zero.cli import search as cli_search

    cli_search.register(sub)
    try:
        from autobert_zero.cli.train import register as register_train
    except ImportError:  # pragma: no cover - train/ not installed in a stripped build
        pass
    else:
        register_train(sub)
    return parser


def _say(prefix: str, message: str) -> None:
    lines = message.splitlines() or [""]
    first = textwrap.fill(lines[0], width=110, subsequent_indent="  ") if len(lines) == 1 else lines[0]
    print(f"{prefix}{first}", file=sys.stderr)
    for line in lines[1:]:
        print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = f"abz {args.command}"
    try:
        return int(args.func(args))
    except GenotypeError as error:
        _say(f"{command}: invalid genotype:\n", str(error))
        return 2
    except AbzError as error:
        _say(f"{command}: error: ", str(error))
        return 1
    except KeyboardInterrupt:
        _say(f"{command}: ", "interrupted; files already written are complete (written atomically)")
        return 130
    except OSError as error:
        if os.environ.get("ABZ_DEBUG"):
            raise
        target = f" ({error.filename})" if error.filename else ""
        _say(f"{command}: error: ", f"{error.strerror or error}{target}")
        return 1
    except Exception as error:  # an internal bug: one line, and how to get the traceback
        if os.environ.get("ABZ_DEBUG"):
            raise
        _say(f"{command}: internal error: ", f"{type(error).__name__}: {error} (set ABZ_DEBUG=1 for a traceback)")
        return 3
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Leave the process group a command joined under a launcher (world size > 1) before the interpreter
    exits: gloo's threads outliving it abort the process at exit ("terminate called without an active
    exception"). A group of one (a run without a launcher) stays: later in-process runs reuse it."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
