"""Finding a sweep's trials: one interface, :class:`TrialIndex`, two implementations.

Optuna lists a study's trials by loading every one with all its attributes, so anything built on it
costs time in proportion to the sweep. A :class:`TrialIndex` answers the sweep's questions (which
trials wait, how many are in each state, what finished since the last collect); :class:`SqlIndex`
answers them with indexed SQL over Optuna's own tables (PostgreSQL), in time independent of the
sweep's length, and :class:`ApiIndex` through Optuna's API (journal file, SQLite; for small sweeps).
Every change of state still goes through Optuna's storage API (regspace.sweep.adapter).

The index knows the trial layout (which user attributes a trial carries: ``model_id``, ``space``,
``model``, ``result``), not what the payloads mean: ``model`` and ``result`` are JSON text, decoded to
dicts and handed on.
"""

from __future__ import annotations

import contextlib
import json

from regspace.sweep.backends import optuna_module, retry, study_id

ENQUEUE_BATCH = 2000  # trials per bulk-insert transaction


def open_index(storage, study) -> TrialIndex:
    """SQL over Optuna's tables where the storage is PostgreSQL, else Optuna's API."""
    return SqlIndex(storage, study) if SqlIndex.serves(storage) else ApiIndex(storage, study)


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
        return self.storage.get_trial_id_from_study_id_trial_number(study_id(self.study), trial.number)

    def waiting(self, limit: int) -> list[int]:
        S = optuna_module().trial.TrialState
        return [self.trial_id(t) for t in self._trials((S.WAITING,))[:limit]]

    def running(self) -> list[int]:
        S = optuna_module().trial.TrialState
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
        optuna = optuna_module()
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

        self.sa, self.engine, self.study_id = sa, storage.engine, study_id(study)
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
