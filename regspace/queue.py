"""Sweeps across machines, through Optuna's storage (`--queue URL`).

A sweep is an Optuna study named ``regspace:<sweep>`` in the storage at URL:

- ``sample --queue`` enqueues each new model with ``study.enqueue_trial`` — its whole design and
  store row travel in the trial's user attributes, so a worker needs no shared file system;
- ``train --queue`` (on any number of machines) pops waiting trials with ``study.ask``, trains them,
  stores the result row in the trial and finishes it with ``study.tell``. While a model trains its
  trial sends heartbeats; a trial whose heartbeat is older than the grace period is failed and
  re-queued by Optuna's ``RetryHeartbeatStaleTrialCallback`` (so a vanished worker's model goes to
  another worker). RDB storages use Optuna's own heartbeat table; the journal file storage, which
  has none, keeps the heartbeat in a trial attribute and applies the same callback;
- ``collect`` copies models and results into a local parquet store (one result per model and recipe).

URLs: ``postgresql://…`` and ``mysql://…`` (SQLAlchemy URLs, RDB storage, many workers),
``sqlite:///path`` (one worker only: Optuna's FAQ warns that SQLite can hand one trial to two
workers), ``journal:///path/to/sweep.log`` or a path ending in .log/.journal (Optuna's journal file
storage, for a shared file system).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass

from regspace import defaults
from regspace.errors import RegspaceError

QUEUE_SCHEMA = 2  # 2: repeat draws of enqueued networks in DRAWS_ATTR study attributes
STUDY_PREFIX = "regspace:"
HEARTBEAT_ATTR = "regspace_heartbeat"
MAX_RETRY = 3
DRAWS_ATTR = "regspace_draws:"  # study attributes holding repeat draws of enqueued networks
DRAW_FIELDS = ("space", "model_id", "seed", "draw_index", "multiplicity", "draw_indices")


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used with Study.optimize.*")
    return optuna


def queue_kind(url: str) -> str:
    u = url.strip()
    if u.startswith(("postgresql", "postgres://", "mysql")):
        return "rdb"
    if u.startswith("sqlite:"):
        return "sqlite"
    if u.startswith("journal:") or u.endswith((".log", ".journal")):
        return "journal"
    raise RegspaceError(
        f"cannot use queue {url!r}",
        hint="use postgresql://user@host/db, mysql://…, sqlite:///file.db or journal:///path/sweep.log",
    )


def _journal_path(url: str) -> str:
    if url.startswith("journal:"):
        rest = url[len("journal:") :]
        return rest[2:] if rest.startswith("//") else rest
    return url


def retry(action, what: str, *, timeout: float = 600.0):
    """Run ``action()``; while the database is unreachable, wait with exponential backoff (1 s … 30 s).

    Gives up with one clear line after ``timeout`` seconds ($REGSPACE_QUEUE_TIMEOUT overrides it).
    """
    import sqlalchemy.exc

    optuna = _optuna()
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


def open_study(
    url: str,
    sweep: str = "default",
    *,
    heartbeat: int = defaults.HEARTBEAT_SECONDS,
    grace: int = defaults.GRACE_SECONDS,
    create: bool = True,
):
    """The sweep's study (created when ``create``), with heartbeats and retries configured."""
    optuna = _optuna()
    kind = queue_kind(url)
    callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)

    if kind == "journal" and not os.path.isdir(os.path.dirname(os.path.abspath(_journal_path(url)))):
        raise RegspaceError(f"directory of journal file {_journal_path(url)} does not exist")
    if kind == "sqlite":
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:" and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise RegspaceError(f"directory of SQLite file {path} does not exist")

    def connect():
        if kind == "journal":
            from optuna.storages.journal import JournalFileBackend

            path = _journal_path(url)
            return optuna.storages.JournalStorage(JournalFileBackend(path))
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True, "pool_recycle": 300},
            heartbeat_interval=heartbeat,
            grace_period=grace,
            heartbeat_stale_trial_callback=callback,
        )

    try:
        storage = retry(connect, "connecting", timeout=120)
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
    version = study.user_attrs.get("regspace_queue_schema")
    if (version is None or version < QUEUE_SCHEMA) and create:
        retry(lambda: study.set_user_attr("regspace_queue_schema", QUEUE_SCHEMA), "writing the sweep schema")
    elif version is not None and version > QUEUE_SCHEMA:
        raise RegspaceError(
            f"sweep {sweep!r} was written by a newer regspace (queue schema {version} > {QUEUE_SCHEMA})",
            hint="upgrade regspace",
        )
    return Queue(url, kind, study, heartbeat, grace, callback)


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, float) and v != v:
        return None
    return v


