"""Queue overhead through a real PostgreSQL server (started privately on loopback, as in the tests).

Prints the time one worker needs to claim a model and report its result (no training), and the
claims per second of 8 concurrent worker processes; then that overhead as a share of a quick-recipe
model's training time (measured in benchmarks/bench_train.py and the short sweep: ~20–80 s each).

    python benchmarks/bench_queue.py [--models 200] [--workers 8] [--journal]
"""

import argparse
import multiprocessing as mp
import os
import statistics
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
    from regspace.presets import PRESETS, Budget
    from regspace.sampler import sample_to_store
    from regspace.spaces import get_space
    from regspace.store import Store

    with tempfile.TemporaryDirectory() as d:
        p = PRESETS["mnist"]
        r = sample_to_store(Store.create(f"{d}/s"), get_space("X_c"), n, preset=p, budget=Budget.parse(flops="1M:8M"))
        return r.table.to_pylist()


def worker(url, out, n_max=None):
    from regspace.queue import open_study
    from regspace.train.records import Result
    from regspace.train.work import WAIT, QueueWork

    work = QueueWork(open_study(url, create=False, heartbeat=30, grace=120))
    times = []
    while n_max is None or len(times) < n_max:
        t = time.perf_counter()
        m = work.next()
        if m is None:
            break
        if m is WAIT:
            time.sleep(0.2)
            continue
        work.done(m, Result.ok(m["model_id"], **FAKE))
        times.append(time.perf_counter() - t)
    out.put(times)


def run(url, n_workers):
    out = mp.Queue()
    procs = [mp.Process(target=worker, args=(url, out)) for _ in range(n_workers)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    times = [x for _ in procs for x in out.get()]
    for p in procs:
        p.join()
    return times, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--journal", action="store_true", help="also measure Optuna's journal file storage")
    args = ap.parse_args()
    from regspace.queue import open_study

    from pg import PostgresServer

    data = rows(args.models)
    server = PostgresServer().start()
    try:
        targets = [("postgresql", lambda name: server.create_database(name))]
        if args.journal:
            tmp = tempfile.mkdtemp()
            targets.append(("journal file", lambda name: f"journal://{tmp}/{name}.log"))
        for label, make in targets:
            for n_workers, name in ((1, "one"), (args.workers, "many")):
                url = make(f"bench_{name}")
                open_study(url).enqueue(data)
                times, wall = run(url, n_workers)
                print(
                    f"{label:12} {n_workers} worker(s): {len(times)} claim+report in {wall:.1f} s = "
                    f"{len(times) / wall:.1f}/s; per model: median {1000 * statistics.median(times):.0f} ms, "
                    f"p95 {1000 * sorted(times)[int(0.95 * len(times)) - 1]:.0f} ms"
                )
                if n_workers == 1:
                    per = statistics.median(times)
                    print(
                        f"{'':12} overhead vs a 20 s quick-recipe model: {100 * per / 20:.2f}% "
                        f"(vs 60 s: {100 * per / 60:.2f}%)"
                    )
    finally:
        server.close()


if __name__ == "__main__":
    main()
