"""The Optuna adapter: a sweep's trials and attributes, through Optuna's storage API.

:func:`open_study` opens (or creates) the sweep's study; :class:`Sweep` takes a waiting trial, reports
a payload into it, sends heartbeats, fails stale trials and re-queues them, gives trials back, counts
them, reads and writes sweep attributes, and runs a set-up once across machines.

Payloads are opaque: a trial's ``model`` attribute is JSON text handed to the worker as a dict, and
:meth:`Sweep.report` stores whatever dict it is given as ``result``. What the rows mean (store rows,
recipes, repeat draws) is regspace.sweep.transfer's and the training side's business: this module
imports no training code, no recipe and no store.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass

from regspace import defaults
from regspace.errors import RegspaceError
from regspace.sweep.backends import Backend, backend_for, jsonable, optuna_module, redact, retry
from regspace.sweep.index import TrialIndex, open_index

# 2: repeat draws of enqueued networks in study attributes (regspace.sweep.transfer.DRAWS_ATTR).
# 3: trials carry flops/params/acts attributes; profile study attributes sum up each enqueue call.
QUEUE_SCHEMA = 3
SCHEMA_ATTR = "regspace_queue_schema"
STUDY_PREFIX = "regspace:"
MAX_RETRY = 3
MODEL_ATTR = "model"  # a trial's payload for its worker (JSON text)
RESULT_ATTR = "result"  # what its worker reported (JSON text)


def _retry_unless_reported(retry_stale):
    """Optuna's re-queue of a stale trial, except for one whose worker died between storing the result
    and finishing the trial (report() is two writes): its model is done and collect reads the result,
    so a retry would only train it twice."""

    def callback(study, trial) -> None:
        if RESULT_ATTR not in trial.user_attrs:
            retry_stale(study, trial)

    return callback


def open_study(
    url: str,
    sweep: str = "default",
    *,
    heartbeat: int = defaults.HEARTBEAT_SECONDS,
    grace: int = defaults.GRACE_SECONDS,
    create: bool = True,
) -> Sweep:
    """The sweep named ``sweep`` in the storage at ``url`` (created when ``create``), with heartbeats
    and retries configured. Raises RegspaceError for a URL it cannot use, an unreachable database (after
    retries), a missing sweep (``create=False``) or one written by a newer regspace."""
    optuna = optuna_module()
    backend = backend_for(url)
    callback = _retry_unless_reported(optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    backend.check()
    try:
        storage = retry(lambda: backend.connect(heartbeat=heartbeat, grace=grace, callback=callback), "connecting",
                        timeout=120)  # fmt: skip
    except ImportError as e:
        raise RegspaceError(
            f"no database driver for {url.split(':')[0]} ({e})",
            hint="pip install 'regspace[postgres]' (psycopg) or the driver for your database",
        ) from None
    except Exception as e:  # noqa: BLE001 - a malformed URL surfaces as many exception types
        if isinstance(e, RegspaceError):
            raise
        raise RegspaceError(f"cannot open queue {url}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    name = STUDY_PREFIX + sweep
    if create:
        study = retry(
            lambda: optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True),
            "opening the sweep",
        )
    else:
        try:
            study = retry(lambda: optuna.load_study(study_name=name, storage=storage), "opening the sweep")
        except KeyError:
            raise RegspaceError(
                f"queue {url} has no sweep {sweep!r}", hint="run `regspace sample --queue` first"
            ) from None
    attrs = retry(lambda: study.user_attrs, "reading the sweep")
    version = attrs.get(SCHEMA_ATTR)
    if (version is None or version < QUEUE_SCHEMA) and create:
        retry(lambda: study.set_user_attr(SCHEMA_ATTR, QUEUE_SCHEMA), "writing the sweep schema")
    elif version is not None and version > QUEUE_SCHEMA:
        raise RegspaceError(
            f"sweep {sweep!r} was written by a newer regspace (queue schema {version} > {QUEUE_SCHEMA})",
            hint="upgrade regspace",
        )
    return Sweep(url, backend, study, storage, heartbeat, grace, callback, open_index(storage, study))


@dataclass(frozen=True)
class Claim:
    """A trial this worker holds (the storage API addresses trials by id)."""

    trial_id: int
    number: int


@dataclass
class Sweep:
    """One sweep: an Optuna study, its storage's backend and its trial index."""

    url: str
    backend: Backend
    study: object
    storage: object
    heartbeat: int
    grace: int
    callback: object
    index: TrialIndex

    @property
    def kind(self) -> str:
        """rdb, sqlite or journal."""
        return self.backend.kind

    @property
    def name(self) -> str:
        """The sweep's name (--sweep), without the study-name prefix."""
        return self.study.study_name.removeprefix(STUDY_PREFIX)

    @property
    def where(self) -> str:
        """The sweep and its URL for printing, without a password: ``sweep 'default' at URL``."""
        return f"sweep {self.name!r} at {redact(self.url)}"

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker sends its heartbeats."""
        return self.backend.beat_interval(self.heartbeat)

    # -- sweep attributes: the generic channel for what the sweep as a whole carries -----------
    def attrs(self) -> dict:
        """Every sweep attribute (Optuna's study user attributes)."""
        return retry(lambda: self.study.user_attrs, "reading the sweep")

    def get_attr(self, key: str, default=None):
        return self.attrs().get(key, default)

    def set_attr(self, key: str, value, what: str = "writing the sweep") -> None:
        """Set a sweep attribute (any JSON value); ``what`` names the write in an unreachable-database line."""
        retry(lambda: self.study.set_user_attr(key, value), what)

    # -- enqueueing --------------------------------------------------------------------------
    def model_ids(self) -> set[str]:
        """The ``model_id`` attribute of every trial."""
        return self.index.model_ids()

    def add_waiting(self, trial_attrs: list[dict]) -> None:
        """Add waiting trials with these user attributes (JSON values), in order, in bulk."""
        self.index.enqueue(trial_attrs)

    def check_workers(self, workers: int) -> None:
        """Refuse more concurrent workers than the storage serves (SQLite: one)."""
        self.backend.check_workers(self, workers)

    # -- state -------------------------------------------------------------------------------
    def trials(self, states=None):
        """Every trial (Optuna's API: loads the whole sweep; for tests and small sweeps)."""
        return retry(lambda: self.study.get_trials(deepcopy=False, states=states), "listing the sweep")

    def fail_stale(self) -> None:
        """Fail RUNNING trials whose heartbeat is older than the grace period; re-queue them."""
        self.backend.fail_stale(self)

    def fail_and_requeue(self, trial_id: int) -> None:
        """Fail a running trial and re-queue it as a retry (unless it holds its result)."""
        optuna = optuna_module()
        try:
            failed = self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # another worker failed (or finished) it first
        if failed:
            self.callback(self.study, self.storage.get_trial(trial_id))

    def beat(self, claims) -> None:
        """Heartbeats for these trials (ours, in flight)."""
        for c in claims:
            with contextlib.suppress(Exception):  # a missed heartbeat is retried at the next beat
                self.backend.beat(self.storage, c.trial_id)

    def finished(self, mark: dict) -> tuple[list[dict], list[dict], dict]:
        """(model payloads, result payloads, new mark) added or reported since ``mark`` ({} the first
        time; see TrialIndex.finished_rows). Payloads may repeat earlier ones."""
        return self.index.finished_rows(mark)

    def summary(self) -> list[dict]:
        """Per space: trials waiting / running / done / lost, and retries."""
        return self.index.counts()

    # -- a worker's side ---------------------------------------------------------------------
    def take(self, worker: str, *, window: int = 32) -> tuple[Claim, dict] | None:
        """(claim, model payload) of a waiting trial, now ours; None when nothing waits.

        Picks at random among the oldest ``window`` waiting trials, so that concurrent workers rarely
        reach for the same one; the storage's WAITING → RUNNING transition decides who gets it."""
        optuna = optuna_module()
        S = optuna.trial.TrialState
        while True:
            candidates = self.index.waiting(window)
            if not candidates:
                return None
            random.shuffle(candidates)
            for tid in candidates:
                try:
                    ok = retry(lambda t=tid: self.storage.set_trial_state_values(t, S.RUNNING), "taking a model")
                except optuna.exceptions.UpdateFinishedTrialError:
                    ok = False
                if not ok:
                    continue  # another worker took it first
                claim = self._hold(tid, worker)
                if claim is not None:
                    return claim
            # every candidate went to other workers meanwhile: look again

    def _hold(self, tid: int, worker: str):
        """Make a just-claimed trial ours: heartbeat first, so that a worker that dies from now on is
        noticed by Optuna's stale check (the rare one that dies before it: TrialIndex.stale_unstarted)."""
        self.beat([Claim(tid, -1)])
        number, model = self.index.model_of(tid)
        if model is None:  # not a regspace trial (someone else's ask()): leave it failed
            with contextlib.suppress(Exception):
                self.storage.set_trial_state_values(tid, optuna_module().trial.TrialState.FAIL)
            return None
        retry(lambda: self.storage.set_trial_user_attr(tid, "worker", worker), "claiming a model")
        return Claim(tid, number), json.loads(model)

    def others_running(self, mine) -> bool:
        """Whether trials other than ``mine`` are running (their models may still come back)."""
        ours = {c.trial_id for c in mine}
        return any(tid not in ours for tid in self.index.running())

    def report(self, claim: Claim, payload: dict, value: float | None) -> bool:
        """Store ``payload`` as the trial's result and finish it: COMPLETE with ``value`` (the trial's
        objective), or FAIL when ``value`` is None. False when the trial was failed as stale (and
        re-queued) meanwhile, so that its retry carries the model now."""
        optuna = optuna_module()
        S = optuna.trial.TrialState
        text = json.dumps({k: jsonable(v) for k, v in payload.items()})
        try:
            retry(lambda: self.storage.set_trial_user_attr(claim.trial_id, RESULT_ATTR, text), "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        try:
            if value is not None:
                finish = lambda: self.storage.set_trial_state_values(claim.trial_id, S.COMPLETE, [value])  # noqa: E731
            else:
                finish = lambda: self.storage.set_trial_state_values(claim.trial_id, S.FAIL)  # noqa: E731
            retry(finish, "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale between the two calls: the result is in the trial, collect keeps one
        return True

    def give_back(self, claim: Claim) -> None:
        """Fail our trial and re-queue its model now (an interrupted worker need not wait for the grace)."""
        with contextlib.suppress(Exception):
            self.fail_and_requeue(claim.trial_id)

    # -- across machines ---------------------------------------------------------------------
    def run_once(self, key: str, action, *, wait: float = 600.0, poll: float = 2.0) -> bool:
        """Run ``action`` once for this sweep across machines, e.g. enqueueing a study. The first caller
        runs it: creating an Optuna study named after ``key`` succeeds for exactly one caller (a unique
        name in the storage). It then sets the sweep attribute ``key``. Every other caller waits for that
        attribute; after ``wait`` seconds without it (the first caller died) it runs ``action`` itself, so
        ``action`` must be idempotent. Returns whether this caller ran it."""
        optuna = optuna_module()
        attr = f"once:{key}"

        def done() -> bool:
            return attr in self.attrs()

        if done():
            return False
        try:
            retry(lambda: optuna.create_study(study_name=f"{self.study.study_name}:{attr}", storage=self.storage),
                  "electing the machine that enqueues")  # fmt: skip
            elected = True
        except optuna.exceptions.DuplicatedStudyError:
            elected = False
        if not elected:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if done():
                    return False
                time.sleep(poll)
        action()
        self.set_attr(attr, True, "recording the sweep's set-up")
        return True
