"""Read-side speed (issue 25 §1): `compare --json`, `plot-edf` and `status` on 100,000 results against a
plain pandas + scipy script; `report` on 10,000 models; `compare` on the committed ladder.

Default: builds a synthetic store (X_a and X_c, 50,000 models each, errors made up; regspace.synthetic),
compacts it, then times each whole command (interpreter start and imports included), best of 3, beside
the baseline run in the same invocation: BASELINE below, a plain pandas + scipy script that reads the
store's parquet files, builds the table compare prints (draws, networks, diverged/failed/pending, min,
mean, percentiles, test median) and runs scipy's two-sample KS test on every pair. Each command's CPU
time (user + sys of its own process, from os.wait4) and peak RSS are printed beside its wall time: the
machine is shared, so wall times carry the other users' load, CPU times much less so.

--report N: `report` on a synthetic store of N models (X_a and X_c, N/2 each), whole command, once
cold (no e_fit cache) and once warm (the cache the first run wrote).

--ladder: the committed ladder (experiments/results/ladder/store, copied to a temporary directory so its
e_fit cache starts empty), issue 25 §1's case:
  - e_fit per model: the search for each of the 25 models whose fits the Findings report, best of 3 each;
  - `compare --json` cold (no e_fit cache: every fit computed, as on a first run) and warm (the cache the
    cold run wrote), against `status`; best of 3 whole commands each, and their JSON must be identical;
  - with --baseline-rev REV: the same measurements with REV's code (its regspace/ from `git archive`,
    same interpreter, same store copy), printed beside ours as ratios.
Without --ladder, --baseline-rev REV also runs REV's `compare --json` once on the 100,000 results.

    python benchmarks/bench_analysis.py [--per-space 50000] [--baseline-rev REV]
    python benchmarks/bench_analysis.py --report 10000
    python benchmarks/bench_analysis.py --ladder [--baseline-rev 3b56288]
"""

import argparse
import json
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

# The baseline: plain pandas + scipy over the store's parquet files, the table compare prints and every
# pair's KS test. Prints JSON, like `compare --json`.
BASELINE = r"""
import glob, itertools, json, sys
import numpy as np, pandas as pd
from scipy import stats
store = sys.argv[1]
def read(table, cols):
    return pd.concat([pd.read_parquet(p, columns=cols) for p in sorted(glob.glob(f"{store}/{table}/part-*.parquet"))])
models = read("models", ["space", "model_id", "multiplicity"])
models["multiplicity"] = models.multiplicity.fillna(1)
models = models.groupby(["space", "model_id"], sort=False, as_index=False).multiplicity.sum()
results = read("results", ["model_id", "recipe_hash", "seed", "status", "error", "test_error"])
recipe = results.recipe_hash.value_counts().index[0]
results = results[results.recipe_hash == recipe].drop_duplicates(["model_id", "seed"])
results = results.groupby("model_id", as_index=False).agg(
    status=("status", "first"), error=("error", "mean"), test_error=("test_error", "mean"))
df = models.merge(results, on="model_id", how="left")
df["status"] = df.status.fillna("pending")
rows, err = [], {}
for space, g in df.groupby("space", sort=False):
    m = g.multiplicity.to_numpy(int)
    ok = (g.status == "ok").to_numpy() & g.error.notna().to_numpy()
    e = np.repeat(g.error.to_numpy(float)[ok], m[ok])
    err[space] = e
    row = {"space": space, "n": len(e), "networks": int(ok.sum()), "sampled": int(m.sum())}
    row.update({k: int(m[(g.status == k).to_numpy()].sum()) for k in ("diverged", "failed", "pending")})
    if len(e):
        row.update(min=e.min(), mean=e.mean(), median=np.median(e),
                   **{f"p{p}": np.percentile(e, p) for p in (5, 25, 75, 95)},
                   test_median=np.nanmedian(np.repeat(g.test_error.to_numpy(float)[ok], m[ok])))
    rows.append(row)
pairs = []
for a, b in itertools.combinations([s for s in err if len(err[s])], 2):
    r = stats.ks_2samp(err[a], err[b])
    pairs.append({"a": a, "b": b, "ks": float(r.statistic), "p_value": float(r.pvalue)})
print(json.dumps({"spaces": rows, "pairs": pairs}, default=float, indent=2))
"""


