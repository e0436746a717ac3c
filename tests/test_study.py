"""Studies (one TOML file, one command), learning curves, equal-draws analyses and the fidelity check.

The unit tests build stores by hand, so that the expected answer is known without regspace's help.
The end-to-end tests run the real command on real Fashion-MNIST images at tiny sizes: Ctrl-C and resume,
balanced rounds, and two machines sharing one queue.
"""

import datetime
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from regspace.analysis.fidelity import analyse, ks_direction, select
from regspace.analysis_io import load_table
from regspace.errors import RegspaceError, UsageProblem
from regspace.store import Store
from regspace.study import Study, draw_order, load_study, progress, round_order
from regspace.train.recipe import Recipe

from conftest import cli, default_sigint

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def _model(space, mid, seed, draws):
    return {
        "model_id": mid, "space": space, "seed": seed, "draw_index": draws[0], "multiplicity": len(draws),
        "draw_indices": draws, "flops": 1_000_000, "params": 1000, "acts": 1000, "stage_widths": [8],
        "stage_depths": [1], "stage_group_widths": [8], "stage_bottleneck_ratios": [1.0], "se_ratio": 0.0,
        "stem": "cifar", "resolution": 28, "in_channels": 1, "num_classes": 10,
    }  # fmt: skip


def _result(mid, recipe_hash, error, status="ok", curve=None):
    return {
        "model_id": mid, "recipe_hash": recipe_hash, "status": status, "error": error, "min_error": error,
        "epochs": len(curve) if curve else 3, "val_errors": curve, "finished_at": NOW,
    }  # fmt: skip


@pytest.fixture
def hand_store(tmp_path):
    """Space S: m1 drawn at 0 and 5, m2 at 1, m3 at 2 and 3 (seed 0), m4 at 0 of seed 1 (after seed 0).
    Space T: t1..t4 drawn once each at 0..3."""
    store = Store.create(tmp_path / "s")
    rows = [_model("S", "m1", 0, [0, 5]), _model("S", "m2", 0, [1]), _model("S", "m3", 0, [2, 3]),
            _model("S", "m4", 1, [0])] + [_model("T", f"t{i}", 0, [i - 1]) for i in range(1, 5)]  # fmt: skip
    store.append_rows("models", rows)
    return store


@pytest.mark.parametrize(
    "m,expected",
    [(1, {"m1": 1}), (3, {"m1": 1, "m2": 1, "m3": 1}), (4, {"m1": 1, "m2": 1, "m3": 2}),
     (6, {"m1": 2, "m2": 1, "m3": 2, "m4": 1}), (99, {"m1": 2, "m2": 1, "m3": 2, "m4": 1})],
)  # fmt: skip
def test_first_draws_cut_each_population_in_sampling_order(hand_store, m, expected):
    hand_store.append_rows("results", [_result(mid, "r", 10.0) for mid in ("m1", "m2", "m3", "m4")])
    df = load_table(hand_store, spaces=["S"], first_draws=m)
    assert dict(zip(df.model_id, df.multiplicity)) == expected
    assert df.attrs["first_draws"] == m


def test_round_order_trains_each_space_in_turn_by_first_draw():
    order = {"A": [f"a{i}" for i in range(6)], "B": ["b0", "b1", "b0", "b3", "b4", "b5"]}  # b0 drawn twice
    models = [{"space": s, "model_id": m} for s, ids in order.items() for m in dict.fromkeys(ids)]
    rng = np.random.default_rng(0)
    shuffled = [models[i] for i in rng.permutation(len(models))]
    got = [m["model_id"] for m in round_order(shuffled, order, 2)]
    assert got == ["a0", "a1", "b0", "b1", "a2", "a3", "b3", "a4", "a5", "b4", "b5"]


