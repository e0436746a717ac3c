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
import sys
import time
import warnings
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


def redact(url: str) -> str:
    """A queue URL without its password, for printing."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _storage(study):
    """Optuna's storage behind a study. Optuna has no public API to fail one trial by id or to beat a
    trial's heartbeat outside Study.optimize: these two helpers are the only places that reach inside."""
    return study._storage


def _trial_id(trial) -> int:
    return trial._trial_id


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

    def agree_recipe(self, recipe, *, explicit: bool):
        """The recipe this worker trains with: the sweep's (the first worker sets it). A worker given other
        training options explicitly is refused; one given none follows the sweep."""
        stored = self.recipe()
        if stored is None:
            self.set_recipe(recipe)
            return recipe
        if stored.hash != recipe.hash and explicit:
            raise RegspaceError(
                f"sweep {self.study.study_name.removeprefix(STUDY_PREFIX)!r} trains with recipe {stored.name} "
                f"{stored.hash}, not {recipe.hash}",
                hint="give the same training options, none (to use the sweep's), or another --sweep",
            )
        return stored

    def check_workers(self, workers: int) -> None:
        """SQLite can hand one trial to two workers (Optuna's FAQ): one worker, and only one, at a time."""
        if self.kind != "sqlite":
            return
        if workers > 1:
            raise RegspaceError(
                "SQLite cannot serve several workers: Optuna's FAQ warns it can hand one trial to two of them",
                hint="use --workers 1, or PostgreSQL/MySQL (or a journal file) for many",
            )
        if self.trials((_optuna().trial.TrialState.RUNNING,)):
            raise RegspaceError(
                "another worker is training from this SQLite queue; SQLite cannot serve several workers",
                hint="use PostgreSQL or MySQL, or a journal file, for many workers",
            )

    def models(self) -> list[dict]:
        """Every model row of the sweep (to size workers and prepare the data)."""
        return [json.loads(t.user_attrs["model"]) for t in self.trials() if "model" in t.user_attrs]

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
        storage = _storage(self.study)
        for t in self.trials((optuna.trial.TrialState.RUNNING,)):
            # no heartbeat yet (killed right after taking it): count from the trial's start
            beat = t.user_attrs.get(HEARTBEAT_ATTR) or (t.datetime_start.timestamp() if t.datetime_start else now)
            if now - float(beat) <= self.grace:
                continue
            try:
                failed = storage.set_trial_state_values(_trial_id(t), optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first
            if failed:
                self.callback(self.study, storage.get_trial(_trial_id(t)))

    def beat(self, trials) -> None:
        """Heartbeats for these trials (ours, in flight)."""
        storage = _storage(self.study)
        for t in trials:
            with contextlib.suppress(Exception):  # a missed heartbeat is retried at the next beat
                if self.kind == "journal":
                    storage.set_trial_user_attr(_trial_id(t), HEARTBEAT_ATTR, time.time())
                else:
                    storage.record_heartbeat(_trial_id(t))

    # -- a worker's side ---------------------------------------------------------------------
    def take(self, worker: str):
        """(trial, model row) of a waiting model, now ours; None when nothing waits."""
        S = _optuna().trial.TrialState
        while self.trials((S.WAITING,)):
            trial = retry(self.study.ask, "taking a model")
            if "model" not in trial.user_attrs:
                # another worker popped the last waiting trial first; ask() made a fresh one: drop it
                retry(lambda t=trial: self.study.tell(t, state=S.FAIL), "dropping an empty trial")
                continue
            retry(lambda t=trial: t.set_user_attr("worker", worker), "claiming a model")
            self.beat([trial])
            return trial, json.loads(trial.user_attrs["model"])
        return None

    def others_running(self, mine) -> bool:
        """Whether trials other than ``mine`` are running (their models may still come back)."""
        ours = {_trial_id(t) for t in mine}
        return any(_trial_id(t) not in ours for t in self.trials((_optuna().trial.TrialState.RUNNING,)))

    def report(self, trial, row: dict) -> bool:
        """Store a result in its trial and finish it; False when the trial was failed as stale (and
        re-queued) meanwhile, so its retry carries the model now."""
        optuna = _optuna()
        payload = json.dumps({k: _jsonable(v) for k, v in row.items()})
        try:
            retry(lambda: trial.set_user_attr("result", payload), "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        try:
            if row["status"] == "ok":
                retry(lambda: self.study.tell(trial, row["error"]), "reporting a result")
            else:
                retry(lambda: self.study.tell(trial, state=optuna.trial.TrialState.FAIL), "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale between the two calls: the result is in the trial, collect keeps one
        return True

    def give_back(self, trial) -> None:
        """Fail our trial and re-queue its model now (an interrupted worker need not wait for the grace)."""
        optuna = _optuna()
        with contextlib.suppress(Exception):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.callback(self.study, _storage(self.study).get_trial(_trial_id(trial)))

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
