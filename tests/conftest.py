import os
import sys
import uuid
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


def cli(*args, env=None, cwd=None):
    """`regspace ARGS` in this process (what `python -m regspace` runs: regspace.__main__ calls main), for
    tests about what a command does rather than about its process: no interpreter start, no imports again.
    Returns what subprocess.run would (returncode, stdout, stderr). ``env``: variables set for the call;
    ``cwd``: the directory it runs in."""
    import contextlib
    import io
    import subprocess

    from regspace.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if env:
            mp = stack.enter_context(pytest.MonkeyPatch.context())
            for k, v in env.items():
                mp.setenv(k, v)
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["regspace", *map(str, args)], code, out.getvalue(), err.getvalue())


def python_exe():
    return sys.executable


def default_sigint():
    """preexec_fn for a child that a test interrupts: a shell that starts the suite in the background
    makes SIGINT ignored, children inherit that, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


os.environ.setdefault("PYTHONHASHSEED", "0")


def pytest_configure(config):
    """Under pytest-xdist (`-n N`, as `make test` runs), worker i keeps to its own share of the cores, and so
    do the training processes it starts (affinity is inherited; regspace plans workers and threads from it):
    two test workers never put training threads on one core, where OpenMP's spin-waits slow training several
    times over."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if worker.startswith("gw") and count > 1 and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) >= count:
            os.sched_setaffinity(0, cores[int(worker[2:]) :: count])


@pytest.fixture(scope="session", autouse=True)
def training_forkserver(request):
    """Start this process's forkserver with regspace.train.fit imported (torch and Lightning, ~3.5 s once),
    as `regspace train` does, when the session has tests of seconds: in-process training tests then fork
    ready workers, where a forkserver first started by a pool of fakes would leave every later worker to
    import torch itself."""
    if any(item.get_closest_marker("slow") for item in request.session.items):
        import multiprocessing
        import multiprocessing.forkserver

        multiprocessing.get_context("forkserver").set_forkserver_preload(["regspace.train.fit"])
        multiprocessing.forkserver.ensure_running()
    yield


def pytest_collection_modifyitems(config, items):
    """End-to-end tests (marked slow) first: spread over the workers at the start, the suite does not end
    waiting on one long test that a worker picked up last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order otherwise


@pytest.fixture(scope="session")
def pg():
    """A private PostgreSQL server on loopback, shared by the tests that need one (tests/pg.py)."""
    from pg import PostgresServer

    server = PostgresServer().start()
    yield server
    server.close()


QUEUE_BACKENDS = ["postgres", "journal"]  # every storage a sweep runs on across machines


@pytest.fixture(params=QUEUE_BACKENDS)
def sweep_url(request, tmp_path):
    """A new, empty queue URL on each backend in turn: a test that takes it is one queue behaviour run
    over every backend (Optuna's StorageTestCase style). PostgreSQL: a fresh database on the private
    server; journal: a file in the test's directory."""
    return queue_url(request.param, request, tmp_path)


def queue_url(backend, request, tmp_path):
    """A new, empty queue URL on ``backend`` (postgres, journal or sqlite)."""
    if backend == "postgres":
        return request.getfixturevalue("pg").create_database("sweep_" + uuid.uuid4().hex[:8])
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'sweep.db'}"
    return f"journal://{tmp_path / 'sweep.log'}"