def test_progress_is_the_prefix_every_space_has_finished(hand_store):
    study = Study("s", ("S", "T"), 4, 2, 0, "mnist", {}, Recipe(), hand_store.path.parent)
    h = study.recipe.hash
    # S's draws in order: m1 m2 m3 m3 m1 (seed 0), m4 (seed 1); T's: t1 t2 t3 t4. Finished: m1, m2, m3
    # (S's prefix is 4, capped by models_per_space) and t1, t2 (failed is finished: it is not trained again).
    hand_store.append_rows("results", [_result(m, h, 9.0) for m in ("m1", "m2", "m3", "t1")])
    hand_store.append_rows("results", [_result("t2", h, None, status="failed")])
    p = progress(hand_store, study)
    assert [(r["space"], r["prefix"], r["draws"]) for r in p["spaces"]] == [("S", 4, 4), ("T", 2, 4)]
    assert p["equal"] == 2 and p["rounds"] == 1 and not p["complete"]
    assert {r["space"]: (r["ok"], r["failed"], r["pending"]) for r in p["spaces"]} == {"S": (4, 0, 0), "T": (1, 1, 2)}
    assert draw_order(hand_store, ["S"])["S"] == ["m1", "m2", "m3", "m3", "m1", "m4"]


def test_a_study_is_complete_only_once_its_fidelity_check_is(hand_store):
    from regspace.study import FidelityPlan, status_rows

    long = Recipe(epochs=10)
    study = Study("s", ("S", "T"), 4, 2, 0, "mnist", {}, Recipe(), hand_store.path.parent,
                  fidelity=FidelityPlan(long, ("T",), per_space=2))  # fmt: skip
    h = study.recipe.hash
    hand_store.append_rows("results", [_result(m, h, 9.0) for m in ("m1", "m2", "m3", "t1", "t2", "t3", "t4")])
    p, _ = status_rows(study, hand_store)
    assert p["trained"] and not p["complete"] and p["fidelity"] == {"chosen": 2, "settled": 0}
    chosen = record_random_models(hand_store, study)
    hand_store.append_rows("results", [_result(chosen[0], long.hash, 8.0)])
    assert status_rows(study, hand_store)[0]["fidelity"] == {"chosen": 2, "settled": 1}
    hand_store.append_rows("results", [_result(chosen[1], long.hash, None, status="failed")])  # not trained again
    p, _ = status_rows(study, hand_store)
    assert p["complete"] and p["fidelity"] == {"chosen": 2, "settled": 2}


def record_random_models(store, study):
    from regspace.study import record_random

    f = study.fidelity
    order = {"T": draw_order(store, ["T"])["T"][: study.models_per_space]}
    entry, _ = record_random(store, short_hash=study.recipe.hash, long=f.recipe, order=order, per_space=f.per_space,
                             seed=f.seed)  # fmt: skip
    return entry["models"]["T"]


def test_errors_at_an_epoch_come_from_the_stored_curves(hand_store, run_cli):
    curves = {"t1": [30.0, 20.0, 25.0], "t2": [40.0, 35.0, 12.0], "t3": [50.0, 10.0, 11.0]}
    rows = [_result(m, "r", c[-1], curve=c) for m, c in curves.items()] + [_result("t4", "r", 15.0)]  # t4: no curve
    hand_store.append_rows("results", rows)
    df = load_table(hand_store, spaces=["T"], epoch=2).set_index("model_id")
    assert df.loc[["t1", "t2", "t3"], "sweep_error"].tolist() == [20.0, 35.0, 10.0] and np.isnan(df.loc["t4", "error"])
    assert any("1 result(s) have no learning curve" in w for w in df.attrs["warnings"])
    best = load_table(hand_store, spaces=["T"], epoch=2, error="min_error").set_index("model_id")
    assert best.loc[["t1", "t2", "t3"], "sweep_error"].tolist() == [20.0, 35.0, 10.0]
    assert load_table(hand_store, spaces=["T"], epoch=3, error="min_error").set_index("model_id").loc[
        "t2", "sweep_error"] == 12.0  # fmt: skip
    with pytest.raises(RegspaceError, match="no model was trained for 4 epochs"):
        load_table(hand_store, spaces=["T"], epoch=4)
    code, out, err = run_cli("compare", "--store", hand_store.path, "--spaces", "T", "--epoch", "1", "--json")
    r = json.loads(out)
    assert code == 0 and r["epoch"] == 1 and r["spaces"][0]["median"] == 40.0 and r["spaces"][0]["n"] == 3
    assert "after epoch 1" in r["findings"]["sentences"][0]