# Runs argv[2:] and writes its CPU seconds (user + sys) and peak RSS (kB) to argv[1]. A process forked from
# this benchmark would count the benchmark's own memory (a synthetic store, hundreds of MB) in its peak RSS:
# Linux keeps the largest RSS across exec, and a forked child starts with its parent's pages. Started from
# this small launcher instead, the command's peak RSS is its own.
LAUNCHER = r"""
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_once(argv, env=None, cwd=None) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + sys of the command's process, from os.wait4), peak RSS (MB) and
    stdout of one run of ``argv``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as d:
        usage = Path(d) / "usage"
        t = time.perf_counter()
        code = subprocess.run([sys.executable, "-c", LAUNCHER, usage, *argv], stdout=out, stderr=err, env=env,
                              cwd=cwd).returncode  # fmt: skip
        wall = time.perf_counter() - t
        if code:
            err.seek(0)
            raise SystemExit(f"{' '.join(map(str, argv))} failed ({code}):\n{err.read().decode()}")
        out.seek(0)
        cpu, rss = usage.read_text().split()
        return wall, float(cpu), int(rss) // 1024, out.read().decode()


def measured(argv, *, env=None, before=None, cwd=None, repeat: int = 3) -> dict:
    """Best of ``repeat`` runs (wall and CPU each their own best), the largest peak RSS (MB), the last
    stdout; ``before`` runs before each."""
    best = {"wall": float("inf"), "cpu": float("inf"), "rss_mb": 0, "out": ""}
    for _ in range(repeat):
        if before:
            before()
        wall, cpu, rss, out = run_once(argv, env=env, cwd=cwd)
        best.update(wall=min(best["wall"], wall), cpu=min(best["cpu"], cpu), rss_mb=max(best["rss_mb"], rss), out=out)
    return best


def regspace_cmd(*args) -> list:
    return [sys.executable, "-m", "regspace", *args]


def line(name: str, r: dict, base: dict | None = None) -> str:
    text = f"  {name:<32} wall {r['wall']:6.2f} s  CPU {r['cpu']:6.2f} s  peak RSS {r['rss_mb']:5d} MB"
    if base is not None:
        text += f"  {r['wall'] / base['wall']:4.1f}x / {r['cpu'] / base['cpu']:4.1f}x"
    return text


def check_table(ours: dict, base: dict) -> str:
    """How far compare's table and KS distances are from the baseline's (0: the same numbers)."""
    worst = max(abs(r[k] - v) for r, b in zip(ours["spaces"], base["spaces"]) for k, v in b.items() if k != "space")
    ks = max((abs(r["ks"] - b["ks"]) for r, b in zip(ours["pairs"], base["pairs"])), default=0.0)
    return f"compare's table vs the baseline's: largest difference {worst:.3g}; KS distances {ks:.3g}"


def checkout(rev: str, where: Path) -> Path:
    """REV's regspace/ (git archive) in ``where``/baseline."""
    base = where / "baseline"
    base.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "regspace"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    return base


def synthetic(where: str, per_space: int) -> int:
    from regspace.synthetic import make_synthetic_store

    store = make_synthetic_store(where, ("X_a", "X_c"), n=per_space, flops="1M:2G")
    store.compact("models", min_parts=2)
    return len(store.read_arrow("results", ["model_id"]))


def big(per_space: int, baseline_rev: str | None = None):
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        s = f"{d}/s"
        n = synthetic(s, per_space)
        print(f"synthetic store: {n:,} results, built in {time.perf_counter() - t:.1f} s")
        print(f"{os.cpu_count()} cores, shared with other users: wall times carry their load, CPU times (user + sys")
        print("of the command's own process) much less so. Best of 3 each (peak RSS: the largest of the 3);")
        print("last column: the command's wall / CPU time over the baseline's.\n")

        def no_cache():
            Path(s, "efit_cache.json").unlink(missing_ok=True)

        base = measured([sys.executable, "-c", BASELINE, s])
        print(line("baseline: pandas + scipy script", base))
        runs = {
            "compare --json": measured(regspace_cmd("compare", "--store", s, "--json"), before=no_cache),
            "compare --json (e_fit cached)": measured(regspace_cmd("compare", "--store", s, "--json")),
            "plot-edf -o edf.png": measured(regspace_cmd("plot-edf", "--store", s, "-o", f"{d}/edf.png")),
            "plot-edf --normalize flops": measured(
                regspace_cmd("plot-edf", "--store", s, "--normalize", "flops", "-o", f"{d}/e2.png")),
            "status": measured(regspace_cmd("status", "--store", s)),
        }  # fmt: skip
        for name, r in runs.items():
            print(line(name, r, base))
        ours = json.loads(runs["compare --json"]["out"])
        print(f"\n{check_table(ours, json.loads(base['out']))}")
        if baseline_rev:
            code = checkout(baseline_rev, Path(d))
            env = {**os.environ, "PYTHONPATH": str(code)}
            compare = regspace_cmd("compare", "--store", s, "--json")
            old = measured(compare, env=env, cwd=code, repeat=1, before=no_cache)
            print(line(f"compare --json at {baseline_rev}, once", old, base))
            old_json = json.loads(old["out"])
            print(f"the same JSON as {baseline_rev}: {old_json == ours}")
            if old_json != ours:
                print("  differing keys: " + ", ".join(differences(old_json, ours)[:12]))


