"""The worker pool on its own: an in-memory work source and fake workers (no torch, no data), so each
rule of the pool — every model once, recycling, retry once then failed, waiting, early deaths, fatal
set-up errors, SIGTERM, heartbeats — is checked in a second or two."""

import os
import signal
import threading
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import pytest

from regspace.errors import RegspaceError
from regspace.train.pool import WorkerPool
from regspace.train.recipe import Recipe
from regspace.train.records import Result, Task
from regspace.train.work import WAIT, WorkSource

RECIPE = Recipe()


def row(i: int) -> dict:
    """A stored model row (what work sources hand out)."""
    return {
        "model_id": f"m{i:02d}",
        "space": "X_c",
        "stage_widths": [8, 16],
        "stage_depths": [1, 2],
        "stage_bottleneck_ratios": [1.0, 1.0],
        "stage_group_widths": [8, 8],
        "se_ratio": 0.0,
        "stem": "cifar",
        "resolution": 28,
        "in_channels": 1,
        "num_classes": 10,
        "flops": 1,
        "params": 1,
        "acts": 1,
    }


class InMemoryWork(WorkSource):
    def __init__(self, n: int, waits: int = 0, heartbeat_seconds: float = 30.0):
        self.queue = deque(row(i) for i in range(n))
        self.total = n
        self.waits = waits
        self.heartbeat_seconds = heartbeat_seconds
        self.results: list[Result] = []
        self.retried: list[str] = []
        self.beats = 0
        self.closed = None

    def next(self):
        if self.waits:
            self.waits -= 1
            return WAIT
        return self.queue.popleft() if self.queue else None

    def retry(self, model):
        self.retried.append(model["model_id"])
        self.queue.appendleft(model)

    def done(self, model, result):
        assert result.model_id == model["model_id"]
        self.results.append(result)

    def heartbeat(self):
        self.beats += 1

    def close(self, interrupted):
        self.closed = interrupted


# -- fake workers: module-level, so the forkserver can import them -----------------------------------
def _log(config, what: str) -> None:
    with open(Path(config["data_path"]) / "log", "a") as f:
        f.write(f"{os.getpid()} {what}\n")


def ok_worker(conn, config):
    conn.send(("ready", {"pid": os.getpid()}))
    done = 0
    while (task := conn.recv()) is not None:
        assert isinstance(task, Task) and task.design.widths == (8, 16) and task.context.resolution == 28
        _log(config, task.model_id)
        time.sleep(config.get("sleep", 0.0))
        conn.send(("progress", task.model_id, {"epoch": 1}))
        done += 1
        last = done >= config["recycle"]
        result = Result.ok(task.model_id, error=10.0, min_error=9.0, epochs=1, recipe_hash="r", device=config["device"])
        conn.send(("result", task.model_id, result, last))
        if last:
            return


def dying_worker(conn, config):
    conn.send(("ready", {"pid": os.getpid()}))
    task = conn.recv()
    _log(config, task.model_id)
    time.sleep(config.get("sleep", 0.0))
    os._exit(9)


def flaky_worker(conn, config):
    """Dies the first time it is given a model, trains it the second time."""
    log = Path(config["data_path"]) / "log"
    conn.send(("ready", {"pid": os.getpid()}))
    while (task := conn.recv()) is not None:
        seen = log.exists() and task.model_id in log.read_text()
        _log(config, task.model_id)
        if not seen:
            os._exit(9)
        conn.send(
            (
                "result",
                task.model_id,
                Result.ok(task.model_id, error=1.0, min_error=1.0, epochs=1, recipe_hash="r"),
                False,
            )
        )


def slow_exit_worker(conn, config):
    """Trains like ok_worker, then takes ``exit_seconds`` to end after its last model (a CUDA context
    tearing down), logging when the ending begins and when it is over."""
    ok_worker(conn, config)
    _log(config, "ending")
    time.sleep(config["exit_seconds"])
    _log(config, "ended")


