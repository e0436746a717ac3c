"""What differs between a sweep's storages, decided once from the URL: :func:`backend_for`.

PostgreSQL (``rdb``: many workers, Optuna's heartbeat table), SQLite (``sqlite``: an RDB storage that
serves one worker only) and Optuna's journal file (``journal``: no heartbeat table, so the heartbeat
is a trial attribute). Also the helpers every layer of the sweep shares: :func:`retry` while the
database is unreachable, :func:`redact` for printing a URL, :func:`jsonable` for payloads.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
import warnings

from regspace.errors import RegspaceError

HEARTBEAT_ATTR = "regspace_heartbeat"  # the journal file's heartbeat: a trial attribute, seconds since the epoch


def optuna_module():
    """Optuna, imported on first use (commands that never open a sweep skip its ~0.5 s import), quiet."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used with Study.optimize.*")
    return optuna


def retry(action, what: str, *, timeout: float = 600.0):
    """Run ``action()``; while the database is unreachable, wait with exponential backoff (1 s … 30 s).

    Gives up with one clear line after ``timeout`` seconds ($REGSPACE_QUEUE_TIMEOUT overrides it).
    """
    import sqlalchemy.exc

    optuna = optuna_module()
    timeout = float(os.environ.get("REGSPACE_QUEUE_TIMEOUT", timeout))
    delay, start, told = 1.0, time.monotonic(), False
    while True:
        try:
            result = action()
            if told:
                print(f"regspace: the queue answers again ({what})", file=sys.stderr)
            return result
        except (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.InterfaceError,
            sqlalchemy.exc.DBAPIError,
            optuna.exceptions.StorageInternalError,
            ConnectionError,
        ) as e:
            if time.monotonic() - start > timeout:
                raise RegspaceError(
                    f"the queue has been unreachable for {timeout:.0f} s while {what}: {str(e).splitlines()[0][:160]}"
                ) from None
            if not told and time.monotonic() - start > 5:  # say so once the outage is more than a blip
                print(
                    f"regspace: the queue is unreachable while {what} ({type(e).__name__}); retrying with backoff",
                    file=sys.stderr,
                )
                told = True
            time.sleep(delay)
            delay = min(30.0, delay * 2)


def redact(url: str) -> str:
    """A queue URL without its password, for printing."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def study_id(study) -> int:
    """Optuna has no public accessor for a study's id, which its storage API takes: the one place
    that reaches inside a Study."""
    return study._study_id


def jsonable(v):
    """A value as JSON can hold it: arrays as lists, times in ISO 8601, NaN as null."""
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, float) and v != v:
        return None
    return v


class Backend:
    """An RDB storage (PostgreSQL): Optuna's heartbeat table and stale check, any number of workers."""

    kind = "rdb"

    def __init__(self, url: str):
        self.url = url

    def check(self) -> None:
        """Refuse a URL that cannot work, in one line, before connecting."""

    def connect(self, *, heartbeat: int, grace: int, callback):
        return optuna_module().storages.RDBStorage(
            self.url,
            engine_kwargs={"pool_pre_ping": True, "pool_recycle": 300},
            heartbeat_interval=heartbeat,
            grace_period=grace,
            heartbeat_stale_trial_callback=callback,
        )

    def beat_interval(self, heartbeat: int) -> float:
        """Seconds between a worker's heartbeats."""
        return heartbeat

    def beat(self, storage, trial_id: int) -> None:
        storage.record_heartbeat(trial_id)

    def fail_stale(self, sweep) -> None:
        """Fail the sweep's RUNNING trials whose heartbeat is older than the grace period; re-queue them."""
        optuna = optuna_module()
        retry(lambda: optuna.storages.fail_stale_trials(sweep.study), "checking heartbeats")
        for tid in sweep.index.stale_unstarted(sweep.grace):
            sweep.fail_and_requeue(tid)

    def check_workers(self, sweep, workers: int) -> None:
        """Refuse more concurrent workers than the storage can serve."""


class SqliteBackend(Backend):
    """An RDB storage in one SQLite file: Optuna's FAQ warns it can hand one trial to two workers."""

    kind = "sqlite"

    def check(self) -> None:
        path = self.url.split(":///", 1)[-1]
        if path and path != ":memory:" and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise RegspaceError(f"directory of SQLite file {path} does not exist")

    def check_workers(self, sweep, workers: int) -> None:
        """One worker, and only one, at a time."""
        if workers > 1:
            raise RegspaceError(
                "SQLite cannot serve several workers: Optuna's FAQ warns it can hand one trial to two of them",
                hint="use --workers 1, or PostgreSQL (or a journal file) for many",
            )
        if sweep.index.running():
            raise RegspaceError(
                "another worker is training from this SQLite queue; SQLite cannot serve several workers",
                hint="use PostgreSQL, or a journal file, for many workers",
            )


class JournalBackend(Backend):
    """Optuna's journal file (a shared file system): no heartbeat table, so heartbeats are a trial
    attribute, sent twice per period, and stale trials are found by reading the running ones."""

    kind = "journal"

    @property
    def path(self) -> str:
        if self.url.startswith("journal:"):
            rest = self.url[len("journal:") :]
            return rest[2:] if rest.startswith("//") else rest
        return self.url

    def check(self) -> None:
        if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
            raise RegspaceError(f"directory of journal file {self.path} does not exist")

    def connect(self, *, heartbeat: int, grace: int, callback):
        from optuna.storages.journal import JournalFileBackend

        return optuna_module().storages.JournalStorage(JournalFileBackend(self.path))

    def beat_interval(self, heartbeat: int) -> float:
        return max(1, heartbeat // 2)

    def beat(self, storage, trial_id: int) -> None:
        storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def fail_stale(self, sweep) -> None:
        optuna = optuna_module()
        now = time.time()
        for t in sweep.trials((optuna.trial.TrialState.RUNNING,)):
            # no heartbeat yet (killed right after taking it): count from the trial's start
            beat = t.user_attrs.get(HEARTBEAT_ATTR) or (t.datetime_start.timestamp() if t.datetime_start else now)
            if now - float(beat) > sweep.grace:
                sweep.fail_and_requeue(sweep.index.trial_id(t))  # the journal file is always on ApiIndex


def backend_for(url: str) -> Backend:
    """The backend a queue URL names: the one place that reads the URL's kind."""
    u = url.strip()
    if u.startswith(("postgresql", "postgres://")):
        return Backend(url)
    if u.startswith("sqlite:"):
        return SqliteBackend(url)
    if u.startswith("journal:") or u.endswith((".log", ".journal")):
        return JournalBackend(url)
    raise RegspaceError(
        f"cannot use queue {url!r}",
        hint="use postgresql://user@host/db, sqlite:///file.db or journal:///path/sweep.log",
    )
