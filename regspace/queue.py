"""Sweeps across machines, through Optuna's storage (`--queue URL`).

A sweep is one Optuna study named ``regspace:<sweep>`` in the storage at URL, readable through
Optuna's public API and optuna-dashboard: each model is a trial whose user attributes hold its id,
space, flops, params and its whole store row (``model``), and whose value is the model's error.

- ``sample --queue`` enqueues new models as WAITING trials, in bulk;
- ``train --queue`` (on any number of machines) claims a waiting trial (WAITING → RUNNING through the
  storage, which locks the row), trains it, stores the result row in the trial and finishes it. A
  running trial sends heartbeats; one whose heartbeat is older than the grace period is failed and
  re-queued by Optuna's ``RetryHeartbeatStaleTrialCallback``. RDB storages use Optuna's heartbeat
  table; the journal file, which has none, keeps the heartbeat in a trial attribute;
- ``collect`` copies models and results into a local parquet store, incrementally.

Finding trials: Optuna lists a study's trials by loading every one with all its attributes, so
anything built on it costs time in proportion to the sweep. A :class:`TrialIndex` answers the
sweep's questions (which trials wait, how many are in each state, what finished since the last
collect); :class:`SqlIndex` answers them with indexed SQL over Optuna's own tables (PostgreSQL),
in time independent of the sweep's length, and :class:`ApiIndex` through Optuna's API (journal
file, SQLite; for small sweeps). Every change of state still goes through Optuna's storage API.

URLs: ``postgresql://…`` (SQLAlchemy URL, many workers), ``sqlite:///path`` (one worker only:
Optuna's FAQ warns that SQLite can hand one trial to two workers), ``journal:///path/to/sweep.log``
or a path ending in .log/.journal (Optuna's journal file storage, for a shared file system).
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

# 2: repeat draws of enqueued networks in DRAWS_ATTR study attributes.
# 3: trials carry flops/params/acts attributes; PROFILE_ATTR study attributes sum up each enqueue call.
QUEUE_SCHEMA = 3
STUDY_PREFIX = "regspace:"
HEARTBEAT_ATTR = "regspace_heartbeat"
MAX_RETRY = 3
DRAWS_ATTR = "regspace_draws:"  # study attributes holding repeat draws of enqueued networks
DRAW_FIELDS = ("space", "model_id", "seed", "draw_index", "multiplicity", "draw_indices")
PROFILE_ATTR = "regspace_profile:"  # study attributes: what one enqueue call added (see Queue.models)
TRIAL_FIELDS = ("model_id", "space", "flops", "params", "acts")  # light trial attributes (dashboard, profile)
ENQUEUE_BATCH = 2000  # trials per bulk-insert transaction


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used with Study.optimize.*")
    return optuna


def queue_kind(url: str) -> str:
    u = url.strip()
    if u.startswith(("postgresql", "postgres://")):
        return "rdb"
    if u.startswith("sqlite:"):
        return "sqlite"
    if u.startswith("journal:") or u.endswith((".log", ".journal")):
        return "journal"
    raise RegspaceError(
        f"cannot use queue {url!r}",
        hint="use postgresql://user@host/db, sqlite:///file.db or journal:///path/sweep.log",
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


def _retry_unless_reported(retry_stale):
    """Optuna's re-queue of a stale trial, except for one whose worker died between storing the result
    and finishing the trial (report() is two writes): its model is done and collect reads the result,
    so a retry would only train it twice."""

    def callback(study, trial) -> None:
        if "result" not in trial.user_attrs:
            retry_stale(study, trial)

    return callback


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
    callback = _retry_unless_reported(optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))

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
    attrs = retry(lambda: study.user_attrs, "reading the sweep")
    version = attrs.get("regspace_queue_schema")
    if (version is None or version < QUEUE_SCHEMA) and create:
        retry(lambda: study.set_user_attr("regspace_queue_schema", QUEUE_SCHEMA), "writing the sweep schema")
    elif version is not None and version > QUEUE_SCHEMA:
        raise RegspaceError(
            f"sweep {sweep!r} was written by a newer regspace (queue schema {version} > {QUEUE_SCHEMA})",
            hint="upgrade regspace",
        )
    index = SqlIndex(storage, study) if SqlIndex.serves(storage) else ApiIndex(storage, study)
    return Queue(url, kind, study, storage, heartbeat, grace, callback, index)


def redact(url: str) -> str:
    """A queue URL without its password, for printing."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _study_id(study) -> int:
    """Optuna has no public accessor for a study's id, which its storage API takes: the one place
    that reaches inside a Study."""
    return study._study_id


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, float) and v != v:
        return None
    return v