def never_ready_worker(conn, config):
    os._exit(3)


def fatal_worker(conn, config):
    conn.send(("fatal", "FileNotFoundError: no such dataset file"))
    os._exit(1)


def pool(work, tmp_path, target, workers=2, recycle=16, **config):
    return WorkerPool(
        work,
        devices=["cpu"] * workers,
        config={"threads": 1, "data_path": str(tmp_path), **config},
        recipe=RECIPE,
        recycle=recycle,
        target=target,
        preload=(),
    )


def logged(tmp_path) -> list[tuple[str, str]]:
    log = tmp_path / "log"
    return [tuple(line.split()) for line in log.read_text().splitlines()] if log.exists() else []


def test_every_model_trains_once(tmp_path):
    work = InMemoryWork(10)
    summary = pool(work, tmp_path, ok_worker, workers=3).run()
    assert sorted(r.model_id for r in work.results) == [f"m{i:02d}" for i in range(10)]
    assert summary.ok == 10 and summary.done == 10 and not summary.interrupted and work.closed is False
    assert {r.device for r in work.results} == {"cpu"}
    assert len({pid for pid, _ in logged(tmp_path)}) <= 3


def test_recycled_workers_lose_no_model(tmp_path):
    work = InMemoryWork(7)
    summary = pool(work, tmp_path, ok_worker, workers=2, recycle=2).run()
    assert summary.ok == 7 and len({r.model_id for r in work.results}) == 7
    pids = [pid for pid, _ in logged(tmp_path)]
    assert len(set(pids)) >= 4  # a fresh process after every 2 models
    assert max(pids.count(p) for p in set(pids)) <= 2


def test_a_retiring_worker_does_not_stall_the_next_model(tmp_path):
    """Issue 23 fault 7: the pool joined a recycled worker before going on, so while its CUDA context tore
    down (seconds) no model was handed out. With one worker recycled after each model, the next model now
    starts while the retired process is still ending; every process is waited for by the end."""
    work = InMemoryWork(3)
    p = pool(work, tmp_path, slow_exit_worker, workers=1, recycle=1, exit_seconds=1.5)
    summary = p.run()
    assert summary.ok == 3 and all(q.exitcode is not None for q in p.retiring)
    log = logged(tmp_path)
    ended = log.index((log[0][0], "ended"))
    assert "m01" in [m for _, m in log[:ended]], log  # model 2 began before worker 1 had ended
    assert sum(m == "ending" for _, m in log) == sum(m == "ended" for _, m in log) >= 3  # all waited for


def test_each_result_records_how_many_workers_shared_its_device(tmp_path):
    """Issue 23 fault 8: images_per_second depends on the neighbours on the device: `device_workers`."""
    work = InMemoryWork(9)
    # 0.4 s a model: one worker alone would take 3.6 s, so every worker gets models even on a loaded machine
    WorkerPool(work, devices=["cuda:0", "cuda:1", "cuda:0"],
               config={"threads": 1, "data_path": str(tmp_path), "sleep": 0.4},
               recipe=RECIPE, target=ok_worker, preload=()).run()  # fmt: skip
    assert len(work.results) == 9
    assert {(r.device, r.device_workers) for r in work.results} <= {("cuda:0", 2), ("cuda:1", 1)}
    assert {r.device_workers for r in work.results if r.device == "cuda:0"} == {2}


def test_a_dead_workers_model_is_retried_once_then_failed(tmp_path):
    work = InMemoryWork(3)
    summary = pool(work, tmp_path, dying_worker, workers=2).run()
    assert sorted(work.retried) == ["m00", "m01", "m02"]
    assert summary.failed == 3 and summary.ok == 0
    assert all(r.status == "failed" and "died (exit code 9) 2 times" in r.reason for r in work.results)
    assert all(r.recipe_hash == RECIPE.hash for r in work.results)
    assert sorted(m for _, m in logged(tmp_path)) == sorted(["m00", "m01", "m02"] * 2)


