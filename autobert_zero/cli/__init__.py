"""The `abz` command line: one sub-command per stage, every user error a clean message and exit code.

One module per command family registers its commands (`FAMILIES`, in `abz --help` order); the options
several commands share are declared once in `cli.options`. Exit codes (`cli.exit_codes.ExitCode`): 0 success;
1 a runtime error (bad config, missing data, a failed run, ...); 2 an invalid genotype or bad command-line
usage; 3 an internal error (a bug); 130 interrupted. No traceback reaches the user unless ABZ_DEBUG=1 is set.
Every family module imports only the standard library and light packages at module level; each command
imports its heavy dependencies (torch, DeepSpeed) when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from types import ModuleType

from autobert_zero.cli import audit as cli_audit
from autobert_zero.cli import genotype as cli_genotype
from autobert_zero.cli import retrain as cli_retrain
from autobert_zero.cli import search as cli_search
from autobert_zero.cli import supernet as cli_supernet
from autobert_zero.cli import train as cli_train
from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.errors import AbzError, GenotypeError

FAMILIES: tuple[ModuleType, ...] = (cli_genotype, cli_search, cli_train, cli_supernet, cli_audit, cli_retrain)
"""The command families, each a module whose `register(subparsers)` adds its commands; all are registered."""


def build_parser() -> argparse.ArgumentParser:
    """The `abz` parser with every family's commands."""
    return _build()[0]


def commands() -> dict[str, str]:
    """Every `abz` command, in `abz --help` order, with the module of the family that registers it."""
    return _build()[1]


def _build() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = argparse.ArgumentParser(
        prog="abz",
        description="AutoBERT-Zero: BERT backbones from primitive math operations — check, show, compile, "
        "pre-train and fine-tune text genotypes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    families: dict[str, str] = {}
    for family in FAMILIES:
        family.register(sub)
        # `choices` of the action `add_subparsers` returns: the command names registered so far
        families.update({name: family.__name__ for name in sub.choices if name not in families})
    return parser, families


MAX_LINE_CHARS = 2000
"""Longest line of an error message printed whole: a value echoed from a file or the command line is cut
where it is named (`json_files.shorten`); this catches any that is not (an 8 MB line would take seconds to wrap)."""


def _cut(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else f"{line[:MAX_LINE_CHARS]}… ({len(line):,} characters)"


def _say(prefix: str, message: str) -> None:
    lines = [_cut(line) for line in message.splitlines()] or [""]
    # wrapped at spaces only: a hyphenated word or a path stays whole (and searchable) in the message
    first = (textwrap.fill(lines[0], width=110, subsequent_indent="  ", break_on_hyphens=False,
                           break_long_words=False) if len(lines) == 1 else lines[0])
    print(f"{prefix}{first}", file=sys.stderr)
    for line in lines[1:]:
        print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `abz` command; the exit status, an `ExitCode` (bad usage exits 2 from argparse itself)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except AbzError as error:  # a value out of an option's bounds (`cli.options.IntIn`, `SchemaInt`)
        _say("abz: error: ", str(error))
        return ExitCode.RUNTIME
    command = f"abz {args.command}"
    try:
        return int(args.func(args))
    except GenotypeError as error:
        _say(f"{command}: invalid genotype:\n", str(error))
        return ExitCode.USAGE
    except AbzError as error:
        _say(f"{command}: error: ", str(error))
        return ExitCode.RUNTIME
    except KeyboardInterrupt:
        _say(f"{command}: ", "interrupted; files already written are complete (written atomically)")
        return ExitCode.INTERRUPTED
    except OSError as error:
        if os.environ.get("ABZ_DEBUG"):
            raise
        target = f" ({error.filename})" if error.filename else ""
        _say(f"{command}: error: ", f"{error.strerror or error}{target}")
        return ExitCode.RUNTIME
    except Exception as error:  # an internal bug: one line, and how to get the traceback
        if os.environ.get("ABZ_DEBUG"):
            raise
        _say(f"{command}: internal error: ", f"{type(error).__name__}: {error} (set ABZ_DEBUG=1 for a traceback)")
        return ExitCode.INTERNAL
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