def test_curve_picks_are_the_best_median_and_worst():
    from regspace.plots.figures import curve_picks, plot_curves

    errors = [14.0, 11.0, 19.0, 12.0, 13.0]
    df = pd.DataFrame({"model_id": [f"m{i}" for i in range(5)], "space": "X", "status": "ok", "sweep_error": errors,
                       "val_errors": [[e + 5, e] for e in errors]})  # fmt: skip
    assert [(k, r.model_id) for k, r in curve_picks(df)] == [("best", "m1"), ("median", "m4"), ("worst", "m2")]
    fig = plot_curves(df)
    highlighted = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o"]
    assert [list(ln.get_ydata()) for ln in highlighted] == [[16.0, 11.0], [18.0, 13.0], [24.0, 19.0]]


# -- fidelity ----------------------------------------------------------------------------------------


def _ranks(x):
    return np.argsort(np.argsort(x)).astype(float)


def test_fidelity_correlations_and_ci_match_an_independent_computation():
    rng = np.random.default_rng(1)
    short = rng.normal(14, 1, 16)
    long = short * 0.5 + rng.normal(0, 0.4, 16) + 5
    pairs = pd.DataFrame({"space": ["A"] * 8 + ["B"] * 8, "model_id": range(16), "short": short, "long": long})
    r = analyse(pairs, selected=16, n_boot=4000)
    rho = np.corrcoef(_ranks(short), _ranks(long))[0, 1]  # Spearman: Pearson of ranks (no ties here)
    sign = [np.sign((short[i] - short[j]) * (long[i] - long[j])) for i, j in itertools.combinations(range(16), 2)]
    tau = np.sum(sign) / len(sign)  # Kendall: (concordant - discordant) / pairs
    assert r["spearman"] == pytest.approx(rho, abs=1e-12) and r["kendall"] == pytest.approx(tau, abs=1e-12)
    boot = []  # a plain paired percentile bootstrap
    for _ in range(4000):
        i = rng.integers(0, 16, 16)
        if np.ptp(short[i]) and np.ptp(long[i]):
            boot.append(np.corrcoef(_ranks(short[i]), _ranks(long[i]))[0, 1])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert r["spearman_ci"][0] == pytest.approx(lo, abs=0.06) and r["spearman_ci"][1] == pytest.approx(hi, abs=0.06)
    assert r["median_shift"] == pytest.approx(np.median(long - short))


def test_fidelity_says_whether_short_and_long_order_the_spaces_alike():
    a, b = np.arange(8.0), np.arange(8.0) + 3  # A better than B in short training
    pairs = pd.DataFrame({"space": ["A"] * 8 + ["B"] * 8, "model_id": range(16), "short": np.r_[a, b],
                          "long": np.r_[b, a]})  # fmt: skip  # ... and worse in long training
    (o,) = analyse(pairs, selected=16, n_boot=200)["orders"]
    assert (o["median_short"], o["median_long"], o["ks_short"], o["ks_long"]) == (1, -1, 1, -1)
    assert not o["median_agrees"] and not o["ks_agrees"]
    assert ks_direction(a, b) == 1 and ks_direction(b, a) == -1 and ks_direction(a, a) == 0


def test_fidelity_selection_is_stratified_distinct_and_weighted_by_draws():
    order = {"A": ["x"] * 5 + [f"y{i}" for i in range(10)], "B": [f"z{i}" for i in range(12)]}
    chosen = select(order, 8, seed=0)
    assert [len(v) for v in chosen.values()] == [8, 8] and all(len(set(v)) == 8 for v in chosen.values())
    assert select(order, 8, seed=0) == chosen and select(order, 8, seed=1) != chosen  # seeded
    half = ["x"] * 5 + [f"y{i}" for i in range(5)]
    picks = [select({"A": half}, 1, seed=s)["A"][0] for s in range(2000)]
    assert abs(picks.count("x") / 2000 - 0.5) < 0.04  # x is half of the draws
    with pytest.raises(RegspaceError, match="A has 6 distinct networks, fewer than the 8"):
        select({"A": half}, 8, seed=0)