def differences(a, b, path="") -> list[str]:
    """The paths at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [x for k in dict.fromkeys([*a, *b]) for x in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [x for i, (u, v) in enumerate(zip(a, b)) for x in differences(u, v, f"{path}[{i}]")]
    return [] if a == b else [path]


def report_bench(n_models: int):
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        s = f"{d}/s"
        n = synthetic(s, n_models // 2)
        print(f"synthetic store: {n:,} models with results, built in {time.perf_counter() - t:.1f} s")
        print(f"{os.cpu_count()} cores, shared with other users (CPU: user + sys of the command's own process)\n")
        cold = measured(regspace_cmd("report", "--store", s, "-o", f"{d}/r.html"), repeat=1)
        print(line("report (cold: no e_fit cache)", cold))
        warm = measured(regspace_cmd("report", "--store", s, "-o", f"{d}/r.html"), repeat=1)
        print(line("report (warm: e_fit cached)", warm))


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
    compare = regspace_cmd("compare", "--store", store, "--json")
    cold = measured(compare, env=env, before=drop_cache, cwd=code)
    warm = measured(compare, env=env, cwd=code)
    status = measured(regspace_cmd("status", "--store", store), env=env, cwd=code)
    drop_cache()
    return {"fits": fits, "cold": cold, "warm": warm, "status": status, "same": cold["out"] == warm["out"]}


def ladder(baseline_rev: str | None):
    import numpy as np

    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "store"
        shutil.copytree(LADDER, store, ignore=shutil.ignore_patterns("efit_cache.json", "*.lock", "claims"))
        runs = {"this code": ladder_times(ROOT, store)}
        if baseline_rev:
            base = checkout(baseline_rev, Path(d))
            runs[f"baseline {baseline_rev} (its code path; it has no e_fit cache)"] = ladder_times(base, store)
    print(f"ladder: {LADDER.relative_to(ROOT)}; {os.cpu_count()} cores, shared with other users: wall times carry")
    print("their load, CPU times (user + sys of the command's own process) much less so; best of 3 each")
    for name, r in runs.items():
        s = np.array([t for t, _ in r["fits"]])
        print(f"\n{name}")
        print(f"  e_fit per model ({len(s)} models, d {min(d for _, d in r['fits'])}-{max(d for _, d in r['fits'])}): "
              f"median {np.median(s):.3f} s, max {s.max():.3f} s, total {s.sum():.2f} s (wall)")  # fmt: skip
        print(line("compare --json, cold (no cache)", r["cold"]))
        print(line("compare --json, warm (cached)", r["warm"]))
        print(line("status", r["status"]))
        print(f"  cold and warm JSON identical: {r['same']}")
    if len(runs) == 2:
        ours, base = runs.values()
        fit_ratio = np.median(np.array([t for t, _ in base["fits"]]) / np.array([t for t, _ in ours["fits"]]))
        print("\nratios, baseline / this code (wall, CPU):")
        print(f"  e_fit per model (median of per-model ratios)  {fit_ratio:.1f}x")
        for k in ("cold", "warm"):
            print(f"  compare --json, baseline vs this code {k:<5}  {base['cold']['wall'] / ours[k]['wall']:.1f}x, "
                  f"{base['cold']['cpu'] / ours[k]['cpu']:.1f}x")  # fmt: skip
        print(f"  the same JSON as the baseline: {base['warm']['out'] == ours['warm']['out']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-space", type=int, default=50_000)
    ap.add_argument("--ladder", action="store_true", help="compare on the committed ladder (issue 25 §1)")
    ap.add_argument("--report", type=int, metavar="N", help="time `report` on a synthetic store of N models")
    ap.add_argument("--baseline-rev", help="also time this git revision's compare, for ratios")
    args = ap.parse_args()
    if args.ladder:
        ladder(args.baseline_rev)
    elif args.report:
        report_bench(args.report)
    else:
        big(args.per_space, args.baseline_rev)


if __name__ == "__main__":
    main()
