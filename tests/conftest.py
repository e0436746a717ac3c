import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"  # reference figures kept in the repository (their source is in each file)


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from regspace.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store"


def python_exe():
    return sys.executable


def default_sigint():
    """preexec_fn for a child that a test interrupts: a shell that starts the suite in the background
    makes SIGINT ignored, children inherit that, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture(scope="session")
def pg():
    """A private PostgreSQL server on loopback, shared by the tests that need one (tests/pg.py)."""
    from pg import PostgresServer

    server = PostgresServer().start()
    yield server
    server.close()
