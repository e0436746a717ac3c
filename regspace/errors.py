"""Errors that reach the user as one clear line (never a traceback)."""


class RegspaceError(Exception):
    """A problem the user can fix: bad input, an impossible budget, a broken store.

    The CLI prints ``regspace: error: <message> (<hint>)`` and exits with ``exit_code``.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(f"{message} ({hint})" if hint else message)
        self.hint = hint

    def line(self) -> str:
        return " ".join(str(self).split())


class UsageProblem(RegspaceError):
    """Malformed command-line value (exit code 2, like a usage error)."""

    exit_code = 2


class StoreError(RegspaceError):
    """The store cannot be read or written as asked."""


class Interrupted(RegspaceError):
    """Ctrl-C or SIGTERM stopped a long command; the line says what was kept and how to resume."""

    exit_code = 130
