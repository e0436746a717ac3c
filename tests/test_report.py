"""Plots, compare, report and export on a synthetic store (errors known by construction)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from regspace.synthetic import make_synthetic_store

from conftest import cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "store"
    make_synthetic_store(path, ("X_a", "RegNetX"), n=60, diverged=0.05)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,name",
    [
        (["plot-edf", "--band"], "edf.png"),
        (["plot-edf", "--normalize", "flops", "--band"], "edf.svg"),
        (["plot-edf", "--spaces", "RegNetX"], "edf.pdf"),
        (["plot-scatter", "--space", "X_a", "--boot", "200"], "sc.png"),
        (["plot-scatter", "--space", "regnetx", "--x", "d,wa,wm,flops"], "sc.svg"),
        (["plot-scatter", "--space", "X_a", "--x", "d,w4,g,b,wa,wm,flops", "--boot", "100"], "sc_fit.png"),
        (["plot-widths", "--space", "X_a", "--top", "5"], "w.png"),
        (["plot-widths", "--space", "RegNetX"], "w2.png"),
        (["plot-fit"], "fit.png"),
        (["plot-search"], "search.png"),
    ],
)
def test_plots_write_files(store, tmp_path, run_cli, args, name):
    out = tmp_path / name
    code, stdout, err = run_cli(*args, "--store", store, "-o", out)
    assert code == 0, err
    data = out.read_bytes()
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[out.suffix]
    assert data.startswith(magic) and len(data) > 5000


def test_compare_json_numbers(store, run_cli):
    code, out, err = run_cli("compare", "--store", store, "--json")
    assert code == 0, err
    r = json.loads(out)
    by = {s["space"]: s for s in r["spaces"]}
    df = pd.read_parquet(store / "results").merge(pd.read_parquet(store / "models")[["model_id", "space"]])
    models = pd.read_parquet(store / "models").groupby("model_id").multiplicity.sum()  # draws per network
    for space in ("X_a", "RegNetX"):
        ok = df[(df.space == space) & (df.status == "ok")].drop_duplicates("model_id")
        draws = ok.error.repeat(models.loc[ok.model_id].to_numpy())
        assert by[space]["n"] == len(draws) and by[space]["min"] == pytest.approx(draws.min())
        assert by[space]["median"] == pytest.approx(draws.median())
        assert by[space]["diverged"] == int(((df.space == space) & (df.status == "diverged")).sum())
    (pair,) = r["pairs"]
    assert pair["a"] == "X_a" and 0 <= pair["ks"] <= 1 and 0 <= pair["p_value"] <= 1
    assert r["error"] == "error" and 0 < pair["noise"] <= 1 and pair["noise_method"] in ("exact", "permutation")
    # X_a's errors were planted 2 points worse: its median is higher
    assert by["X_a"]["median"] > by["RegNetX"]["median"]


@pytest.fixture(scope="module")
def html_report(store, tmp_path_factory):
    """The synthetic store's HTML report, written once for the tests that only read it."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    p = cli("report", "--store", store, "-o", out)
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.slow
def test_report_html_is_self_contained(html_report):
    html = html_report.read_text()
    assert html.count("<svg") >= 8
    for fetch in (
        'src="http',
        "src='http",
        'href="http',
        "href='http",
        "url(http",
        "@import",
        "<link",
        "<script",
        "<img",
    ):
        assert fetch not in html, fetch  # nothing to fetch: opens offline
    for needle in (
        "Error EDFs",
        "Comparison",
        "Best and worst models",
        "Widths",
        "Quantised linear fit",
        "Random-search efficiency",
        "regspace plot-edf",
        "regspace plot-scatter",
    ):
        assert needle in html, needle


@pytest.mark.slow
def test_report_markdown(store, tmp_path, run_cli):
    out = tmp_path / "r" / "report.md"
    code, _, err = run_cli("report", "--store", store, "-o", out)
    assert code == 0, err
    md = out.read_text()
    images = list((tmp_path / "r" / "report_files").glob("*.png"))
    assert len(images) >= 8 and all(f"report_files/{p.name}" in md for p in images)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export(store, tmp_path, run_cli, fmt):
    out = tmp_path / f"all.{fmt}"
    code, stdout, err = run_cli("export", "--store", store, "-o", out)
    assert code == 0, err
    df = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}[fmt](out)
    assert len(df) == 120 and {"model_id", "space", "flops", "error", "status", "stage_widths"} <= set(df.columns)