@dataclass
class Queue:
    url: str
    kind: str
    study: object
    heartbeat: int
    grace: int
    callback: object

    # -- enqueueing ------------------------------------------------------------------------
    def model_ids(self) -> set[str]:
        trials = retry(lambda: self.study.get_trials(deepcopy=False), "listing the sweep")
        return {t.user_attrs.get("model_id") for t in trials if "model_id" in t.user_attrs}

    def enqueue(self, rows: list[dict]) -> int:
        """Enqueue store rows (dicts of the models table); returns how many new models were enqueued.

        A model already in the sweep is not enqueued again (it trains once), but the row's draws are
        kept in one study attribute per call, so `collect` counts them (multiplicity)."""
        have = self.model_ids()
        n = 0
        repeats = []
        for row in rows:
            if row["model_id"] in have:
                repeats.append({k: _jsonable(row[k]) for k in DRAW_FIELDS})
                continue
            attrs = {
                "model_id": row["model_id"],
                "space": row["space"],
                "model": json.dumps({k: _jsonable(v) for k, v in row.items()}),
            }
            retry(lambda a=attrs: self.study.enqueue_trial({}, user_attrs=a), "enqueueing")
            have.add(row["model_id"])
            n += 1
        if repeats:
            key = f"{DRAWS_ATTR}{repeats[0]['space']}:{repeats[0]['seed']}:{repeats[0]['draw_index']}"
            retry(lambda: self.study.set_user_attr(key, json.dumps(repeats)), "recording repeat draws")
        return n

    def repeat_draws(self) -> list[dict]:
        """The draws of networks enqueued earlier (rows of DRAW_FIELDS), from every sampling call."""
        attrs = retry(lambda: self.study.user_attrs, "reading the sweep")
        return [row for k, v in attrs.items() if k.startswith(DRAWS_ATTR) for row in json.loads(v)]

    # -- recipe ------------------------------------------------------------------------------
    def recipe(self):
        from regspace.train.recipe import Recipe

        text = self.study.user_attrs.get("recipe")
        return Recipe(**json.loads(text)) if text else None

    def set_recipe(self, recipe) -> None:
        retry(lambda: self.study.set_user_attr("recipe", recipe.to_json()), "writing the sweep's recipe")

    # -- state -------------------------------------------------------------------------------
    def trials(self, states=None):
        return retry(lambda: self.study.get_trials(deepcopy=False, states=states), "listing the sweep")

    def fail_stale(self) -> None:
        """Fail RUNNING trials whose heartbeat is older than the grace period; re-queue them."""
        optuna = _optuna()
        if self.kind != "journal":
            retry(lambda: optuna.storages.fail_stale_trials(self.study), "checking heartbeats")
            return
        now = time.time()
        for t in self.trials((optuna.trial.TrialState.RUNNING,)):
            # no heartbeat yet (killed right after taking it): count from the trial's start
            beat = t.user_attrs.get(HEARTBEAT_ATTR) or (t.datetime_start.timestamp() if t.datetime_start else now)
            if now - float(beat) <= self.grace:
                continue
            try:
                failed = self.study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first
            if failed:
                self.callback(self.study, self.study._storage.get_trial(t._trial_id))

    def beat(self, trial_ids) -> None:
        for tid in trial_ids:
            with contextlib.suppress(Exception):  # a missed heartbeat is retried at the next beat
                if self.kind == "journal":
                    self.study._storage.set_trial_user_attr(tid, HEARTBEAT_ATTR, time.time())
                else:
                    self.study._storage.record_heartbeat(tid)

    def collect(self, store) -> tuple[int, int]:
        """Copy the sweep's models and results into ``store``; returns (models added, results added)."""
        from regspace.store import MODEL_ROW_KEY, MODELS_SCHEMA

        trials = sorted(self.trials(), key=lambda t: t.number)  # the first finished copy of a model wins
        models_have = store.read_arrow("models", list(MODEL_ROW_KEY), dedupe=False)
        results_have = store.read_arrow("results", ["model_id", "recipe_hash"])
        names = set(MODELS_SCHEMA.names)
        rows = [json.loads(t.user_attrs["model"]) for t in trials if "model" in t.user_attrs]
        by_id = {r["model_id"]: r for r in rows}
        # a repeat draw is its network's row with that call's draws
        rows += [{**by_id[d["model_id"]], **d} for d in self.repeat_draws() if d["model_id"] in by_id]
        models = _new_rows(rows, MODEL_ROW_KEY, models_have, "sampled_at")
        models = [{k: v for k, v in row.items() if k in names} for row in models]
        results = _new_rows(
            [json.loads(t.user_attrs["result"]) for t in trials if "result" in t.user_attrs],
            ("model_id", "recipe_hash"),
            results_have,
            "finished_at",
        )
        if models:
            store.append_rows("models", models)
        if results:
            store.append_rows("results", results)
        return len(models), len(results)

    def summary(self) -> list[dict]:
        """Per space: trials waiting / running / finished, retries."""
        optuna = _optuna()
        S = optuna.trial.TrialState
        out: dict[str, dict] = {}
        for t in self.trials():
            space = t.user_attrs.get("space")
            if space is None:
                continue
            row = out.setdefault(
                space, {"space": space, "waiting": 0, "running": 0, "done": 0, "lost": 0, "retries": 0}
            )
            if t.state == S.WAITING:
                row["waiting"] += 1
            elif t.state == S.RUNNING:
                row["running"] += 1
            elif "result" in t.user_attrs:
                row["done"] += 1
            else:
                row["lost"] += 1  # failed by staleness (its retry is another trial) or interrupted
            if "failed_trial" in t.system_attrs:
                row["retries"] += 1
        return list(out.values())