# -- finding trials: one interface, two backends --------------------------------------------------


class TrialIndex:
    """What the sweep asks about its trials, answered without loading the whole sweep where possible."""

    def waiting(self, limit: int) -> list[int]:
        """Ids of up to ``limit`` waiting trials, oldest first."""
        raise NotImplementedError

    def running(self) -> list[int]:
        raise NotImplementedError

    def model_ids(self) -> set[str]:
        raise NotImplementedError

    def counts(self) -> list[dict]:
        """Per space: trials waiting / running / done / lost, and retries."""
        raise NotImplementedError

    def finished_rows(self, mark: dict) -> tuple[list[dict], list[dict], dict]:
        """(model rows, result rows, new mark): what was added or finished since ``mark`` (from the
        previous call; {} the first time). Rows may repeat earlier ones; callers de-duplicate."""
        raise NotImplementedError

    def enqueue(self, attrs: list[dict]) -> None:
        """Add waiting trials with these user attributes, in order."""
        raise NotImplementedError

    def model_of(self, trial_id: int) -> tuple[int, str | None]:
        """(trial number, the trial's ``model`` attribute or None)."""
        raise NotImplementedError

    def stale_unstarted(self, grace: int) -> list[int]:
        """Running trials that never sent a heartbeat, started more than ``grace`` seconds ago (their
        worker died at once). Optuna's stale check skips those."""
        return []


def _summary(rows) -> list[dict]:
    """Per-space counts from (space, state name, has result, is a retry) tuples: the one definition."""
    out: dict[str, dict] = {}
    for space, state, has_result, is_retry, n in rows:
        if space is None:
            continue
        row = out.setdefault(space, {"space": space, "waiting": 0, "running": 0, "done": 0, "lost": 0, "retries": 0})
        if state == "WAITING":
            row["waiting"] += n
        elif state == "RUNNING":
            row["running"] += n
        elif has_result:
            row["done"] += n
        else:
            row["lost"] += n  # failed by staleness (its retry is another trial) or interrupted
        if is_retry:
            row["retries"] += n
    return list(out.values())


class ApiIndex(TrialIndex):
    """Through Optuna's API: every question loads the study's trials (journal file, SQLite)."""

    def __init__(self, storage, study):
        self.storage, self.study = storage, study

    def _trials(self, states=None):
        return retry(lambda: self.study.get_trials(deepcopy=False, states=states), "listing the sweep")

    def trial_id(self, trial) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(_study_id(self.study), trial.number)

    def waiting(self, limit: int) -> list[int]:
        S = _optuna().trial.TrialState
        return [self.trial_id(t) for t in self._trials((S.WAITING,))[:limit]]

    def running(self) -> list[int]:
        S = _optuna().trial.TrialState
        return [self.trial_id(t) for t in self._trials((S.RUNNING,))]

    def model_ids(self) -> set[str]:
        return {t.user_attrs["model_id"] for t in self._trials() if "model_id" in t.user_attrs}

    def model_of(self, trial_id: int):
        trial = retry(lambda: self.storage.get_trial(trial_id), "taking a model")
        return trial.number, trial.user_attrs.get("model")

    def counts(self) -> list[dict]:
        return _summary(
            (t.user_attrs.get("space"), t.state.name, "result" in t.user_attrs, "failed_trial" in t.system_attrs, 1)
            for t in self._trials()
        )

    def finished_rows(self, mark: dict):
        trials = sorted(self._trials(), key=lambda t: t.number)  # the first finished copy of a model wins
        models = [json.loads(t.user_attrs["model"]) for t in trials if "model" in t.user_attrs]
        results = [json.loads(t.user_attrs["result"]) for t in trials if "result" in t.user_attrs]
        return models, results, {}

    def enqueue(self, attrs: list[dict]) -> None:
        optuna = _optuna()
        S = optuna.trial.TrialState
        for a in attrs:
            trial = optuna.trial.create_trial(state=S.WAITING, params={}, distributions={}, user_attrs=a)
            retry(lambda t=trial: self.study.add_trial(t), "enqueueing")


