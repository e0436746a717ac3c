"""The queue at scale: bulk enqueue, claims whose cost does not grow with the sweep, incremental
collect, readable through Optuna's public API, and stopping cleanly at any moment.

A conformance suite in the style of Optuna's StorageTestCase: each behaviour is one test that takes the
``sweep_url`` fixture (tests/conftest.py), so it runs over every backend (PostgreSQL through SQL over
Optuna's tables; the journal file through Optuna's API). What a sweep holds is read back with Optuna's
public API, not regspace's. Two tests take PostgreSQL only, because what they check exists only there:
the row counts of SqlIndex's queries, and SqlIndex's re-queue of trials that never sent a heartbeat
(Optuna's heartbeat table and the database's clock; the journal file keeps heartbeats in an attribute).
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import QUEUE_BACKENDS, cli, default_sigint, queue_url

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))


def optuna_study(url):
    """The sweep's study, opened with Optuna's public API only."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = (
        optuna.storages.JournalStorage(JournalFileBackend(url[len("journal://") :]))
        if url.startswith("journal")
        else url
    )
    return optuna.load_study(study_name="regspace:default", storage=storage)


@pytest.fixture(scope="module")
def model_rows():
    from bench_queue import rows

    return rows(600)


def ok_row(model, error):
    return {"model_id": model["model_id"], "recipe_hash": "r0", "status": "ok", "error": error}


def test_bulk_enqueue_reads_back_through_optunas_public_api(sweep_url, model_rows):
    import optuna

    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import enqueue

    url = sweep_url
    q = open_study(url)
    assert enqueue(q, model_rows[:300]) == 300
    assert enqueue(q, model_rows[200:400]) == 100  # the 100 already there are not enqueued twice
    study = optuna_study(url)
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(400))  # Optuna's numbering: consecutive, in order
    assert all(t.state == optuna.trial.TrialState.WAITING for t in trials)
    want = model_rows[:400]
    for t, m in zip(trials, want, strict=True):
        assert {k: t.user_attrs[k] for k in ("model_id", "space", "flops", "params")} == {
            k: m[k] for k in ("model_id", "space", "flops", "params")
        }
    # Optuna's own calls work on bulk-enqueued trials: ask() takes the oldest waiting one
    trial = study.ask()
    assert trial.number == 0 and trial.user_attrs["model_id"] == want[0]["model_id"]


def test_a_finished_sweep_shows_errors_as_trial_values(sweep_url, model_rows):
    """What optuna-dashboard shows: each model's error as the trial value, its facts as attributes."""
    import optuna

    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import enqueue, report

    url = sweep_url
    q = open_study(url)
    enqueue(q, model_rows[:5])
    errors = {}
    while (taken := q.take("w")) is not None:
        claim, model = taken
        errors[model["model_id"]] = 10.0 + len(errors)
        report(q, claim, ok_row(model, errors[model["model_id"]]))
    done = optuna_study(url).get_trials(deepcopy=False)
    assert len(done) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    assert {t.user_attrs["model_id"]: t.value for t in done} == errors
    assert all(isinstance(t.user_attrs["flops"], int) and t.user_attrs["space"] == "X_c" for t in done)


@pytest.fixture(params=[*QUEUE_BACKENDS, "sqlite"])
def any_queue_url(request, tmp_path):
    """Each backend a sweep can be on: those of ``sweep_url`` and SQLite (one worker at a time, so not
    in the many-worker conformance suite, but a sweep's queue all the same)."""
    return queue_url(request.param, request, tmp_path)


def test_claims_take_the_oldest_waiting_models_first(any_queue_url, model_rows):
    """With 100 models waiting (over three times the claim window of 32), claim k takes one of the 32
    oldest still waiting: its trial number is below k + 32, so the queue stays first-in first-out."""
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import enqueue

    q = open_study(any_queue_url)
    enqueue(q, model_rows[:100])
    numbers = []
    for k in range(40):
        claim, _ = q.take("w")
        numbers.append(claim.number)
        assert claim.number < k + 32, (k, numbers)
    assert len(set(numbers)) == 40


def _rows_read(engine):
    """Count the rows every statement returns (SQLAlchemy's cursor events)."""
    import sqlalchemy as sa

    counter = {"rows": 0, "statements": 0}

    def after(conn, cursor, statement, parameters, context, executemany):
        counter["statements"] += 1
        if statement.lstrip().upper().startswith("SELECT") and cursor.rowcount and cursor.rowcount > 0:
            counter["rows"] += cursor.rowcount

    sa.event.listen(engine, "after_cursor_execute", after)
    return counter, lambda: sa.event.remove(engine, "after_cursor_execute", after)