@pytest.mark.slow
def test_read_commands_do_not_import_torch(tmp_path):
    store = tmp_path / "small"  # 10 models per space: the quantised fits of the report's 120 cost ~20 s
    make_synthetic_store(store, ("X_a", "RegNetX"), n=10, diverged=0.1)
    code = (
        "import sys; from regspace.cli import main; "
        f"assert main(['plot-edf', '--store', {str(store)!r}, '-o', {str(tmp_path / 'e.png')!r}]) == 0; "
        f"assert main(['compare', '--store', {str(store)!r}, '--json']) == 0; "
        f"assert main(['report', '--store', {str(store)!r}, '-o', {str(tmp_path / 'r.html')!r}]) == 0; "
        "bad = [m for m in ('torch', 'pytorch_lightning', 'lightning') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["plot-edf", "--spaces", "X_e"], "no models of space"),
        (["plot-edf", "--normalize", "depth"], "--normalize"),
        (["plot-scatter", "--space", "X_a", "--x", "bogus"], "no parameter 'bogus'"),
        (["plot-edf", "-o", "edf.gif"], ".png, .svg or .pdf"),
        (["compare", "--recipe-hash", "nope"], "matches 0 recipes"),
        (["export", "-o", "x.xlsx"], "unknown export format"),
    ],
)
def test_bad_analysis_input(store, tmp_path, run_cli, args, needle):
    code, _, err = run_cli(*args, "--store", store)
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err


def test_nothing_trained_yet(tmp_path, run_cli):
    run_cli("sample", "--space", "X_c", "-n", "3", "--store", tmp_path / "s")
    code, _, err = run_cli("plot-edf", "--store", tmp_path / "s", "-o", tmp_path / "e.png")
    assert code == 1 and "regspace train" in err
    code, out, _ = run_cli("compare", "--store", tmp_path / "s")
    assert code == 0 and "no results yet" in out and "None" not in out


def test_a_space_whose_models_all_diverged_says_so(tmp_path, run_cli):
    """plot-edf --spaces X_a when every X_a model diverged names the outcome, not "run regspace train"."""
    make_synthetic_store(tmp_path / "s", ("X_a",), n=6, diverged=1.0)
    code, _, err = run_cli("plot-edf", "--store", tmp_path / "s", "--spaces", "X_a", "-o", tmp_path / "e.png")
    assert code == 1 and "diverged" in err and "6 diverged" in err and "regspace train" not in err


def test_report_renders_in_a_real_browser(html_report):
    """Headless Chromium (network blocked) lays out every figure with size and marks, and logs no error."""
    import shutil
    from pathlib import Path

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.fail("chromium is missing: `make setup` installs Debian's chromium package")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from check_report import render

    r = render(html_report)
    assert len(r["figures"]) >= 6 and all(f["ok"] for f in r["figures"]), r["figures"]
    assert r["tables"] >= 2 and r["errors"] == []


def test_compare_normalized_by_params_numbers(store, run_cli):
    """--normalize params: the KS distance between the NDS-weighted EDFs, recomputed here with plain
    numpy from the parquet files (10 equal-width bins of params over the spaces' common range, each
    bin's mass 1/B shared by the draws in it)."""
    code, out, err = run_cli("compare", "--store", store, "--json", "--normalize", "params")
    assert code == 0, err
    r = json.loads(out)
    assert r["normalize"] == "params"
    models = (
        pd.read_parquet(store / "models")
        .groupby(["space", "model_id"], as_index=False)
        .agg(params=("params", "first"), m=("multiplicity", "sum"))
    )
    res = pd.read_parquet(store / "results")
    df = models.merge(res[res.status == "ok"][["model_id", "error"]], on="model_id")
    groups = {s: df[df.space == s] for s in ("X_a", "RegNetX")}
    lo = max(g.params.min() for g in groups.values())
    hi = min(g.params.max() for g in groups.values())

    def bins_of(g, n_bins):  # NDS: strictly inside the common range, equal-width bins
        p = g.params.to_numpy(float)
        return (p > lo) & (p < hi), np.minimum(np.floor((p - lo) / (hi - lo) * n_bins), n_bins - 1).astype(int)

    n_bins = next(  # the most bins (of 10) that every space occupies
        k
        for k in range(10, 0, -1)
        if all(set(bins_of(g, k)[1][bins_of(g, k)[0]]) == set(range(k)) for g in groups.values())
    )
    assert r["normalization"]["n_bins"] == n_bins

    def weights(g):
        inside, b = bins_of(g, n_bins)
        m = g.m.to_numpy(float)
        mass = np.bincount(b[inside], weights=m[inside], minlength=n_bins)
        return np.where(inside, m / (n_bins * mass[np.clip(b, 0, n_bins - 1)]), 0.0)

    wa, wb = weights(groups["X_a"]), weights(groups["RegNetX"])
    ea, eb = groups["X_a"].error.to_numpy(), groups["RegNetX"].error.to_numpy()
    grid = np.sort(np.concatenate([ea, eb]))
    fa = np.array([wa[ea <= x].sum() for x in grid])
    fb = np.array([wb[eb <= x].sum() for x in grid])
    (pair,) = r["pairs"]
    assert pair["ks"] == pytest.approx(np.abs(fa - fb).max(), abs=1e-12)
    assert pair["n_a"] == pytest.approx(wa.sum() ** 2 / (wa**2).sum())
    plain = json.loads(run_cli("compare", "--store", store, "--json")[1])["pairs"][0]
    assert abs(plain["ks"] - pair["ks"]) > 0.01  # the normalisation changed the answer


