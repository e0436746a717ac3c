"""The queue at scale, through a real PostgreSQL server (started privately on loopback, as in the tests),
or a journal file (--backend journal).

For 200, 2,000, 20,000 and 100,000 models waiting, each in a fresh database (or journal file):

- enqueue: models/s of one bulk `enqueue` (what `regspace sample --queue` does);
- 1 worker: claim + report times of a worker that claims back to back (no training);
- 32 workers: 32 processes that each claim, report, then sleep 20 s (a simulated model), so that the
  database, not 2 cores shared by 32 busy loops, is what is measured;
- baseline: Optuna's own claim (`study.ask()` + `study.tell()`, what regspace used before), same
  database and queue, a few claims, in a child process given --baseline-limit seconds (60): from the
  first size where it does not finish in time, it is reported as such and not run at larger sizes;
- at the largest size, `status --queue`'s query (`Sweep.summary`) and `collect` into a new store,
  twice (the second is incremental), then the whole commands.

Goals (issue 25 §2), printed beside each number: enqueue >= 1,500 models/s; claim+report median
<= 50 ms with 1 and with 32 workers; `status --queue` <= 5 s; the second collect adds nothing and
costs less than the first.

    python benchmarks/bench_queue.py [--sizes 200,2000,20000,100000] [--workers 32] [--seconds 70]
                                     [--backend postgres|journal]
"""

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

FAKE = {
    "recipe_hash": "bench0000000",
    "error": 12.5,
    "min_error": 12.4,
    "test_error": 12.9,
    "epochs": 3,
    "train_seconds": 30.0,
}


def rows(n):
    """n distinct sampled models (store rows), as `sample` would enqueue them."""
    from regspace.populate import sample_to_store
    from regspace.presets import PRESETS, Budget
    from regspace.spaces import get_space
    from regspace.store import Store

    with tempfile.TemporaryDirectory() as d:
        p = PRESETS["mnist"]
        store = Store.create(f"{d}/s")
        out = {}
        total = 0
        while len(out) < n:  # i.i.d. draws repeat networks: draw until n distinct
            total += n - len(out)
            budget = Budget.parse(flops="1M:100M")  # wide: these models are never trained
            sample_to_store(store, get_space("X_c"), n - len(out), preset=p, budget=budget, max_candidates=10**8)
            out = {r["model_id"]: r for r in store.read_arrow("models").to_pylist()}
        return list(out.values())[:n]


def claim_report(work):
    from regspace.train.records import Result
    from regspace.train.work import WAIT

    t = time.perf_counter()
    m = work.next()
    if m is None or m is WAIT:
        return None
    work.done(m, Result.ok(m["model_id"], **FAKE))
    return time.perf_counter() - t


def one_worker(url, n):
    from regspace.sweep.adapter import open_study
    from regspace.train.work import SweepWork

    work = SweepWork(open_study(url, create=False, heartbeat=30, grace=120))
    return [t for t in (claim_report(work) for _ in range(n)) if t is not None]


def slow_worker(url, seconds, sleep, seed, out):
    from regspace.sweep.adapter import open_study
    from regspace.train.work import SweepWork

    rng = random.Random(seed)
    work = SweepWork(open_study(url, create=False, heartbeat=30, grace=120))
    end = time.monotonic() + seconds
    times = []
    time.sleep(rng.uniform(0, sleep))  # workers start at spread moments, as a real pool's do
    while time.monotonic() < end:
        t = claim_report(work)
        if t is None:
            break
        times.append(t)
        time.sleep(sleep)
    out.put(times)


def many_workers(url, n_workers, seconds, sleep):
    ctx = mp.get_context("fork")  # forked after the imports: 32 workers start in a second, not a minute
    out = ctx.Queue()
    procs = [ctx.Process(target=slow_worker, args=(url, seconds, sleep, i, out)) for i in range(n_workers)]
    for p in procs:
        p.start()
    times = [x for _ in procs for x in out.get()]
    for p in procs:
        p.join()
    return times


def optuna_claims(url, n):
    import optuna

    from regspace.sweep.adapter import open_study

    study = optuna.load_study(study_name="regspace:default", storage=open_study(url, create=False).storage)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        trial = study.ask()
        row = {"model_id": trial.user_attrs.get("model_id"), "status": "ok", **FAKE}
        trial.set_user_attr("result", json.dumps(row))  # what regspace's old claim stored
        study.tell(trial, 12.5)
        times.append(time.perf_counter() - t)
    return times


def _baseline_child(url, n, out):
    out.put(optuna_claims(url, n))


