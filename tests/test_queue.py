"""Sweeps across machines through Optuna's storage: a real PostgreSQL server, and the journal file.

Three `train --queue` workers share one sweep; one is SIGKILLed (its whole process group) while it
trains a model. After its heartbeat goes stale, another worker re-queues and trains that model;
the collected store then holds exactly one result per model.

Tests that take the ``sweep_url`` fixture (tests/conftest.py) run over every backend. Three do not,
because what they check exists on one backend only: a database server restarting (PostgreSQL; the
journal file has no server), SQLite's refusal of several workers, and URLs that name no backend.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pandas as pd
import pytest

from conftest import cli

TINY = ["--train-size", "512", "--val-size", "256", "--test-size", "0", "--epochs", "1", "--batch-size", "64"]
FAST_BEAT = ["--heartbeat", "1", "--grace", "6"]


def regspace(*args, env=None, cwd=None):
    """A command that sets up or reads a sweep, in this process (the workers below are processes: they are killed)."""
    return cli(*args, env=env, cwd=cwd)


def study_trials(url):
    from regspace.sweep.adapter import open_study

    return open_study(url, create=False).trials()


def start_worker(url, *extra):
    # three workers share two cores here: one thread each, or OpenMP spin-waiting slows everything tenfold
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regspace",
            "train",
            "--queue",
            url,
            "--workers",
            "1",
            "--threads",
            "1",
            *TINY,
            *FAST_BEAT,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(predicate, timeout=300.0):
    t = time.time()
    while time.time() - t < timeout:
        if predicate():
            return True
        time.sleep(0.3)
    return False


@pytest.mark.slow
def test_three_workers_one_killed(sweep_url, tmp_path):
    url = sweep_url
    p = regspace(
        "sample",
        "--store",
        tmp_path / "local",
        "--space",
        "X_c",
        "-n",
        9,
        "--preset",
        "mnist",
        "--flops",
        "0.5M:1.5M",
        "--queue",
        url,
    )
    assert p.returncode == 0 and "enqueued 9 model(s)" in p.stdout, p.stderr
    workers = [start_worker(url) for _ in range(3)]
    pids = {w.pid: w for w in workers}

    from regspace.sweep.adapter import open_study

    q = open_study(url, create=False)

    def running_victim():
        trials = q.trials()
        if not any(t.state.name == "COMPLETE" for t in trials):
            return None
        for t in trials:
            # mid-model: not one whose result is stored and whose COMPLETE is still being written
            if t.state.name == "RUNNING" and "worker" in t.user_attrs and "result" not in t.user_attrs:
                pid = int(t.user_attrs["worker"].rsplit(":", 1)[1])
                if pid in pids:
                    return pid
        return None

    assert wait_for(lambda: running_victim() is not None)
    victim_pid = running_victim()
    os.killpg(victim_pid, signal.SIGKILL)  # the worker and its training processes, mid-model
    pids[victim_pid].wait(timeout=30)
    # what it held when it died (it may have finished one model and taken the next in between)
    held = [
        t.number
        for t in q.trials()
        if t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(f":{victim_pid}")
    ]
    assert held, "the killed worker held no model"
    victim_trial = held[0]
    for w in workers:
        if w.pid != victim_pid:
            out, err = w.communicate(timeout=600)
            assert w.returncode == 0, err
            assert "Traceback" not in err
    store = tmp_path / "collected"
    p = regspace("collect", "--queue", url, "--store", store)
    assert p.returncode == 0, p.stderr
    results = pd.read_parquet(store / "results")  # plain pandas: no de-duplication
    models = pd.read_parquet(store / "models")
    assert len(models) == 9 and models.model_id.is_unique
    assert results.groupby(["model_id", "recipe_hash"]).size().max() == 1
    assert set(results.model_id) == set(models.model_id) and (results.status == "ok").all()
    trials = study_trials(url)
    killed = next(t for t in trials if t.number == victim_trial)
    assert killed.state.name == "FAIL"
    # another worker trained it: a retry of it (a retry may itself be retried if its worker missed
    # heartbeats on this busy machine) holds the result. Unless the kill fell between the two writes of
    # a report: then the killed trial holds the result and is not retried.
    retried = [t for t in trials if victim_trial in t.system_attrs.get("retry_history", [])]
    done = [t for t in retried + [killed] if "result" in t.user_attrs]
    assert len(done) == 1, [(t.number, t.state, t.system_attrs) for t in retried]
    assert json.loads(done[0].user_attrs["result"])["model_id"] == killed.user_attrs["model_id"]
    status = regspace("status", "--queue", url, "--store", tmp_path / "status", "--json")
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)["queue"]
    assert (row["space"], row["waiting"], row["running"], row["done"]) == ("X_c", 0, 0, 9)
    # the killed worker's trial and its retry (a worker that misses heartbeats on a busy machine adds pairs)
    lost = [t for t in trials if t.state.name == "FAIL" and "result" not in t.user_attrs and "space" in t.user_attrs]
    assert row["lost"] == len(lost)
    if "result" not in killed.user_attrs:
        assert victim_trial in [t.number for t in lost]
    assert row["retries"] == len([t for t in trials if "failed_trial" in t.system_attrs]) == len(lost)


@pytest.mark.slow
def test_database_restart_mid_sweep(pg, tmp_path):
    url = pg.create_database("restart_" + uuid.uuid4().hex[:8])
    p = regspace(
        "sample",
        "--store",
        tmp_path / "local",
        "--space",
        "X_c",
        "-n",
        6,
        "--preset",
        "mnist",
        "--flops",
        "0.5M:1.5M",
        "--queue",
        url,
    )
    assert p.returncode == 0, p.stderr
    worker = start_worker(url)
    assert wait_for(lambda: any(t.state.name == "COMPLETE" for t in study_trials(url)))
    pg.restart(down_seconds=9)
    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    assert "unreachable" in err and "answers again" in err and "Traceback" not in err
    p = regspace("collect", "--queue", url, "--store", tmp_path / "c")
    assert p.returncode == 0
    assert len(pd.read_parquet(tmp_path / "c" / "results")) == 6


def test_sqlite_refuses_several_workers(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    p = regspace(
        "sample",
        "--store",
        tmp_path / "s",
        "--space",
        "X_c",
        "-n",
        2,
        "--preset",
        "mnist",
        "--flops",
        "0.5M:1.5M",
        "--queue",
        url,
    )
    assert p.returncode == 0, p.stderr
    p = regspace("train", "--queue", url, "--workers", "2", *TINY)
    assert p.returncode == 1 and "SQLite cannot serve several workers" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--queue", "redis://localhost/0"], "cannot use queue"),
        (["train", "--queue", "journal:///nonexistent/dir/q.log"], "does not exist"),
        (["status", "--queue", "postgresql://nobody@127.0.0.1:1/none", "--store", "s"], "unreachable"),
    ],
)
def test_bad_queue_urls(tmp_path, args, needle, monkeypatch):
    p = regspace(*args, env={"REGSPACE_QUEUE_TIMEOUT": "3"}, cwd=tmp_path)
    assert p.returncode != 0 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_queue_carries_multiplicity(sweep_url, tmp_path):
    """Repeat draws go through the queue: collect rebuilds the sampler's population, draws and all."""
    url = sweep_url
    local = tmp_path / "local"
    for _ in range(2):  # repeats within a call and across calls
        p = regspace(
            "sample",
            "--store",
            local,
            "--space",
            "RegNetX",
            "-n",
            150,
            "--preset",
            "mnist",
            "--flops",
            "2M:4M",
            "--queue",
            url,
        )
        assert p.returncode == 0, p.stderr
    from regspace.store import Store

    want = Store.open(local).models().set_index("model_id").multiplicity.sort_index()
    assert want.sum() == 300 and want.max() > 1
    trials = study_trials(url)
    assert len(trials) == len(want)  # each network is enqueued (and trained) once
    for _ in range(2):  # a second collect adds nothing
        p = regspace("collect", "--queue", url, "--store", tmp_path / "collected")
        assert p.returncode == 0, p.stderr
    got = Store.open(tmp_path / "collected").models().set_index("model_id").multiplicity.sort_index()
    assert got.equals(want)
    assert "collected 0 new model(s)" in p.stdout