def test_fidelity_selection_keeps_what_is_still_drawn_and_stays_uniform():
    from scipy import stats

    draws = [f"m{i}" for i in range(64)]
    old = select({"A": draws}, 8, seed=0)
    prefix = draws[:48]
    now = select({"A": prefix}, 8, seed=0, keep=old)["A"]
    kept = [m for m in old["A"] if m in prefix]
    assert 0 < len(kept) < 8 and now[: len(kept)] == kept and set(now) <= set(prefix) and len(set(now)) == 8
    assert select({"A": draws}, 8, seed=0, keep=old) == old  # nothing outside: the same selection
    # kept from 64 draws and filled from the first 32: every one of the 32 is as likely (8/32) to be chosen
    counts = np.zeros(32)
    for s in range(3000):
        for m in select({"A": draws[:32]}, 8, seed=s, keep=select({"A": draws}, 8, seed=10_000 + s))["A"]:
            counts[int(m[1:])] += 1
    assert stats.chisquare(counts).pvalue > 0.001


def test_a_study_analysed_at_fewer_draws_retrains_fidelity_models_from_those_draws(tmp_path):
    """A selection recorded when the study stood at 64 draws, the study now at 48: the check must pair
    models that have a brief result, so every one is among the 48 (design_choices once paired 16 of 24)."""
    from regspace.analysis_io import recorded_fidelity
    from regspace.study import record_random

    store = Store.create(tmp_path / "s")
    short, long = Recipe(), Recipe(epochs=10, train_size=20_000)
    draws = {s: [f"{s}{i}" for i in range(64)] for s in ("A", "B", "C")}
    first, replaced = record_random(store, short_hash=short.hash, long=long, order=draws, per_space=8, seed=0)
    assert replaced == 0
    prefix = {s: v[:48] for s, v in draws.items()}
    entry, replaced = record_random(store, short_hash=short.hash, long=long, order=prefix, per_space=8, seed=0)
    outside = {m for s, v in first["models"].items() for m in v if m not in prefix[s]}
    assert outside and replaced == len(outside)
    for s, v in entry["models"].items():
        assert len(set(v)) == 8 and set(v) <= set(prefix[s])
        assert set(first["models"][s]) - outside <= set(v)  # what was retrained already stays
    assert recorded_fidelity(store, long.hash)["models"] == entry["models"]
    again = record_random(store, short_hash=short.hash, long=long, order=prefix, per_space=8, seed=0)
    assert again == (entry, 0)  # a rerun keeps it
    have = store.read_json("fidelity.json")  # as an older version wrote it: its recipe lacks a later field
    del have["checks"][long.hash]["long_recipe"]["tf32"]
    store.write_json("fidelity.json", have)
    record_random(store, short_hash=short.hash, long=long, order=prefix, per_space=8, seed=0)
    assert store.read_json("fidelity.json") == have  # the same selection: the committed record is not rewritten


# -- study files ---------------------------------------------------------------------------------------

TINY_STUDY = """
name = "tiny"
spaces = ["X_a", "RegNetX"]
models_per_space = 8
round = 3
seed = 3
preset = "mnist"
output = "out"
[budget]
flops = "2M:4M"
[recipe]
train_size = 256
val_size = 128
test_size = 0
epochs = 2
batch_size = 64
"""
FIDELITY = """
[fidelity]
spaces = ["X_a"]
per_space = 8
[fidelity.recipe]
epochs = 3
"""


