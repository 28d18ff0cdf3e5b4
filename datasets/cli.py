"""How every command line of the project fails: one line on stderr, exit status 2, no traceback.

Every ``python -m ...`` entry point (``model.train``, ``model.evaluate``, ``datasets.download``,
``bench.*``, ``tools.*``) builds its parser with :class:`Parser` and wraps its ``main`` in
:func:`one_line_errors` with the error types of its layer (:data:`model.cli.ERRORS` for the
model's commands). A bad argument, a missing file or a refused config then ends the process with

    error: <what was wrong, with which file or value, and what to do instead>

on stderr and status 2 (argparse's status for usage errors), never a traceback. Errors that are
not the project's (bugs) keep their traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from datasets.errors import DatasetError

EXIT_USAGE = 2
"""Exit status of a refused command line (argparse's own status for usage errors)."""


def one_line(message: object) -> str:
    """``message`` as one line of text (newlines folded into ``"; "``)."""
    parts = [part.strip() for part in str(message).splitlines() if part.strip()]
    return "; ".join(parts) or type(message).__name__


def fail(message: object) -> None:
    """Print ``error: <message>`` as one line on stderr and exit with status 2.

    Raises
    ------
    SystemExit
        Always, with code :data:`EXIT_USAGE`.
    """
    print(f"error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line (``error: ... (see --help)``)."""

    def error(self, message: str):
        fail(f"{self.prog}: {message} (see {self.prog} --help)")


def one_line_errors(*errors: type[BaseException]) -> Callable:
    """Decorator for a command line's ``main``: ``errors`` end it with :func:`fail`.

    Parameters
    ----------
    *errors : exception types
        The project's errors this command can meet (default :class:`DatasetError`).

    Returns
    -------
    callable
        The decorator; the wrapped ``main`` returns what ``main`` returns, or raises
        ``SystemExit(2)`` after printing one line.
    """
    caught = errors or (DatasetError,)

    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def inner(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except caught as err:
                fail(err)

        return inner

    return wrap


__all__ = ["EXIT_USAGE", "Parser", "fail", "one_line", "one_line_errors"]
