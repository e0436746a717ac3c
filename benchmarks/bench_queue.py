"""The queue at scale, through a real PostgreSQL server (started privately on loopback, as in the tests).

For 200, 2,000 and 20,000 models waiting, each in a fresh database:

- enqueue: models/s of one bulk `enqueue` (what `regspace sample --queue` does);
- 1 worker: claim + report times of a worker that claims back to back (no training);
- 32 workers: 32 processes that each claim, report, then sleep 20 s (a simulated model), so that the
  database, not 2 cores shared by 32 busy loops, is what is measured;
- baseline: Optuna's own claim (`study.ask()` + `study.tell()`, what regspace used before), same
  database and queue, a few claims;
- at the largest size, `status --queue`'s query (`Sweep.summary`) and `collect` into a new store,
  twice (the second is incremental).

    python benchmarks/bench_queue.py [--sizes 200,2000,20000] [--workers 32] [--seconds 70]
"""

import argparse
import json
import multiprocessing as mp
import os
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

    study = optuna.load_study(study_name="regspace:default", storage=url)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        trial = study.ask()
        row = {"model_id": trial.user_attrs.get("model_id"), "status": "ok", **FAKE}
        trial.set_user_attr("result", json.dumps(row))  # what regspace's old claim stored
        study.tell(trial, 12.5)
        times.append(time.perf_counter() - t)
    return times


def fmt(times):
    if not times:
        return "no samples"
    s = sorted(times)
    p95 = s[min(len(s) - 1, int(round(0.95 * len(s))) - 1)]
    return f"median {1000 * statistics.median(s):.0f} ms, p95 {1000 * p95:.0f} ms (n={len(s)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,2000,20000")
    ap.add_argument("--workers", type=int, default=32, help="0: skip the many-worker phase and the baseline")
    ap.add_argument("--seconds", type=float, default=70.0, help="how long the many-worker phase runs")
    ap.add_argument("--sleep", type=float, default=20.0, help="simulated training time per model, seconds")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    import optuna  # noqa: F401 - imported before forking the workers

    from regspace.store import Store
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import collect, enqueue

    from pg import PostgresServer

    t = time.perf_counter()
    data = rows(max(sizes))
    print(f"# bench_queue {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, private PostgreSQL on loopback")
    print(f"# {len(data)} sampled X_c models generated in {time.perf_counter() - t:.0f} s")
    print("# baseline: Optuna's own claim (study.ask + study.tell), same database and queue")
    server = PostgresServer().start()
    try:
        for n in sizes:
            url = server.create_database(f"bench_{n}")
            q = open_study(url)
            t = time.perf_counter()
            enqueue(q, data[:n])
            dt = time.perf_counter() - t
            print(f"{n:>6} waiting\tenqueue {n / dt:,.0f} models/s ({dt:.1f} s)")
            print(f"{n:>6} waiting\t1 worker\tclaim+report {fmt(one_worker(url, 100))}")
            if args.workers:
                times = many_workers(url, args.workers, args.seconds, args.sleep)
                label = f"{args.workers} workers, {args.sleep:.0f} s per model"
                print(f"{n:>6} waiting\t{label}\tclaim+report {fmt(times)}")
                k = 20 if n <= 2000 else 3
                print(f"{n:>6} waiting\tbaseline: Optuna ask+tell, 1 worker\t{fmt(optuna_claims(url, k))}")
            if n == max(sizes):
                t = time.perf_counter()
                q.summary()
                print(f"{n:>6} models\tstatus --queue (Sweep.summary) {time.perf_counter() - t:.2f} s")
                with tempfile.TemporaryDirectory() as d:
                    store = Store.create(f"{d}/s")
                    for which in ("first", "second"):
                        t = time.perf_counter()
                        got = collect(q, store)
                        print(f"{n:>6} models\tcollect ({which}) {time.perf_counter() - t:.2f} s, added {got}")
                    for cmd in (["collect"], ["status"], ["collect"]):  # whole commands, as a user runs them
                        t = time.perf_counter()
                        p = subprocess.run(
                            [sys.executable, "-m", "regspace", *cmd, "--queue", url, "--store", f"{d}/cli"],
                            capture_output=True,
                            text=True,
                        )
                        assert p.returncode == 0, p.stderr
                        dt = time.perf_counter() - t
                        print(f"{n:>6} models\tregspace {cmd[0]} --queue (whole command) {dt:.2f} s")
    finally:
        server.close()


if __name__ == "__main__":
    main()
