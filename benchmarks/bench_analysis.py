"""Read-side speed: `compare --json` and `plot-edf` on 100,000 results, or `compare` on the committed ladder.

Default: builds a synthetic store (X_a and X_c, 50,000 models each, errors made up; regspace.synthetic),
compacts it, then times each whole command (interpreter start and imports included), best of 3.

--ladder: the committed ladder (experiments/results/ladder/store, copied to a temporary directory so its
e_fit cache starts empty), issue 25 §1's case:
  - e_fit per model: the search for each of the 25 models whose fits the Findings report, best of 3 each;
  - `compare --json` cold (no e_fit cache: every fit computed, as on a first run) and warm (the cache the
    cold run wrote), against `status`; best of 3 whole commands each, and their JSON must be identical;
  - with --baseline-rev REV: the same measurements with REV's code (its regspace/ from `git archive`,
    same interpreter, same store copy), printed beside ours as ratios.

    python benchmarks/bench_analysis.py [--per-space 50000]
    python benchmarks/bench_analysis.py --ladder [--baseline-rev 3b56288]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "experiments" / "results" / "ladder" / "store"

# Times each model's e_fit search in a fresh interpreter whose regspace is the one on PYTHONPATH
# (ours or a baseline revision's); prints "seconds d" per model.
PER_MODEL = r"""
import sys, time
import numpy as np
from regspace.analysis_io import load_table
from regspace.store import Store
from regspace.analysis import fit
t = load_table(Store.open(sys.argv[1]))
for s in t.space.unique():
    g = t[(t.space == s) & (t.status == "ok") & t.sweep_error.notna()]
    if not len(g) or ("w0" in g and g.w0.notna().all()):
        continue
    for _, r in g.nsmallest(5, "sweep_error").iterrows():
        args = [np.repeat(np.asarray(x), r.stage_depths) for x in
                (r.stage_widths, r.stage_bottleneck_ratios, r.stage_group_widths)]
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fit.lattice_fit(args[0], args[1].astype(float), args[2])
            best = min(best, time.perf_counter() - t0)
        print(best, len(args[0]))
"""


def timed(*args, env=None, before=None, cwd=None) -> tuple[float, str]:
    """Best of 3 wall times of `python -m regspace ARGS` and its stdout; ``before`` runs before each."""
    best, out = float("inf"), ""
    for _ in range(3):
        if before:
            before()
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "regspace", *map(str, args)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
        ).stdout
        best = min(best, time.perf_counter() - t)
    return best, out


def big(per_space: int):
    from regspace.synthetic import make_synthetic_store

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        store = make_synthetic_store(f"{d}/s", ("X_a", "X_c"), n=per_space, flops="1M:2G")
        store.compact("models", min_parts=2)
        n = len(store.read_arrow("results", ["model_id"]))
        print(f"synthetic store: {n:,} results, built in {time.perf_counter() - t:.1f} s")
        print(f"compare --json            {timed('compare', '--store', f'{d}/s', '--json')[0]:.2f} s")
        print(f"plot-edf -o edf.png       {timed('plot-edf', '--store', f'{d}/s', '-o', f'{d}/edf.png')[0]:.2f} s")
        print(
            "plot-edf --normalize flops "
            f"{timed('plot-edf', '--store', f'{d}/s', '--normalize', 'flops', '-o', f'{d}/e2.png')[0]:.2f} s"
        )
        print(f"status                    {timed('status', '--store', f'{d}/s')[0]:.2f} s")


def ladder_times(code: Path, store: Path) -> dict:
    """The ladder measurements with the regspace package under ``code`` (also the working directory:
    `python -m` and `-c` put it first on sys.path, so no other regspace is imported)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cache = store / "efit_cache.json"

    def drop_cache():
        cache.unlink(missing_ok=True)

    per = subprocess.run(
        [sys.executable, "-c", PER_MODEL, str(store)], check=True, capture_output=True, text=True, env=env, cwd=code
    ).stdout.split()
    fits = [(float(s), int(d)) for s, d in zip(per[::2], per[1::2])]
    cold, out_cold = timed("compare", "--store", store, "--json", env=env, before=drop_cache, cwd=code)
    warm, out_warm = timed("compare", "--store", store, "--json", env=env, cwd=code)
    status, _ = timed("status", "--store", store, env=env, cwd=code)
    drop_cache()
    return {"fits": fits, "cold": cold, "warm": warm, "status": status, "same": out_cold == out_warm, "json": out_warm}


def ladder(baseline_rev: str | None):
    import numpy as np

    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "store"
        shutil.copytree(LADDER, store, ignore=shutil.ignore_patterns("efit_cache.json", "*.lock", "claims"))
        runs = {"this code": ladder_times(ROOT, store)}
        if baseline_rev:
            base = Path(d) / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline_rev, "regspace"],
                                     check=True, capture_output=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            runs[f"baseline {baseline_rev} (its code path; it has no e_fit cache)"] = ladder_times(base, store)
    print(f"ladder: {LADDER.relative_to(ROOT)}; {os.cpu_count()} cores; wall times, best of 3 (a shared machine")
    print("inflates them all alike: read the ratios)")
    for name, r in runs.items():
        s = np.array([t for t, _ in r["fits"]])
        print(f"\n{name}")
        print(f"  e_fit per model ({len(s)} models, d {min(d for _, d in r['fits'])}-{max(d for _, d in r['fits'])}): "
              f"median {np.median(s):.3f} s, max {s.max():.3f} s, total {s.sum():.2f} s")  # fmt: skip
        print(f"  compare --json, cold (no cache)  {r['cold']:.2f} s")
        print(f"  compare --json, warm (cached)    {r['warm']:.2f} s   ({r['cold'] / r['warm']:.1f}x the cold run)")
        print(f"  status                           {r['status']:.2f} s")
        print(f"  cold and warm JSON identical: {r['same']}")
    if len(runs) == 2:
        ours, base = runs.values()
        fit_ratio = np.median(np.array([t for t, _ in base["fits"]]) / np.array([t for t, _ in ours["fits"]]))
        print("\nratios, baseline / this code:")
        print(f"  e_fit per model (median of per-model ratios)  {fit_ratio:.1f}x")
        print(f"  compare --json, baseline vs this code cold    {base['cold'] / ours['cold']:.1f}x")
        print(f"  compare --json, baseline vs this code warm    {base['warm'] / ours['warm']:.1f}x")
        print(f"  the same JSON as the baseline: {base['json'] == ours['json']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-space", type=int, default=50_000)
    ap.add_argument("--ladder", action="store_true", help="compare on the committed ladder (issue 25 §1)")
    ap.add_argument("--baseline-rev", help="with --ladder: also time this git revision's code, for ratios")
    args = ap.parse_args()
    if args.ladder:
        ladder(args.baseline_rev)
    else:
        big(args.per_space)


if __name__ == "__main__":
    main()