def _new_rows(rows: list[dict], key: tuple, have, time_field: str) -> list[dict]:
    """Rows (decoded from trial attributes) minus those whose key the store already has."""
    seen = set(zip(*(have.column(k).to_pylist() for k in key)))
    out = []
    for row in rows:
        k = tuple(row.get(c) for c in key)
        if k in seen:
            continue
        seen.add(k)
        if row.get(time_field) and isinstance(row[time_field], str):
            row[time_field] = datetime.datetime.fromisoformat(row[time_field])
        out.append(row)
    return out


class QueueWork:
    """The runner's work source for `train --queue`: pops models from the sweep, reports results."""

    def __init__(self, queue: Queue, recipe):
        self.q, self.recipe = queue, recipe
        self.inflight: dict[str, object] = {}
        self.local: deque = deque()
        self.total = None
        self.heartbeat_seconds = max(1, queue.heartbeat // 2) if queue.kind == "journal" else queue.heartbeat
        self.skipped = 0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._last_wait = 0.0
        self._last_stale_check = -1e9

    def next(self):
        from regspace.train.runner import WAIT

        optuna = _optuna()
        S = optuna.trial.TrialState
        if self.local:
            return self.local.popleft()
        now = time.monotonic()
        if now - self._last_wait < 1.0:
            return WAIT  # idle workers poll the database at most once a second
        if now - self._last_stale_check > max(1.0, self.q.grace / 4):
            self.q.fail_stale()  # not at every claim: a stale model waits a grace period anyway
            self._last_stale_check = now
        while self.q.trials((S.WAITING,)):
            trial = retry(self.q.study.ask, "taking a model")
            if "model" not in trial.user_attrs:
                # another worker popped the last waiting trial first; ask() made a fresh one: drop it
                retry(lambda t=trial: self.q.study.tell(t, state=S.FAIL), "dropping an empty trial")
                continue
            retry(lambda t=trial: t.set_user_attr("worker", self.worker), "claiming a model")
            self.q.beat([trial._trial_id])
            model = json.loads(trial.user_attrs["model"])
            self.inflight[model["model_id"]] = trial
            return model
        mine = {tr._trial_id for tr in self.inflight.values()}
        others = [t for t in self.q.trials((S.RUNNING,)) if t._trial_id not in mine]
        if others:
            self._last_wait = time.monotonic()
            return WAIT  # another worker's model may still come back to the queue if that worker dies
        return None

    def retry(self, model: dict) -> None:
        self.local.appendleft(model)

    def done(self, model: dict, row: dict) -> None:
        optuna = _optuna()
        trial = self.inflight.pop(model["model_id"])
        payload = json.dumps({k: _jsonable(v) for k, v in row.items()})
        try:
            retry(lambda: trial.set_user_attr("result", payload), "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            # Our heartbeat went stale (a busy machine) and another worker failed and re-queued the trial
            # first: the model's retry trial carries it now, so this copy of the result is dropped.
            print(
                f"regspace: model {model['model_id']} was handed to another worker meanwhile (missed heartbeats); "
                "its retry will report it",
                file=sys.stderr,
            )
            return
        try:
            if row["status"] == "ok":
                retry(lambda: self.q.study.tell(trial, row["error"]), "reporting a result")
            else:
                retry(lambda: self.q.study.tell(trial, state=optuna.trial.TrialState.FAIL), "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale meanwhile (and re-queued): the result still stands, collect keeps one

    def heartbeat(self) -> None:
        self.q.beat([t._trial_id for t in self.inflight.values()])

    def close(self, interrupted: bool) -> None:
        """On interruption, give models in flight straight back to the queue (no need to wait for grace)."""
        optuna = _optuna()
        for model_id, trial in list(self.inflight.items()):
            with contextlib.suppress(Exception):
                self.q.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self.q.callback(self.q.study, self.q.study._storage.get_trial(trial._trial_id))
            self.inflight.pop(model_id, None)


def train_from_queue(
    url: str,
    sweep: str,
    recipe,
    *,
    explicit_recipe: bool,
    workers: int | None,
    workers_per_device: int | None = None,
    devices: str | None,
    data_dir: str | None,
    heartbeat: int,
    grace: int,
    threads: int | None = None,
    recycle: int = defaults.RECYCLE,
    show_progress: bool | None = None,
):
    """`regspace train --queue`: train models from the sweep until none is waiting or running."""
    from regspace.console import stderr_is_terminal
    from regspace.train.devices import parse_devices
    from regspace.train.runner import TrainSummary, prepare_data, run_workers

    parse_devices(devices)
    q = open_study(url, sweep, heartbeat=heartbeat, grace=grace, create=False)
    if q.kind == "sqlite":
        optuna = _optuna()
        if (workers or 1) > 1:
            raise RegspaceError(
                "SQLite cannot serve several workers: Optuna's FAQ warns it can hand one trial to two of them",
                hint="use --workers 1, or PostgreSQL/MySQL (or a journal file) for many",
            )
        if q.trials((optuna.trial.TrialState.RUNNING,)):
            raise RegspaceError(
                "another worker is training from this SQLite queue; SQLite cannot serve several workers",
                hint="use PostgreSQL or MySQL, or a journal file, for many workers",
            )
    stored = q.recipe()
    if stored is None:
        q.set_recipe(recipe)
    elif stored.hash != recipe.hash:
        if explicit_recipe:
            raise RegspaceError(
                f"sweep {sweep!r} trains with recipe {stored.name} {stored.hash}, not {recipe.hash}",
                hint="give the same training options, none (to use the sweep's), or another --sweep",
            )
        recipe = stored
    models = [json.loads(t.user_attrs["model"]) for t in q.trials() if "model" in t.user_attrs]
    if not models:
        return TrainSummary(recipe, 0)
    progress = stderr_is_terminal() if show_progress is None else show_progress
    dataset = prepare_data(recipe, models, data_dir=data_dir, progress=progress)
    work = QueueWork(q, recipe)
    summary = run_workers(
        work,
        recipe,
        dataset,
        sizing_models=models,
        workers=workers,
        workers_per_device=workers_per_device,
        threads=threads,
        devices=devices,
        recycle=recycle,
        progress=progress,
    )
    summary.planned = None
    return summary