def test_claim_and_report_read_the_same_rows_at_any_queue_length(pg, model_rows):
    """Flat by construction: one claim + report reads as many rows with 100 models waiting as with 600
    (Optuna's ask() reads every waiting trial: the counter sees it grow with the queue). PostgreSQL
    only: it counts the rows of SqlIndex's SQL; the journal file (ApiIndex) reads the sweep by design."""
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import enqueue, report

    reads = {}
    for n in (100, 600):
        q = open_study(pg.create_database("flat_" + uuid.uuid4().hex[:8]))
        enqueue(q, model_rows[:n])
        counter, stop = _rows_read(q.storage.engine)
        try:
            claim, model = q.take("w")
            report(q, claim, ok_row(model, 12.0))
            reads[n] = dict(counter)
            counter["rows"] = counter["statements"] = 0
            q.study.tell(q.study.ask(), 1.0)  # Optuna's own claim, for contrast
            reads[f"ask{n}"] = dict(counter)
        finally:
            stop()
    assert reads[100] == reads[600], reads
    assert reads["ask600"]["rows"] > reads["ask100"]["rows"] + 400, reads


def test_collect_is_incremental(sweep_url, tmp_path, model_rows):
    """A second collect adds only what is new. On PostgreSQL it also reads only what is new (plus a fixed
    overlap of a few row ids), not the sweep; the journal file (ApiIndex) reads the sweep by design."""
    from regspace.store import Store
    from regspace.sweep.adapter import open_study
    from regspace.sweep.index import SqlIndex
    from regspace.sweep.transfer import collect, enqueue, report

    q = open_study(sweep_url)
    enqueue(q, model_rows[:500])
    for i in range(80):
        claim, model = q.take("w")
        report(q, claim, ok_row(model, 11.0 + i / 100))
    store = Store.create(tmp_path / "s")
    assert collect(q, store) == (500, 80)
    if isinstance(q.index, SqlIndex):
        models, results, _ = q.index.finished_rows(store.collect_mark(f"{q.url}|{q.study.study_name}"))
        assert len(models) <= SqlIndex.OVERLAP and len(results) <= SqlIndex.OVERLAP // 2  # not 500 and 80
    enqueue(q, model_rows[500:510])
    claim, model = q.take("w")
    report(q, claim, ok_row(model, 9.0))
    assert collect(q, store) == (10, 1)
    assert collect(q, store) == (0, 0)
    assert len(store.read("results")) == 81 and len(store.read("models")) == 510


def test_ctrl_c_during_a_claim_gives_the_model_back(sweep_url, model_rows, monkeypatch):
    """A signal that lands while a model is being claimed takes effect once the claim is recorded, so
    the model is given back (not left running until its heartbeat goes stale)."""
    import optuna

    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import enqueue
    from regspace.train.work import SweepWork

    url = sweep_url
    q = open_study(url)
    enqueue(q, model_rows[:20])
    real = q.storage.set_trial_state_values

    def interrupted_mid_claim(trial_id, state, values=None):
        ok = real(trial_id, state, values)
        if state == optuna.trial.TrialState.RUNNING:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives right after the database said "yours"
        return ok

    monkeypatch.setattr(q.storage, "set_trial_state_values", interrupted_mid_claim)
    work = SweepWork(q)
    with pytest.raises(KeyboardInterrupt):
        work.next()
    assert len(work.inflight) == 1  # the claim was recorded before the interrupt took effect
    monkeypatch.setattr(q.storage, "set_trial_state_values", real)
    work.close(interrupted=True)
    S = optuna.trial.TrialState
    trials = optuna_study(url).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == S.RUNNING]
    assert len([t for t in trials if t.state == S.WAITING]) == 20  # 19 untouched + the retry of the one taken


def _worker(url, tmp_path):
    return subprocess.Popen(
        [sys.executable, "-m", "regspace", "train", "--queue", url, "--workers", "1", "--threads", "1"]
        + ["--train-size", "1024", "--val-size", "512", "--test-size", "0", "--epochs", "1", "--batch-size", "64"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "REGSPACE_CACHE": os.environ.get("REGSPACE_CACHE", str(tmp_path / "cache"))},
        preexec_fn=default_sigint,
    )


def _sample_to(url, tmp_path, n):
    p = cli(
        "sample", "--store", tmp_path / "local", "--space", "RegNetX", "-n", n, "--preset", "mnist", "--flops", "2M:4M",
        "--queue", url,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


def _states(url):
    import collections

    trials = optuna_study(url).get_trials(deepcopy=False)
    return collections.Counter(t.state.name for t in trials)


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="open defect (2026-12-01): in 2 of 4 full-suite runs on postgres a SIGINT "
                   "sent just after the 'model(s) waiting' line was lost and the worker trained on; not yet found")