def test_a_retry_after_the_source_ran_dry_is_not_lost(tmp_path):
    """The other worker already heard "no more work" when this one died: the retry must still happen."""
    work = InMemoryWork(1)
    summary = pool(work, tmp_path, dying_worker, workers=2, sleep=1.0).run()
    assert work.retried == ["m00"] and summary.failed == 1 and [r.model_id for r in work.results] == ["m00"]


def test_a_retry_that_succeeds_is_ok(tmp_path):
    work = InMemoryWork(3)
    summary = pool(work, tmp_path, flaky_worker, workers=1).run()
    assert summary.ok == 3 and summary.failed == 0 and sorted(work.retried) == ["m00", "m01", "m02"]


def test_workers_wait_while_the_source_says_wait(tmp_path):
    work = InMemoryWork(4, waits=5)
    summary = pool(work, tmp_path, ok_worker, workers=2).run()
    assert summary.ok == 4 and work.waits == 0


def test_workers_that_never_start_stop_the_pool_with_one_line(tmp_path):
    work = InMemoryWork(2)
    with pytest.raises(RegspaceError, match="keep dying before they start \\(exit code 3\\)"):
        pool(work, tmp_path, never_ready_worker, workers=1).run()
    assert work.closed is False and not work.results


def test_a_worker_that_cannot_set_up_stops_the_pool(tmp_path):
    with pytest.raises(RegspaceError, match="training worker failed: FileNotFoundError: no such dataset file"):
        pool(InMemoryWork(2), tmp_path, fatal_worker, workers=1).run()


def test_sigterm_stops_the_pool_and_loses_only_models_in_flight(tmp_path):
    work = InMemoryWork(40)
    p = pool(work, tmp_path, ok_worker, workers=2, sleep=0.2)

    def stop_after_two():
        while len(work.results) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Thread(target=stop_after_two, daemon=True)
    timer.start()
    t = time.monotonic()
    summary = p.run()
    timer.join()
    assert summary.interrupted and work.closed is True and time.monotonic() - t < 30
    assert 0 < summary.ok < 40 and len(work.results) == summary.ok
    assert all(s.process is None for s in p.slots)
    for pid in {int(pid) for pid, _ in logged(tmp_path)}:  # every worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_heartbeats_while_models_are_in_flight(tmp_path):
    work = InMemoryWork(4, heartbeat_seconds=0.2)
    pool(work, tmp_path, ok_worker, workers=1, sleep=0.5).run()
    assert work.beats >= 3


def test_off_a_terminal_progress_is_a_plain_line_at_most_every_30_s(capsys):
    """A batch job's log (issue 25 §4): a line when a model finishes, at most every 30 s, plus the first
    and the last; each says done / total, the outcomes, the rate and the time left."""
    from regspace.train.pool import _ProgressLines

    times = iter([0.0, 1.0, 10.0, 40.0, 45.0, 50.0])
    lines = _ProgressLines(5, clock=lambda: next(times))
    lines.start()
    for status in ("ok", "ok", "failed", "ok", "diverged"):
        lines.finished(SimpleNamespace(status=status))
    out = capsys.readouterr().err.splitlines()
    assert out == [
        "training: 1/5 models done (ok 1, diverged 0, failed 0) in 0m01s, 3600 models/hour, ETA 0m04s",
        "training: 3/5 models done (ok 2, diverged 0, failed 1) in 0m40s, 270 models/hour, ETA 0m27s",
        "training: 5/5 models done (ok 3, diverged 1, failed 1) in 0m50s, 360 models/hour",
    ]


def test_a_pool_off_a_terminal_logs_progress_lines(tmp_path, capfd):
    work = InMemoryWork(4)
    pool(work, tmp_path, ok_worker, workers=2).run()
    err = capfd.readouterr().err
    assert "training: 1/4 models done" in err and "training: 4/4 models done (ok 4" in err