def optuna_claims_within(url, n, limit):
    """Optuna's claims in a forked child given ``limit`` seconds; None when it did not finish in time."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_baseline_child, args=(url, n, out))
    p.start()
    try:
        return out.get(timeout=limit)
    except queue.Empty:
        return None
    finally:
        if p.is_alive():
            p.kill()
        p.join()


def goal(ok: bool | None, text: str) -> str:
    return f"[goal {text}: {'n/a' if ok is None else 'met' if ok else 'MISSED'}]"


def median_within(times, seconds: float) -> bool | None:
    return statistics.median(times) <= seconds if times else None  # None: no claim (the queue was empty)


def fmt(times):
    if not times:
        return "no samples"
    s = sorted(times)
    p95 = s[min(len(s) - 1, int(round(0.95 * len(s))) - 1)]
    return f"median {1000 * statistics.median(s):.0f} ms, p95 {1000 * p95:.0f} ms (n={len(s)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,2000,20000,100000")
    ap.add_argument("--workers", type=int, default=32, help="0: skip the many-worker phase and the baseline")
    ap.add_argument("--seconds", type=float, default=70.0, help="how long the many-worker phase runs")
    ap.add_argument("--sleep", type=float, default=20.0, help="simulated training time per model, seconds")
    ap.add_argument("--backend", choices=("postgres", "journal"), default="postgres")
    ap.add_argument("--baseline-limit", type=float, default=60.0, help="seconds Optuna's claims may take per size")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    import optuna  # noqa: F401 - imported before forking the workers

    from regspace.store import Store
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import collect, enqueue

    from pg import PostgresServer

    t = time.perf_counter()
    data = rows(max(sizes))
    where = "private PostgreSQL on loopback" if args.backend == "postgres" else "journal file"
    print(f"# bench_queue {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {where}")
    print(f"# {len(data)} sampled X_c models generated in {time.perf_counter() - t:.0f} s")
    print(f"# baseline: Optuna's own claim (study.ask + study.tell), same queue, {args.baseline_limit:.0f} s per size")
    server = PostgresServer().start() if args.backend == "postgres" else None
    scratch = tempfile.mkdtemp(prefix="bench-queue-")
    baseline_done = True
    try:
        for n in sizes:
            url = server.create_database(f"bench_{n}") if server else f"journal://{scratch}/bench_{n}.log"
            q = open_study(url)
            t = time.perf_counter()
            enqueue(q, data[:n])
            dt = time.perf_counter() - t
            print(f"{n:>6} waiting\tenqueue {n / dt:,.0f} models/s ({dt:.1f} s) {goal(n / dt >= 1500, '>= 1,500/s')}")
            times = one_worker(url, 100)
            ok = median_within(times, 0.05)
            print(f"{n:>6} waiting\t1 worker\tclaim+report {fmt(times)} {goal(ok, 'median <= 50 ms')}")
            if args.workers:
                times = many_workers(url, args.workers, args.seconds, args.sleep)
                label = f"{args.workers} workers, {args.sleep:.0f} s per model"
                ok = median_within(times, 0.05)
                print(f"{n:>6} waiting\t{label}\tclaim+report {fmt(times)} {goal(ok, 'median <= 50 ms')}")
                k = 20 if n <= 2000 else 3
                base = optuna_claims_within(url, k, args.baseline_limit) if baseline_done else None
                if base is None and baseline_done:
                    baseline_done = False
                    print(f"{n:>6} waiting\tbaseline: Optuna ask+tell: {k} claims did not finish in "
                          f"{args.baseline_limit:.0f} s (not run at larger sizes)")  # fmt: skip
                elif base is not None:
                    print(f"{n:>6} waiting\tbaseline: Optuna ask+tell, 1 worker\t{fmt(base)}")
            if n == max(sizes):
                t = time.perf_counter()
                q.summary()
                print(f"{n:>6} models\tstatus --queue (Sweep.summary) {time.perf_counter() - t:.2f} s")
                with tempfile.TemporaryDirectory() as d:
                    store = Store.create(f"{d}/s")
                    spent = {}
                    for which in ("first", "second"):
                        t = time.perf_counter()
                        got = collect(q, store)
                        spent[which] = time.perf_counter() - t
                        print(f"{n:>6} models\tcollect ({which}) {spent[which]:.2f} s, added {got}")
                    ok = spent["second"] < spent["first"]
                    print(f"{n:>6} models\tcollect is incremental {goal(ok, 'second collect cheaper than the first')}")
                    for cmd in (["collect"], ["status"], ["collect"]):  # whole commands, as a user runs them
                        t = time.perf_counter()
                        p = subprocess.run(
                            [sys.executable, "-m", "regspace", *cmd, "--queue", url, "--store", f"{d}/cli"],
                            capture_output=True,
                            text=True,
                        )
                        assert p.returncode == 0, p.stderr
                        dt = time.perf_counter() - t
                        extra = f" {goal(dt <= 5, '<= 5 s')}" if cmd[0] == "status" else ""
                        print(f"{n:>6} models\tregspace {cmd[0]} --queue (whole command) {dt:.2f} s{extra}")
    finally:
        if server:
            server.close()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
