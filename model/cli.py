"""The errors every ``python -m model.*`` and ``bench.*`` command line ends on with one line.

:func:`datasets.cli.one_line_errors` wraps each command's ``main`` with :data:`ERRORS`: the
project's error types of every layer a model command touches, and ``OSError`` (a file or folder
that cannot be read or written: the message names it). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from datasets.cli import Parser, fail, one_line_errors
from datasets.errors import DatasetError
from model.checkpoint import CheckpointError
from model.rollout import CaptureBudgetError
from model.train_config import ConfigError

ERRORS: tuple[type[BaseException], ...] = (
    DatasetError,  # datasets: not found, unreadable, refused, bad split
    ConfigError,  # training configs and command-line overrides
    CheckpointError,  # checkpoint folders
    CaptureBudgetError,  # gate capture over its memory budget
    OSError,  # files and folders that cannot be read or written
)

__all__ = ["ERRORS", "Parser", "fail", "one_line_errors"]