@pytest.mark.parametrize(
    "text,needle",
    [
        ("spaces = ['X_a']\n", "`models_per_space` is missing"),
        ("spaces = ['X_a']\nmodels_per_space = 4\nsize = 3\n", "unknown key(s) size"),
        ("spaces = ['X_q']\nmodels_per_space = 4\n", "X_q"),
        ("spaces = ['X_a']\nmodels_per_space = 4\n[budget]\nflops = 'lots'\n", "lots"),
        ("spaces = ['X_a']\nmodels_per_space = 8\n[fidelity]\nper_space = 4\n", "at least 8"),
        ("spaces = ['X_a']\nmodels_per_space = 8\n[fidelity]\nper_space = 9\n", "exceeds models_per_space"),
        ("spaces = ['X_a']\nmodels_per_space = 8\n[fidelity.recipe]\nval_size = 99\n", "other images"),
        ("spaces = ['X_a']\nmodels_per_space = 8\n[recipe]\nepochz = 3\n", "epochz"),
        ("spaces = [\n", "not valid TOML"),
    ],
)
def test_bad_study_files_fail_in_one_line(tmp_path, run_cli, text, needle):
    f = tmp_path / "s.toml"
    f.write_text(text)
    code, out, err = run_cli("study", "run", f)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_a_store_belongs_to_one_study(tmp_path):
    from regspace.study import open_store

    f = tmp_path / "s.toml"
    f.write_text(TINY_STUDY)
    open_store(load_study(f))
    f.write_text(TINY_STUDY.replace("models_per_space = 8", "models_per_space = 12"))
    open_store(load_study(f))  # more draws per space: allowed (the study grows)
    f.write_text(TINY_STUDY.replace("seed = 3", "seed = 4"))
    with pytest.raises(RegspaceError, match=r"other settings \(seed\)"):
        open_store(load_study(f))
    with pytest.raises(UsageProblem):
        load_study(tmp_path / "missing.toml")


# -- end to end ------------------------------------------------------------------------------------------


def _raw_results(store):
    parts = sorted((store / "results").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts]) if parts else pd.DataFrame(columns=["model_id"])


@pytest.mark.slow
def test_study_stops_on_ctrl_c_at_balanced_rounds_and_resumes_exactly_the_rest(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_STUDY + FIDELITY)
    store = tmp_path / "out" / "store"
    # one worker of one thread: tiny models train faster single-threaded, and a busy machine's OpenMP spin-waits
    args = [sys.executable, "-m", "regspace", "study", "run", "tiny.toml", "--workers", "1", "--threads", "1"]
    p = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_sigint)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and len(list((store / "results").glob("part-*.parquet"))) < 4:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "study 'tiny' stopped; run `regspace study run tiny.toml` again to finish it" in err
    first = _raw_results(store)
    s = Store.open(store)
    study = load_study(tmp_path / "tiny.toml")
    order = {sp: ids[:8] for sp, ids in draw_order(s, study.spaces).items()}
    expected = []  # rounds of 3 draws per space, space after space; a network trains at its first draw
    for r in range(3):
        for sp in study.spaces:
            expected += [m for m in order[sp][3 * r : 3 * r + 3] if m not in expected]
    k = len(first)
    assert 4 <= k < len(expected)
    # one worker trains in exactly the round order: A's first 3 draws, then B's, then the next round
    assert first.sort_values("finished_at").model_id.tolist() == expected[:k]
    status = cli("study", "status", "tiny.toml", cwd=tmp_path)
    assert status.returncode == 0 and "the analyses compare the first" in status.stdout, status.stderr
    assert "fidelity check (3 epochs on 256 images): 0 of 8 network(s) retrained" in status.stdout, status.stdout
    assert "complete;" not in status.stdout

    again = cli("study", "run", "tiny.toml", "--workers", "1", "--threads", "1", cwd=tmp_path)  # no imports again
    assert again.returncode == 0, again.stderr
    assert f"trained {len(expected) - k} of {len(expected) - k} models" in again.stderr
    res = _raw_results(store)
    main = res[res.recipe_hash == study.recipe.hash]
    assert sorted(main.model_id) == sorted(expected)  # each model once: nothing lost, nothing twice
    # learning curves: one value per epoch, the last one the final error, the best one min_error
    ok = main[main.status == "ok"]
    assert all(len(c) == 2 and c[-1] == e and min(c) == m for c, e, m in zip(ok.val_errors, ok.error, ok.min_error))
    assert all(len(c) == 2 for c in ok.train_losses)
    long = res[res.recipe_hash == study.fidelity.recipe.hash]
    assert len(long) == 8 and set(long.model_id) <= set(order["X_a"])
    status = cli("study", "status", "tiny.toml", cwd=tmp_path).stdout
    assert "8 of 8 network(s) retrained" in status and "\ncomplete; the analyses compare the first 8" in status
    assert all(len(c) == 3 for c in long[long.status == "ok"].val_errors)
    for name in ("report.html", "compare.json", "curves.png", "edf.png", "fidelity.json"):
        assert (tmp_path / "out" / name).exists(), name
    assert "Short and long training rank 8 models (of 8 selected) with Spearman" in again.stdout  # fidelity.txt
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Fidelity of the brief training" in html and "Learning curves" in html
    assert "store <code>out/store</code>" in html and str(tmp_path) not in html  # as typed from the study's dir
    cmp = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert cmp["first_draws"] is None and [r["n"] for r in cmp["spaces"]] == [8, 8]
    third = cli("study", "run", "tiny.toml", cwd=tmp_path)  # idempotent (in this process: nothing trains)
    assert third.returncode == 0 and "nothing to train" in third.stderr and len(_raw_results(store)) == len(res)