def test_figures_say_which_error_they_show(store):
    """Final validation error by default; the papers' best-epoch error with --error min_error."""
    from regspace.analysis_io import load_table
    from regspace.plots.figures import plot_edf, plot_search
    from regspace.store import Store

    for error, words in (("error", "final validation"), ("min_error", "best-epoch")):
        df = load_table(Store.open(store), error=error)
        for fig in (plot_edf(df), plot_search(df)):
            labels = [ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes]
            assert any(words in label for label in labels), labels


def _store_with(path, spaces, n, centres, seed=0):
    """A store of sampled models whose errors are drawn from known normal distributions per space."""

    def error_fn(df, rng):
        return np.array([rng.normal(centres[s], 1.0) for s in df.space])

    return make_synthetic_store(path, spaces, n=n, seed=seed, flops="1M:40M", error_fn=error_fn)


@pytest.mark.slow
def test_findings_state_a_winner_an_equivalence_and_an_unresolved_pair(tmp_path, run_cli):
    """Constructed stores where the answer is known: X_a is 2 points worse than X_b; X_b and X_c are
    drawn from one distribution (n large: equivalent within ±0.3); at n = 10 a 0.4-point difference
    is not resolved, and the power estimate says how many models would resolve it."""
    big = tmp_path / "big"
    _store_with(big, ("X_a", "X_b", "X_c"), 600, {"X_a": 15.0, "X_b": 13.0, "X_c": 13.0})
    code, out, err = run_cli("compare", "--store", big, "--json")
    assert code == 0, err
    f = json.loads(out)["findings"]
    by = {(p["a"], p["b"]): p for p in f["pairs"]}
    assert by[("X_a", "X_b")]["verdict"] == "better" and by[("X_a", "X_b")]["winner"] == "X_b"
    assert "X_b is better than X_a" in by[("X_a", "X_b")]["sentence"]
    lo, hi = by[("X_a", "X_b")]["shift_ci"]
    assert 1.5 < lo < 2.0 < hi < 2.5  # X_a's median is 2 points higher: the CI covers it
    assert by[("X_b", "X_c")]["verdict"] == "equivalent"
    assert "X_b and X_c are equivalent within ±0.3 points" in by[("X_b", "X_c")]["sentence"]
    assert f["sentences"][0].startswith("Errors are each model's final validation error")

    small = tmp_path / "small"
    _store_with(small, ("X_a", "X_b"), 10, {"X_a": 13.4, "X_b": 13.0}, seed=2)
    code, out, err = run_cli("compare", "--store", small, "--json")
    (p,) = json.loads(out)["findings"]["pairs"]
    assert p["verdict"] == "not resolved" and "not resolved at n = " in p["sentence"]
    # a 0.4-point shift at σ = 1 needs on the order of 10^2 models per space for 80 % power
    assert p["models_needed"] is not None and 40 <= p["models_needed"] <= 2560
    assert f"about {p['models_needed']} models per space would resolve" in p["sentence"]


def test_verdict_matrix_reads_along_the_rows():
    """Hand-made pairs (independent of the statistics): the matrix says better/worse by the winner, ≈ for
    equivalent, ? for not resolved, and is antisymmetric."""
    from regspace.report import verdict_matrix

    pairs = [
        {"a": "A", "b": "B", "verdict": "better", "winner": "B", "median_shift": 0.5},
        {"a": "A", "b": "C", "verdict": "equivalent", "median_shift": 0.01},
        {"a": "B", "b": "C", "verdict": "not resolved", "median_shift": -0.2},
    ]
    m = verdict_matrix(["A", "B", "C"], pairs)
    kinds = [[kind for _, kind in row] for row in m.cells]
    assert kinds == [["self", "worse", "equivalent"], ["better", "self", "unresolved"], ["equivalent", "unresolved",
                                                                                        "self"]]  # fmt: skip
    assert m.cells[1][0][0] == "better 0.50" and m.cells[0][1][0] == "worse 0.50" and m.cells[1][2][0] == "?"