def test_signals_stop_a_queue_worker_at_start_up_and_while_training(sweep_url, tmp_path):
    url = sweep_url
    _sample_to(url, tmp_path, 300)
    n = _states(url)["WAITING"]  # distinct networks among the 300 draws
    # 1. while it opens the sweep (before any model is taken): one line, exit 130, nothing taken
    w = _worker(url, tmp_path)
    line = w.stderr.readline()
    assert f"sweep 'default' at {url}: {n} model(s) waiting, 0 running" in line, line
    w.send_signal(signal.SIGINT)
    out, err = w.communicate(timeout=120)
    assert w.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("regspace: error: interrupted before training began")
    assert _states(url) == {"WAITING": n}
    # 2. SIGTERM while a model trains: it is given back at once, exit 130
    w = _worker(url, tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and _states(url).get("RUNNING", 0) == 0:
        time.sleep(0.2)
    w.send_signal(signal.SIGTERM)
    out, err = w.communicate(timeout=120)
    assert w.returncode == 130, err
    states = _states(url)
    assert states.get("RUNNING", 0) == 0 and states["WAITING"] + states.get("COMPLETE", 0) == n, states
    assert states["FAIL"] >= 1  # the model in flight: failed and re-queued as a retry


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_requeued_a_day_later(pg, model_rows):
    """Optuna's stale check skips RUNNING trials with no heartbeat; regspace re-queues them once they are
    older than the grace plus 26 hours (datetime_start is the worker's local time, in any time zone).
    PostgreSQL only: the rule is SqlIndex's, over Optuna's heartbeat table and the database's clock (the
    journal file has neither: its heartbeat is a trial attribute, and a trial without one is stale a grace
    period after its start, by the worker's own clock)."""
    import sqlalchemy as sa

    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import enqueue

    q = open_study(pg.create_database("unstarted_" + uuid.uuid4().hex[:8]), grace=5)
    enqueue(q, model_rows[:3])
    S = __import__("optuna").trial.TrialState
    ids = q.index.waiting(3)
    for tid, hours in zip(ids[:2], (30, 2)):  # claimed, no heartbeat ever sent
        assert q.storage.set_trial_state_values(tid, S.RUNNING)
        with q.storage.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE trials SET datetime_start = LOCALTIMESTAMP - make_interval(hours => :h) WHERE trial_id = :t"
                ),
                {"h": hours, "t": tid},
            )
    q.fail_stale()
    states = {t.number: t.state for t in q.trials()}
    assert states[0] == S.FAIL and states[1] == S.RUNNING  # 30 h old: re-queued; 2 h old: maybe another TZ
    assert sum(s == S.WAITING for s in states.values()) == 2  # the untouched one and the retry of trial 0


@pytest.mark.slow
def test_a_worker_that_died_between_storing_its_result_and_finishing_is_not_retried(
    sweep_url, tmp_path, model_rows, monkeypatch
):
    """report() is two writes (the result, then COMPLETE). A worker killed between them leaves a RUNNING
    trial that holds its result: the stale check fails it without a retry, and collect keeps the result."""
    import optuna

    from regspace.store import Store
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import collect, enqueue, report

    S = optuna.trial.TrialState
    url = sweep_url
    q = open_study(url, heartbeat=1, grace=1)
    enqueue(q, model_rows[:2])
    real = q.storage.set_trial_state_values
    dies_before_finishing = lambda tid, state, values=None: True if state == S.COMPLETE else real(tid, state, values)  # noqa: E731
    monkeypatch.setattr(q.storage, "set_trial_state_values", dies_before_finishing)
    claim, model = q.take("w")
    assert report(q, claim, ok_row(model, 12.5))
    monkeypatch.setattr(q.storage, "set_trial_state_values", real)
    time.sleep(2.5)  # its heartbeat goes stale
    q.fail_stale()
    trials = optuna_study(url).get_trials(deepcopy=False)
    assert sorted(t.state.name for t in trials) == ["FAIL", "WAITING"]  # no retry: only the untouched model waits
    store = Store.create(tmp_path / "s")
    assert collect(q, store) == (2, 1)
    r = store.read("results")
    assert list(r.model_id) == [model["model_id"]] and list(r.error) == [12.5]


def test_collect_skips_trial_results_that_are_not_regspace_results(sweep_url, tmp_path, model_rows, capsys):
    """A trial finished by hand through Optuna (a result attribute regspace did not write) is named in a
    warning and left out; status and the analyses then work on the rest."""
    from regspace.status import store_status
    from regspace.store import Store
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import collect, enqueue, report

    q = open_study(sweep_url)
    enqueue(q, model_rows[:4])
    claim, model = q.take("w")
    report(q, claim, ok_row(model, 12.0))
    trial = q.study.ask()
    trial.set_user_attr("result", "{}")
    q.study.tell(trial, 1.0)
    store = Store.create(tmp_path / "s")
    assert collect(q, store) == (4, 1)
    assert "1 trial result(s) in the sweep are not regspace results" in capsys.readouterr().err
    assert sum(r["ok"] for r in store_status(store)) == 1