def _queue_url(backend, tmp_path, request):
    if backend == "journal":
        return f"journal:///{tmp_path}/q.log"
    return request.getfixturevalue("pg").create_database("study_" + uuid.uuid4().hex[:8])


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_only_one_machine_sets_up_a_sweep(tmp_path, backend, request):
    """run_once: of two callers at once, exactly one runs the action; the other waits until it is done."""
    import threading

    from regspace.sweep.adapter import open_study

    url = _queue_url(backend, tmp_path, request)
    ran, returned = [], []

    def action():
        ran.append(threading.current_thread().name)
        time.sleep(1.0)

    def machine():
        q = open_study(url, "s")
        returned.append((q.run_once("setup", action, poll=0.05), time.monotonic()))

    threads = [threading.Thread(target=machine, name=f"m{i}") for i in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ran) == 1 and sorted(r for r, _ in returned) == [False, True]
    assert all(t - start >= 1.0 for _, t in returned)  # the waiting one returned only after the set-up
    assert open_study(url, "s").run_once("setup", action) is False and len(ran) == 1  # later callers skip it


@pytest.mark.slow
def test_two_machines_run_one_study_through_a_queue(tmp_path, request):
    """Two `study run --queue` processes at once, each with its own store: one enqueues, both train,
    every model is trained once, and both stores end with the whole study and its report. PostgreSQL,
    the many-machine backend; the election itself runs over every backend above, and the queue's own
    suite (test_queue_scale) covers both backends' claims and reports."""
    url = _queue_url("postgresql", tmp_path, request)
    (tmp_path / "tiny.toml").write_text(TINY_STUDY.replace("models_per_space = 8", "models_per_space = 3"))
    env = {**os.environ, "REGSPACE_QUEUE": url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "regspace", "study", "run", "tiny.toml", "--output", f"m{i}", "--workers", "1",
             "--threads", "1"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("enqueued" in err for _, err in outs) == 1  # one machine enqueued the study
    trained = [int(err.split("models: trained ")[1].split(" ")[0]) for _, err in outs if "models: trained " in err]
    results = [_raw_results(tmp_path / f"m{i}" / "store") for i in range(2)]
    n = Store.open(tmp_path / "m0" / "store").read_arrow("models").num_rows
    assert sum(trained) == n  # the machines shared the work: every model trained once
    for r in results:
        assert sorted(r.model_id) == sorted(results[0].model_id) and r.model_id.is_unique and len(r) == n
    assert all((tmp_path / f"m{i}" / "report.html").exists() for i in range(2))
    # study status collects the queue first
    status = cli("study", "status", "tiny.toml", "--output", "m0", cwd=tmp_path, env={"REGSPACE_QUEUE": url})
    assert status.returncode == 0 and "complete; the analyses compare the first 3 draws" in status.stdout, status


def test_fidelity_command_analyses_a_recorded_check_and_refuses_bad_ones(tmp_path, run_cli):
    from regspace.analysis_io import record_fidelity
    from regspace.study import fidelity_command

    store = Store.create(tmp_path / "s")
    ids = {s: [f"{s}{i}" for i in range(8)] for s in ("A", "B")}
    store.append_rows("models", [_model(s, m, 0, [i]) for s, v in ids.items() for i, m in enumerate(v)])
    short, long = Recipe(), Recipe(epochs=10, train_size=20_000)
    rng = np.random.default_rng(0)
    rows = []
    for s, v in ids.items():
        for m in v:
            e = rng.normal(14 if s == "A" else 12, 1)
            rows += [_result(m, short.hash, e), _result(m, long.hash, e - 2 + rng.normal(0, 0.3))]
    for r in rows:
        r["recipe"] = (short if r["recipe_hash"] == short.hash else long).to_json()
    store.append_rows("results", rows)
    record_fidelity(store, short_hash=short.hash, long_recipe=long, models=ids, seed=0)
    code, out, err = run_cli("fidelity", "--store", store.path, "--long-hash", long.hash[:6], "--json")
    r = json.loads(out)
    assert code == 0 and r["n"] == 16 and r["spearman"] > 0.8 and r["orders"][0]["median_agrees"]
    assert r["long_description"] == "10 epochs on 20000 images"
    code, out, err = run_cli("fidelity", "--store", store.path, "--long-hash", long.hash)
    assert code == 0 and out.startswith("- Short and long training rank 16 models")
    code, out, err = run_cli("fidelity", "--store", store.path, "--k", "8", "--epochs", "10")
    assert code == 2 and "gives 4 model(s) per space over 2 space(s)" in err
    with pytest.raises(UsageProblem, match="other images"):
        fidelity_command(store, long=short.replace(val_size=1000), k=16)
    with pytest.raises(UsageProblem, match="the short recipe itself"):
        fidelity_command(store, epochs=short.epochs, k=16)


def test_a_shared_parameter_gets_one_good_range_sentence():
    from regspace.analysis.findings import good_range_sentences

    rng = np.random.default_rng(0)
    g = rng.choice([1, 2, 4, 8, 16, 32], 200)
    df = pd.DataFrame({"space": "X_c", "status": "ok", "sweep_error": np.log2(g) + rng.normal(0, 0.3, 200), "g": g,
                       **{f"g{i}": g for i in range(1, 5)}, "multiplicity": 1})  # fmt: skip
    params = [r["param"] for r in good_range_sentences(df, "X_c")]
    assert params == ["g"]


def test_study_status_does_not_import_torch(tmp_path):
    from regspace.study import open_store

    f = tmp_path / "s.toml"
    f.write_text(TINY_STUDY)
    open_store(load_study(f))
    code = (
        "import sys; from regspace.cli import main; rc = main(['study', 'status', sys.argv[1]]); "
        "assert rc == 0 and 'torch' not in sys.modules and 'pytorch_lightning' not in sys.modules, rc"
    )
    p = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "0 complete round(s) of 3; the analyses compare the first 0 draws" in p.stdout


def test_a_tiny_study_whose_normalised_comparison_cannot_run_still_writes_everything(tmp_path, run_cli):
    """2 draws per space, normalize = "params", spaces whose parameter ranges do not overlap (issue 25 §4):
    the normalised comparison is left out with one line and a sentence in the report; compare.txt, the
    EDF and the report are written, and the command succeeds."""
    from regspace.study import open_store, sample_study

    text = TINY_STUDY.replace("models_per_space = 8", "models_per_space = 2") + '[analysis]\nnormalize = "params"\n'
    (tmp_path / "tiny.toml").write_text(text)
    study = load_study(tmp_path / "tiny.toml")
    store = open_store(study)
    sample_study(store, study)
    models = store.models()
    ranges = models.groupby("space").params.agg(["min", "max"])
    assert ranges["min"].max() > ranges["max"].min()  # the premise: no common range of parameters
    store.append_rows("results", [_result(m, study.recipe.hash, 10.0 + i) for i, m in enumerate(models.model_id)])
    code, out, err = run_cli("study", "report", tmp_path / "tiny.toml")
    assert code == 0, err
    assert "the comparison normalised by params is left out" in err + out
    for name in ("compare.txt", "compare.json", "edf.png", "report.html"):
        assert (tmp_path / "out" / name).is_file(), name
    assert not (tmp_path / "out" / "compare_params.json").exists()
    assert "normalised by parameters are left out" in (tmp_path / "out" / "report.html").read_text()
