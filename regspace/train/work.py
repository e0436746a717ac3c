"""Work sources: where a worker pool gets the models to train, and where their results go.

One interface, :class:`WorkSource`, two sources: :class:`LocalWork` (the models of a store without a
result for the recipe, claimed one at a time so that several runs share the store) and
:class:`SweepWork` (a sweep across machines, through regspace.sweep). The pool
(regspace.train.pool) knows only the interface.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import os
import signal
import socket
import sys
import threading
import time
from collections import deque

from regspace import defaults
from regspace.sweep import transfer
from regspace.train.claims import Claims
from regspace.train.records import Result


class Wait(enum.Enum):
    """A work source's answer when nothing is available now, but more may come (ask again soon)."""

    WAIT = "wait"


WAIT = Wait.WAIT


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C or SIGTERM during the block takes effect (as KeyboardInterrupt) when the block ends, so
    that a claim or a report is never left half made: a model taken is always recorded as in flight,
    and so given back when the worker stops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if got:
            raise KeyboardInterrupt


class WorkSource(abc.ABC):
    """What a worker pool trains. ``next`` gives a model row, WAIT, or None (no more work)."""

    total: int | None = None  # models planned, when known
    skipped: int = 0  # models left to other runs
    heartbeat_seconds: float = defaults.HEARTBEAT_SECONDS

    @abc.abstractmethod
    def next(self) -> dict | Wait | None: ...

    @abc.abstractmethod
    def retry(self, model: dict) -> None:
        """Train this model again (its worker died): it comes back from ``next`` first."""

    @abc.abstractmethod
    def done(self, model: dict, result: Result) -> None:
        """A model's result: keep it."""

    @abc.abstractmethod
    def heartbeat(self) -> None:
        """Called every ``heartbeat_seconds`` while models are in flight."""

    @abc.abstractmethod
    def close(self, interrupted: bool) -> None:
        """The pool stopped (``interrupted``: by Ctrl-C or SIGTERM); give back what is still held."""


class LocalWork(WorkSource):
    """Pending models of a local store; claims keep concurrent runs from training the same model."""

    def __init__(self, store, recipe, models: list[dict]):
        self.store, self.recipe = store, recipe
        self.queue = deque(models)
        self.total = len(models)
        self.claims = Claims(store.path, recipe.run_key)
        self.skipped = 0
        self._seen_parts: set[str] = set()
        self._settled: set[str] = set()

    def next(self):
        while self.queue:
            m = self.queue.popleft()
            mid = m["model_id"]
            if mid not in self.claims.held and not self.claims.try_claim(mid):
                self.skipped += 1
                continue
            if self._has_result(mid):  # finished by another run between our listing and our claim
                self.claims.release(mid)
                self.skipped += 1
                continue
            return m
        return None

    def _has_result(self, model_id: str) -> bool:
        """Reads only the result parts not seen yet: re-checking after every claim stays cheap."""
        if model_id not in self._settled:
            self._settled |= self.store.settled_ids(
                self.recipe.hash, seed=self.recipe.seed, skip_parts=self._seen_parts
            )
        return model_id in self._settled

    def retry(self, model: dict) -> None:
        self.queue.appendleft(model)

    def done(self, model: dict, result: Result) -> None:
        self.store.append_rows("results", [result.row()])
        self.claims.release(model["model_id"])

    def heartbeat(self) -> None:
        self.claims.heartbeat()

    def close(self, interrupted: bool) -> None:
        self.claims.release_all()
        if not interrupted:
            self.store.compact("results")


class SweepWork(WorkSource):
    """A sweep (regspace.sweep.adapter.Sweep): takes waiting models, reports results into their trials."""

    def __init__(self, sweep):
        self.sweep = sweep
        self.inflight: dict[str, object] = {}  # model id -> our trial
        self.local: deque = deque()  # models whose worker died: retried here first
        self.heartbeat_seconds = sweep.heartbeat_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._last_wait = 0.0
        self._last_stale_check = -1e9

    def next(self):
        if self.local:
            return self.local.popleft()
        now = time.monotonic()
        if now - self._last_wait < 1.0:
            return WAIT  # idle workers poll the database at most once a second
        if now - self._last_stale_check > max(1.0, self.sweep.grace / 4):
            self.sweep.fail_stale()  # not at every claim: a stale model waits a grace period anyway
            self._last_stale_check = now
        with interrupts_deferred():
            taken = self.sweep.take(self.worker)
            if taken is not None:
                claim, model = taken
                self.inflight[model["model_id"]] = claim
        if taken is not None:
            return model
        if self.sweep.others_running(self.inflight.values()):
            self._last_wait = time.monotonic()
            return WAIT  # another worker's model may still come back to the queue if that worker dies
        return None

    def retry(self, model: dict) -> None:
        self.local.appendleft(model)

    def done(self, model: dict, result: Result) -> None:
        with interrupts_deferred():
            claim = self.inflight.pop(model["model_id"])
            reported = transfer.report(self.sweep, claim, result.row())
        if not reported:
            # our heartbeat went stale (a busy machine) and another worker failed and re-queued the trial
            # first: the model's retry trial carries it now, so this copy of the result is dropped
            print(
                f"regspace: model {model['model_id']} was handed to another worker meanwhile (missed heartbeats); "
                "its retry will report it",
                file=sys.stderr,
            )

    def heartbeat(self) -> None:
        self.sweep.beat(list(self.inflight.values()))

    def close(self, interrupted: bool) -> None:
        """Give models in flight straight back to the queue (no need to wait for the grace period)."""
        for claim in self.inflight.values():
            self.sweep.give_back(claim)
        self.inflight.clear()
