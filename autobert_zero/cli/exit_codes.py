"""The exit statuses of `abz`: every command returns one of these (through `autobert_zero.cli.main`)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What `abz` exits with; README's "Exit codes" paragraph documents the same table for users."""

    OK = 0
    """Success (for `abz check`: every file is a valid genotype)."""
    RUNTIME = 1
    """A user error found while running: a bad config value or command-line value, missing or malformed data,
    an output folder in the way, a training, supernet or search failure, an unreadable file (any `AbzError`
    other than `GenotypeError`, or an `OSError`). The message names the file, line or key."""
    USAGE = 2
    """An invalid genotype (a `GenotypeError`, or `abz check` finding an invalid file), or bad command-line
    usage: an unknown command, a missing or malformed argument (argparse exits with 2 itself)."""
    INTERNAL = 3
    """An internal error, i.e. a bug: any other exception. One line is printed; `ABZ_DEBUG=1` re-raises it
    with the traceback."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, `KeyboardInterrupt`): 128 + SIGINT, as shells report it. Files already written
    are complete (every output is written atomically)."""