class SqlIndex(TrialIndex):
    """Indexed SQL over Optuna's own tables (PostgreSQL). Reads only, plus the bulk insert of waiting
    trials, which writes the rows Optuna's ``add_trial`` would write (trial, user attributes) under a
    table lock so that trial numbers follow Optuna's rule (the count of the study's earlier trials).

    A partial index on waiting trials (created once, if the database allows) makes finding the
    oldest waiting trials a lookup, whatever the sweep's length."""

    WAITING_INDEX = "regspace_waiting_trials"

    @staticmethod
    def serves(storage) -> bool:
        engine = getattr(storage, "engine", None)
        return engine is not None and engine.dialect.name == "postgresql"

    def __init__(self, storage, study):
        import sqlalchemy as sa

        self.sa, self.engine, self.study_id = sa, storage.engine, _study_id(study)
        meta = sa.MetaData()
        names = ("trials", "trial_user_attributes", "trial_system_attributes", "trial_heartbeats")
        retry(lambda: meta.reflect(self.engine, only=names), "reading the sweep's tables")
        self.t = meta.tables
        self._indexed = False

    def _rows(self, query, **params):
        def run():
            with self.engine.connect() as conn:
                return conn.execute(self.sa.text(query), {"sid": self.study_id, **params}).all()

        return retry(run, "querying the sweep")

    def ensure_index(self) -> None:
        if self._indexed:
            return
        self._indexed = True
        with contextlib.suppress(Exception):  # an optimisation only: a read-only role still works without it
            with self.engine.begin() as conn:
                conn.execute(
                    self.sa.text(
                        f"CREATE INDEX IF NOT EXISTS {self.WAITING_INDEX} ON trials (study_id, trial_id) "
                        "WHERE state = 'WAITING'"
                    )
                )

    def waiting(self, limit: int) -> list[int]:
        q = "SELECT trial_id FROM trials WHERE study_id = :sid AND state = 'WAITING' ORDER BY trial_id LIMIT :k"
        return [r[0] for r in self._rows(q, k=limit)]

    def running(self) -> list[int]:
        return [r[0] for r in self._rows("SELECT trial_id FROM trials WHERE study_id = :sid AND state = 'RUNNING'")]

    def model_ids(self) -> set[str]:
        q = (
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :sid AND a.key = 'model_id'"
        )
        return {json.loads(r[0]) for r in self._rows(q)}

    def counts(self) -> list[dict]:
        q = (
            "SELECT sp.value_json, t.state, r.trial_id IS NOT NULL, f.trial_id IS NOT NULL, count(*) "
            "FROM trials t "
            "LEFT JOIN trial_user_attributes sp ON sp.trial_id = t.trial_id AND sp.key = 'space' "
            "LEFT JOIN trial_user_attributes r ON r.trial_id = t.trial_id AND r.key = 'result' "
            "LEFT JOIN trial_system_attributes f ON f.trial_id = t.trial_id AND f.key = 'failed_trial' "
            "WHERE t.study_id = :sid GROUP BY 1, 2, 3, 4"
        )
        return _summary((json.loads(sp) if sp else None, str(st), res, rt, n) for sp, st, res, rt, n in self._rows(q))

    # Row ids come from sequences: one taken just before another may commit just after it. Reading
    # again a few ids below the mark covers that (an insert commits within milliseconds of taking its id).
    OVERLAP = 64

    def finished_rows(self, mark: dict):
        """Models of trials added after the mark's last trial id, and results reported after its last
        attribute id (both less OVERLAP): a collect reads what is new, not the sweep."""
        last_trial = max(0, int(mark.get("last_trial_id", 0)) - self.OVERLAP)
        last_attr = max(0, int(mark.get("last_attr_id", 0)) - self.OVERLAP)
        top_trial, top_attr = self._rows(
            "SELECT (SELECT coalesce(max(trial_id), 0) FROM trials), "
            "(SELECT coalesce(max(trial_user_attribute_id), 0) FROM trial_user_attributes)"
        )[0]
        query = (
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :sid AND a.key = :key AND {where} ORDER BY t.number"
        )
        models = self._rows(
            query.format(where="t.trial_id > :lo AND t.trial_id <= :hi"), key="model", lo=last_trial, hi=top_trial
        )
        results = self._rows(
            query.format(where="a.trial_user_attribute_id > :lo AND a.trial_user_attribute_id <= :hi"),
            key="result",
            lo=last_attr,
            hi=top_attr,
        )
        decode = lambda rows: [json.loads(json.loads(r[0])) for r in rows]  # noqa: E731 - attrs hold JSON text
        return decode(models), decode(results), {"last_trial_id": int(top_trial), "last_attr_id": int(top_attr)}

    def enqueue(self, attrs: list[dict]) -> None:
        self.ensure_index()
        trials, user = self.t["trials"], self.t["trial_user_attributes"]
        for lo in range(0, len(attrs), ENQUEUE_BATCH):
            batch = attrs[lo : lo + ENQUEUE_BATCH]

            def insert(batch=batch):
                with self.engine.begin() as conn:
                    # Blocks other inserts (and state changes) into trials for this transaction only:
                    # numbers are then exactly Optuna's (earlier trials of the study, by id).
                    conn.execute(self.sa.text("LOCK TABLE trials IN SHARE ROW EXCLUSIVE MODE"))
                    count = self.sa.select(self.sa.func.count()).select_from(trials)
                    base = conn.execute(count.where(trials.c.study_id == self.study_id)).scalar()
                    new = [
                        {"number": base + i, "study_id": self.study_id, "state": "WAITING"} for i in range(len(batch))
                    ]
                    insert = trials.insert().returning(trials.c.trial_id, sort_by_parameter_order=True)
                    ids = conn.execute(insert, new).scalars().all()
                    conn.execute(
                        user.insert(),
                        [
                            {"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                            for tid, a in zip(ids, batch)
                            for k, v in a.items()
                        ],
                    )

            retry(insert, "enqueueing")

    def model_of(self, trial_id: int):
        q = (
            "SELECT t.number, a.value_json FROM trials t LEFT JOIN trial_user_attributes a "
            "ON a.trial_id = t.trial_id AND a.key = 'model' WHERE t.trial_id = :tid"
        )
        number, value = self._rows(q, tid=trial_id)[0]
        return number, (json.loads(value) if value is not None else None)

    # Optuna stamps datetime_start with the worker's local clock, in its time zone; the database's clock
    # may be in another. A claim beats at once, so a trial without a heartbeat is at most milliseconds
    # old unless its worker died: waiting the grace plus 26 hours (every time-zone offset) is safe.
    UNSTARTED_MARGIN = 26 * 3600

    def stale_unstarted(self, grace: int) -> list[int]:
        q = (
            "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE t.study_id = :sid AND t.state = 'RUNNING' AND h.trial_id IS NULL "
            "AND t.datetime_start < LOCALTIMESTAMP - make_interval(secs => :wait)"
        )
        return [r[0] for r in self._rows(q, wait=float(grace + self.UNSTARTED_MARGIN))]


@dataclass(frozen=True)
class Claim:
    """A trial this worker holds (the storage API addresses trials by id)."""

    trial_id: int
    number: int


@dataclass
class Queue:
    url: str
    kind: str
    study: object
    storage: object
    heartbeat: int
    grace: int
    callback: object
    index: TrialIndex

    # -- enqueueing ------------------------------------------------------------------------
    def model_ids(self) -> set[str]:
        return self.index.model_ids()

    def enqueue(self, rows: list[dict]) -> int:
        """Enqueue store rows (dicts of the models table) in bulk; returns how many new models were enqueued.

        A model already in the sweep is not enqueued again (it trains once), but the row's draws are
        kept in one study attribute per call, so `collect` counts them (multiplicity)."""
        have = self.model_ids()
        new, repeats = [], []
        for row in rows:
            if row["model_id"] in have:
                repeats.append({k: _jsonable(row[k]) for k in DRAW_FIELDS})
                continue
            attrs = {k: _jsonable(row.get(k)) for k in TRIAL_FIELDS}
            attrs["model"] = json.dumps({k: _jsonable(v) for k, v in row.items()})
            new.append(attrs)
            have.add(row["model_id"])
        if new:
            first = rows[0]
            key = f"{PROFILE_ATTR}{first['space']}:{first.get('seed')}:{first.get('draw_index')}:{len(new)}"
            retry(lambda: self.study.set_user_attr(key, json.dumps(_profile(new))), "recording the sweep's profile")
            self.index.enqueue(new)
        if repeats:
            key = f"{DRAWS_ATTR}{repeats[0]['space']}:{repeats[0]['seed']}:{repeats[0]['draw_index']}"
            retry(lambda: self.study.set_user_attr(key, json.dumps(repeats)), "recording repeat draws")
        return len(new)

    def repeat_draws(self) -> list[dict]:
        """The draws of networks enqueued earlier (rows of DRAW_FIELDS), from every sampling call."""
        attrs = retry(lambda: self.study.user_attrs, "reading the sweep")
        return [row for k, v in attrs.items() if k.startswith(DRAWS_ATTR) for row in json.loads(v)]

    # -- recipe ------------------------------------------------------------------------------
    def recipe(self):
        from regspace.train.recipe import Recipe

        text = retry(lambda: self.study.user_attrs, "reading the sweep").get("recipe")
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
                hint="use --workers 1, or PostgreSQL (or a journal file) for many",
            )
        if self.index.running():
            raise RegspaceError(
                "another worker is training from this SQLite queue; SQLite cannot serve several workers",
                hint="use PostgreSQL, or a journal file, for many workers",
            )

    def models(self) -> list[dict]:
        """What a worker needs to know of the sweep's models before training (input resolutions,
        classes, the largest acts and params, how many): one profile per enqueue call, read from the
        study's attributes. Sweeps of queue schema 2 have none: their model rows are read instead."""
        attrs = retry(lambda: self.study.user_attrs, "reading the sweep")
        profiles = [json.loads(v) for k, v in attrs.items() if k.startswith(PROFILE_ATTR)]
        if profiles:
            return [p for prof in profiles for p in prof]
        models, _, _ = self.index.finished_rows({})
        return models

    # -- state -------------------------------------------------------------------------------
    def trials(self, states=None):
        """Every trial (Optuna's API: loads the whole sweep; for tests and small sweeps)."""
        return retry(lambda: self.study.get_trials(deepcopy=False, states=states), "listing the sweep")

    def fail_stale(self) -> None:
        """Fail RUNNING trials whose heartbeat is older than the grace period; re-queue them."""
        optuna = _optuna()
        if self.kind != "journal":
            retry(lambda: optuna.storages.fail_stale_trials(self.study), "checking heartbeats")
            for tid in self.index.stale_unstarted(self.grace):
                self._fail_and_requeue(tid)
            return
        now = time.time()
        for t in self.trials((optuna.trial.TrialState.RUNNING,)):
            # no heartbeat yet (killed right after taking it): count from the trial's start
            beat = t.user_attrs.get(HEARTBEAT_ATTR) or (t.datetime_start.timestamp() if t.datetime_start else now)
            if now - float(beat) > self.grace:
                self._fail_and_requeue(self.index.trial_id(t))  # the journal file is always on ApiIndex

    def _fail_and_requeue(self, trial_id: int) -> None:
        optuna = _optuna()
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
                if self.kind == "journal":
                    self.storage.set_trial_user_attr(c.trial_id, HEARTBEAT_ATTR, time.time())
                else:
                    self.storage.record_heartbeat(c.trial_id)

    # -- a worker's side ---------------------------------------------------------------------
    def take(self, worker: str, *, window: int = 32):
        """(claim, model row) of a waiting model, now ours; None when nothing waits.

        Picks at random among the oldest ``window`` waiting trials, so that concurrent workers rarely
        reach for the same one; the storage's WAITING → RUNNING transition decides who gets it."""
        import random

        optuna = _optuna()
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
                self.storage.set_trial_state_values(tid, _optuna().trial.TrialState.FAIL)
            return None
        retry(lambda: self.storage.set_trial_user_attr(tid, "worker", worker), "claiming a model")
        return Claim(tid, number), json.loads(model)

    def others_running(self, mine) -> bool:
        """Whether trials other than ``mine`` are running (their models may still come back)."""
        ours = {c.trial_id for c in mine}
        return any(tid not in ours for tid in self.index.running())

    def report(self, claim: Claim, row: dict) -> bool:
        """Store a result in its trial and finish it; False when the trial was failed as stale (and
        re-queued) meanwhile, so its retry carries the model now."""
        optuna = _optuna()
        S = optuna.trial.TrialState
        payload = json.dumps({k: _jsonable(v) for k, v in row.items()})
        try:
            retry(lambda: self.storage.set_trial_user_attr(claim.trial_id, "result", payload), "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        try:
            if row["status"] == "ok":
                finish = lambda: self.storage.set_trial_state_values(claim.trial_id, S.COMPLETE, [row["error"]])  # noqa: E731
            else:
                finish = lambda: self.storage.set_trial_state_values(claim.trial_id, S.FAIL)  # noqa: E731
            retry(finish, "reporting a result")
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale between the two calls: the result is in the trial, collect keeps one
        return True

    def give_back(self, claim: Claim) -> None:
        """Fail our trial and re-queue its model now (an interrupted worker need not wait for the grace)."""
        with contextlib.suppress(Exception):
            self._fail_and_requeue(claim.trial_id)

    def collect(self, store) -> tuple[int, int]:
        """Copy the sweep's new models and results into ``store``; returns (models added, results added).
        Incremental: the store remembers how far it collected from this sweep."""
        from regspace.store import MODEL_ROW_KEY, MODELS_SCHEMA

        mark_key = f"{redact(self.url)}|{self.study.study_name}"
        mark = store.collect_mark(mark_key)
        rows, result_rows, new_mark = self.index.finished_rows(mark)
        models_have = store.read_arrow("models", list(MODEL_ROW_KEY), dedupe=False)
        results_have = store.read_arrow("results", ["model_id", "recipe_hash"])
        names = set(MODELS_SCHEMA.names)
        # a repeat draw is its network's row with that call's draws
        by_id = {r["model_id"]: r for r in rows}
        draws = self.repeat_draws()
        missing = {d["model_id"] for d in draws} - set(by_id)
        if missing:  # networks collected earlier: their rows come from the store
            for r in store.read_arrow("models").to_pylist():
                if r["model_id"] in missing:
                    by_id.setdefault(r["model_id"], r)
        rows += [{**by_id[d["model_id"]], **d} for d in draws if d["model_id"] in by_id]
        models = _new_rows(rows, MODEL_ROW_KEY, models_have, "sampled_at")
        models = [{k: v for k, v in row.items() if k in names} for row in models]
        usable = [r for r in result_rows if r.get("model_id") and r.get("recipe_hash") and r.get("status")]
        if len(usable) < len(result_rows):  # e.g. a trial someone finished by hand through Optuna
            print(
                f"regspace: warning: {len(result_rows) - len(usable)} trial result(s) in the sweep are not "
                "regspace results (no model id, recipe hash or status); they were not collected",
                file=sys.stderr,
            )
        results = _new_rows(usable, ("model_id", "recipe_hash"), results_have, "finished_at")
        if models:
            store.append_rows("models", models)
        if results:
            store.append_rows("results", results)
        if new_mark:
            store.set_collect_mark(mark_key, new_mark)
        return len(models), len(results)

    def summary(self) -> list[dict]:
        """Per space: trials waiting / running / finished, retries."""
        return self.index.counts()

    def run_once(self, key: str, action, *, wait: float = 600.0, poll: float = 2.0) -> bool:
        """Run ``action`` once for this sweep across machines, e.g. enqueueing a study. The first caller
        runs it: creating an Optuna study named after ``key`` succeeds for exactly one caller (a unique
        name in the storage). It then sets the sweep attribute ``key``. Every other caller waits for that
        attribute; after ``wait`` seconds without it (the first caller died) it runs ``action`` itself, so
        ``action`` must be idempotent. Returns whether this caller ran it."""
        import time

        optuna = _optuna()
        attr = f"once:{key}"

        def done() -> bool:
            return attr in retry(lambda: self.study.user_attrs, "reading the sweep")

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
        retry(lambda: self.study.set_user_attr(attr, True), "recording the sweep's set-up")
        return True


def _profile(attrs: list[dict]) -> list[dict]:
    """What workers need to plan before training, per (resolution, classes, channels): the largest
    acts and params, and how many models."""
    out: dict[tuple, dict] = {}
    for a in attrs:
        m = json.loads(a["model"])
        key = (m.get("resolution"), m.get("num_classes"), m.get("in_channels"))
        p = out.setdefault(
            key,
            {"resolution": key[0], "num_classes": key[1], "in_channels": key[2], "acts": 0, "params": 0, "count": 0},
        )
        p["acts"], p["params"] = max(p["acts"], int(m["acts"])), max(p["params"], int(m["params"]))
        p["count"] += 1
        p["space"] = m.get("space")
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
