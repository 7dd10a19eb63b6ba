"""Errors a user sees as one line, and the exit codes that go with them."""

from __future__ import annotations

# Exit codes: 2 for anything wrong with what the user gave us (argparse uses 2 as well),
# 1 for a failure while working, 130 for Ctrl-C (128 + SIGINT, as shells report it).
EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class RemasterError(Exception):
    """A problem the user can act on; printed as one line, never as a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(RemasterError):
    """Bad input: an unknown preset, an unreadable file, an output that would overwrite."""

    exit_code = EXIT_USAGE


class WeightsError(RemasterError):
    """Model weights that are missing, damaged or not a Real-CUGAN model."""

    exit_code = EXIT_USAGE
