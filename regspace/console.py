"""The terminal: whether stdout and stderr are one, and progress lines on stderr.

Results become text in :mod:`regspace.text`.
"""

from __future__ import annotations

import os
import sys


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def say(message: str) -> None:
    """A progress or summary line, on stderr so that stdout stays clean for data."""
    print(message, file=sys.stderr, flush=True)