@pytest.mark.slow
def test_the_report_opens_with_orderings_a_matrix_and_folds_the_details(tmp_path, run_cli):
    """A constructed store where RegNetY is 2 points better than RegNetX (RegNet spaces: their e_fit is exact
    at once): the Findings open with that one ordering and the matrix; every pair's sentence and the good
    ranges sit inside <details>; the Markdown report has the same parts."""
    path = tmp_path / "s"
    _store_with(path, ("RegNetX", "RegNetY"), 40, {"RegNetX": 15.0, "RegNetY": 13.0})
    code, _, err = run_cli("report", "--store", path, "-o", tmp_path / "r.html")
    assert code == 0, err
    html_text = (tmp_path / "r.html").read_text()
    findings = html_text[html_text.index("<h2>Findings</h2>"): html_text.index("<h2>Store</h2>")]
    assert "<li>RegNetY better than RegNetX (errors" in findings and "Holm" in findings.split("<table")[0]
    assert "<table class='verdicts'>" in findings and "v-better" in findings and "v-worse" in findings
    details = findings[findings.index("<details>"):]
    assert "RegNetY is better than RegNetX: a model of RegNetY has the lower error" in details  # folded, in full
    assert findings.index("<li>RegNetY better than RegNetX") < findings.index("<details>")
    code, _, err = run_cli("report", "--store", path, "-o", tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert code == 0 and "RegNetY better than RegNetX (errors" in md and "| RegNetY | better" in md
    assert "Every pair in words" in md


@pytest.mark.slow
def test_the_store_table_counts_pending_only_under_the_compared_recipe(tmp_path, run_cli):
    """A second recipe trained on 2 of 10 models (a fidelity check) is not '8 pending' in the report (10 models:
    the report's analyses of 30 cost 3x as much and prove nothing more here)."""
    from regspace.store import Store

    path = tmp_path / "s"
    _store_with(path, ("X_a",), 10, {"X_a": 13.0})
    store = Store.open(path)
    ids = store.models().model_id.tolist()[:2]
    store.append_rows("results", [{"model_id": m, "recipe_hash": "long000", "status": "ok", "error": 9.0}
                                  for m in ids])  # fmt: skip
    code, _, err = run_cli("report", "--store", path, "--recipe-hash", "synthetic000", "-o", tmp_path / "r.md")
    assert code == 0, err
    rows = [line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("| X_a | long000")]
    assert rows and rows[0].rstrip(" |").endswith("-"), rows


@pytest.mark.slow
def test_a_report_of_regimes_seeds_and_a_drawn_lr(tmp_path):
    """Issue 24's features together, on a hand-made store (no training): RegNetX in two flops regimes,
    lr drawn per model, each design trained with seeds 0 and 1. The recipe table shows lr's law (not the
    lr of whichever model's result came first) and both seeds; the model tables show each model's lr; the
    seed noise has its table; seed 1's row in the store table counts its pending models."""
    from regspace.populate import sample_to_store
    from regspace.presets import PRESETS, Budget
    from regspace.report import build_report
    from regspace.spaces import get_space
    from regspace.spaces.hparams import laws_from_tables
    from regspace.store import Store
    from regspace.train.recipe import Recipe

    laws = laws_from_tables({"lr": {"dist": "log_uniform", "low": 0.1, "high": 0.8}}, "t")
    recipe = Recipe().with_laws(laws)
    store = Store.create(tmp_path / "s")
    for regime in ("1M:2M", "3M:6M"):
        sample_to_store(store, get_space("RegNetX"), 12, preset=PRESETS["mnist"], budget=Budget.parse(flops=regime),
                        seed=1, regime=regime, hparams=laws)  # fmt: skip
    models = store.models()
    rng = np.random.default_rng(0)
    rows = []
    for i, (mid, lr) in enumerate(zip(models.model_id, models.lr)):
        base = 12 + 3 * abs(np.log(lr / 0.3)) + rng.normal(0, 1)
        for seed in (0, 1):
            if seed == 1 and i == 0:
                continue  # one design still waits for its second seed
            rows.append({"model_id": mid, "recipe_hash": recipe.hash, "seed": seed, "status": "ok",
                         "error": base + rng.normal(0, 0.4), "device": "cpu x (32-true)",
                         "recipe": recipe.for_draw({"lr": lr}).replace(seed=seed).to_json()})  # fmt: skip
    store.append_rows("results", rows)
    out = build_report(store, tmp_path / "r.md")
    md = out.read_text()
    assert "| lr | drawn per model: log-uniform [0.1, 0.8] |" in md
    assert "0 to 1 (2 per design; errors are their mean)" in md
    header = next(line for line in md.splitlines() if line.startswith("| model | val err %"))
    assert header.rstrip(" |").endswith("| lr")
    assert "### Seed noise" in md
    s1 = next(line for line in md.splitlines() if line.startswith("| RegNetX@1M:2M |") and f"{recipe.hash}-s1" in line)
    assert s1.rstrip(" |").endswith("| 1"), s1  # the design without its seed-1 result
    assert "Spaces are compared within each flops regime only" in md  # RegNetX@1M:2M and @3M:6M: no pair
    assert "Every pair in words" not in md
