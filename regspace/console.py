"""Output for people and for pipes: rich tables on a terminal, tab-separated text otherwise."""

from __future__ import annotations

import os
import sys


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def print_table(
    columns: list[str], rows: list[list], *, title: str | None = None, numeric: set[str] = frozenset()
) -> None:
    """A table: rich on a terminal; a header line and tab-separated rows when piped."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for c in columns:
            table.add_column(c, justify="right" if c in numeric else "left", overflow="fold")
        for r in rows:
            table.add_row(*(str(x) for x in r))
        Console().print(table)
        return
    if title:
        print(f"# {title}")
    print("\t".join(columns))
    for r in rows:
        print("\t".join(str(x) for x in r))


def say(message: str) -> None:
    """A progress or summary line, on stderr so that stdout stays clean for data."""
    print(message, file=sys.stderr, flush=True)
