"""Sampled populations are what docs/design.md §2 defines: structure on every row, marginals by chi-square."""

import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regspace.populate import sample_to_store
from regspace.presets import PRESETS
from regspace.spaces import SPACES, get_space
from regspace.spaces.anynet import draw_nondecreasing
from regspace.spaces.custom import space_from_dict
from regspace.spaces.distributions import Param
from regspace.store import Store

ALPHA = 1e-3  # fixed seeds: these tests are deterministic; alpha only sets how strict they are


def sampled_frame(tmp_path, name, n=300, preset="imagenet", budget=None, seed=0):
    store = Store.create(tmp_path / "s")
    p = PRESETS[preset]
    sample_to_store(store, SPACES[name], n, preset=p, budget=budget or p.budget, seed=seed)
    return pd.read_parquet(tmp_path / "s" / "models")  # plain pandas, no regspace code


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPACES))
def test_structure_of_every_row(tmp_path, name):
    df = sampled_frame(tmp_path, name)
    space = SPACES[name]
    # one row per distinct network of the call; the draws (repeats included) add up to n
    assert df.multiplicity.sum() == 300 and df.model_id.is_unique and (df.space == name).all()
    assert (df.draw_indices.map(len) == df.multiplicity).all()
    assert df.flops.between(360_000_000, 400_000_000).all()
    for _, r in df.iterrows():
        w, d = list(r.stage_widths), list(r.stage_depths)
        b, g = list(r.stage_bottleneck_ratios), list(r.stage_group_widths)
        stages = getattr(space, "stages", getattr(space, "num_stages", 4))  # NDS 3, MBConv 7 (test_new_spaces.py)
        assert len(w) == len(d) == len(b) == len(g) == stages and min(d) >= 1
        for wi, bi, gi in zip(w, b, g):
            assert round(wi / bi) % gi == 0  # compatible bottleneck and group widths
        assert sum(d) == r.depth
        assert r.block == space.block and r.se_ratio == space.se_ratio
    if space.family == "anynet":
        for p in "dwbg":
            cols = df[[f"{p}{i}" for i in range(1, 5)]].to_numpy()
            if p in space.shared:
                assert (cols == cols[:, :1]).all()
                assert (df[p] == cols[:, 0]).all()
            if p in space.increasing:
                assert (np.diff(cols, axis=1) >= 0).all()
        assert df[[f"w{i}" for i in range(1, 5)]].to_numpy().min() >= 8
        assert (df[[f"w{i}" for i in range(1, 5)]].to_numpy() % 8 == 0).all()
        assert df[[f"d{i}" for i in range(1, 5)]].to_numpy().max() <= 16
        assert set(df[[f"b{i}" for i in range(1, 5)]].to_numpy().ravel()) <= {1, 2, 4}
        assert set(df[[f"g{i}" for i in range(1, 5)]].to_numpy().ravel()) <= {1, 2, 4, 8, 16, 32}
    elif space.family == "regnet":
        assert (df.w0 % 8 == 0).all()
        assert np.allclose(df.wa * 10, np.round(df.wa * 10))
        assert np.allclose(df.wm * 1000, np.round(df.wm * 1000))
        for p in space.params():
            if p.kind != "choice":
                assert df[p.name].between(p.low, p.high).all(), p.name
        # the stages really come from (d, w0, wa, wm)
        from regspace.spaces.regnet import regnet_design

        for _, r in df.head(25).iterrows():
            des = regnet_design(r.d, r.w0, r.wa, r.wm, b=r.b, g=r.g, se_ratio=r.se_ratio)
            assert list(des.widths) == list(r.stage_widths) and list(des.depths) == list(r.stage_depths)


def chi2_uniform(values, support):
    counts = Counter(values)
    assert set(counts) <= set(support)
    obs = [counts.get(v, 0) for v in support]
    return stats.chisquare(obs).pvalue


@pytest.mark.parametrize("name", ["X_a", "X_b", "X_c", "Y_a"])
def test_unconstrained_anynet_marginals(name):
    space = SPACES[name]
    raw = space.draw(np.random.default_rng(123), 60_000)
    assert chi2_uniform(raw["d"][:, 2].tolist(), list(range(1, 17))) > ALPHA
    assert chi2_uniform(raw["w"][:, 1].tolist(), list(range(8, 1025, 8))) > ALPHA
    assert chi2_uniform(raw["b"][:, 3].tolist(), [1, 2, 4]) > ALPHA
    assert chi2_uniform(raw["g"][:, 0].tolist(), [1, 2, 4, 8, 16, 32]) > ALPHA
    # independence across stages unless shared
    same_b = np.mean(raw["b"][:, 0] == raw["b"][:, 1])
    assert same_b == 1.0 if "b" in space.shared else abs(same_b - 1 / 3) < 0.02


def multiset_space(increasing):
    return space_from_dict(
        {
            "name": "tiny",
            "base": "X_c",
            "stages": 3,
            "increasing": increasing,
            "params": {"w": {"dist": "uniform", "low": 8, "high": 32, "q": 8}},
        }
    )


def test_nondecreasing_is_uniform_over_ordered_tuples():
    """X_d/X_e law: uniform over non-decreasing tuples (20 multisets of size 3 from 4 widths)."""
    space = multiset_space(["w"])
    raw = space.draw(np.random.default_rng(7), 40_000)
    rows = [tuple(r) for r in raw["w"][raw["_valid"]].tolist()]
    support = sorted(
        {tuple(sorted(t)) for t in np.array(np.meshgrid(*[[8, 16, 24, 32]] * 3)).T.reshape(-1, 3).tolist()}
    )
    assert len(support) == math.comb(4 + 3 - 1, 3) == 20
    assert all(a <= b <= c for a, b, c in rows)
    assert chi2_uniform(rows, support) > ALPHA


def test_sorting_iid_draws_would_fail_the_same_test():
    """The test above can fail: sorted i.i.d. draws over-weight tuples with distinct values."""
    rng = np.random.default_rng(7)
    x = np.sort(rng.choice([8, 16, 24, 32], size=(40_000, 3)), axis=1)
    support = sorted({tuple(r) for r in x.tolist()})
    assert chi2_uniform([tuple(r) for r in x.tolist()], support) < 1e-12


def test_nondecreasing_rejection_fallback_for_non_uniform_laws():
    p = Param("w", "log_uniform", 8, 64, 8)
    x, ok = draw_nondecreasing(np.random.default_rng(0), p, 20_000, 2)
    iid = p.draw(np.random.default_rng(1), (200_000, 2))
    keep = iid[iid[:, 0] <= iid[:, 1]]
    a = Counter(map(tuple, x[ok].tolist()))
    b = Counter(map(tuple, keep.tolist()))
    support = sorted(b)
    obs = np.array([a.get(s, 0) for s in support])
    exp = np.array([b[s] for s in support], dtype=float)
    assert stats.chisquare(obs, exp / exp.sum() * obs.sum()).pvalue > ALPHA


def log_uniform_pmf(low, high, q):
    """The reference sampler's law: exp(U(log(low - q*), log(high))) ceiled to q, q* = min(q, low/2)."""
    values = np.arange(round(low / q), round(high / q) + 1) * q
    lower = np.concatenate([[low - min(q, low / 2)], values[:-1]])
    p = (np.log(values) - np.log(lower)) / (math.log(high) - math.log(low - min(q, low / 2)))
    return values, p


@pytest.mark.parametrize("name", ["RegNetX", "RegNetY", "RegNet"])
def test_regnet_marginals(name):
    space = SPACES[name]
    raw = space.draw(np.random.default_rng(5), 80_000)
    d = space.d
    assert chi2_uniform(raw["d"].tolist(), list(range(int(d.low), int(d.high) + 1))) > ALPHA
    for pname in ("w0", "wa", "wm"):
        par = getattr(space, pname)
        values, p = log_uniform_pmf(par.low, par.high, par.q)
        # group consecutive values into <= 25 bins of the exact law, then chi-square
        idx = np.rint((raw[pname] - values[0]) / par.q).astype(int)
        assert idx.min() >= 0 and idx.max() < len(values)
        groups = np.minimum(np.arange(len(values)) * 25 // len(values), 24)
        obs = np.bincount(groups[idx], minlength=groups.max() + 1)
        exp = np.bincount(groups, weights=p) * len(idx)
        assert stats.chisquare(obs, exp).pvalue > ALPHA, pname
    if name != "RegNet":
        gv, gp = log_uniform_pmf(8, 128, 8)  # power2 draws are all >= q = 8: always log-uniform
        counts = Counter(raw["g"].tolist())
        assert stats.chisquare([counts.get(int(v), 0) for v in gv], gp * len(raw["g"])).pvalue > ALPHA
        assert set(raw["b"].tolist()) == {1}
    else:
        assert chi2_uniform(raw["g"].tolist(), [1, 2, 4, 8, 16, 32]) > ALPHA


def test_power2_or_log_uniform_below_q_keeps_powers_of_two():
    p = Param("g", "power2_or_log_uniform", 1, 128, 8)
    x = p.draw(np.random.default_rng(0), 100_000)
    small = x[x < 8]
    assert set(small.tolist()) == {1, 2, 4}
    # each power of two below q has probability 1/8 (eight powers 1..128)
    assert abs(np.mean(x == 1) - 1 / 8) < 0.005
    assert (x[x >= 8] % 8 == 0).all()


def test_quantised_decimals_are_exact():
    p = Param("wa", "log_uniform", 8, 256, 0.1)
    x = p.draw(np.random.default_rng(0), 10_000)
    texts = [repr(float(v)) for v in x[:2000]]
    assert all(len(t.split(".")[1]) == 1 for t in texts), [t for t in texts if len(t.split(".")[1]) != 1][:3]


def test_aliases_and_suggestions():
    from regspace.errors import UsageProblem

    assert get_space("AnyNetX_C").name == get_space("anynetx_c").name == get_space("x_c").name == "X_c"
    assert get_space("anynetxe").name == "X_e" and get_space("regnety").name == "RegNetY"
    with pytest.raises(UsageProblem, match="did you mean X_c"):
        get_space("X_cc")


def test_every_space_is_listed(run_cli):
    code, out, _ = run_cli("spaces")
    assert code == 0
    for name in ["X_a", "X_b", "X_c", "X_d", "X_e", "RegNet", "RegNetX", "RegNetY"]:
        assert f"\n{name}\t" in out


def test_toml_space(tmp_path, run_cli):
    f = tmp_path / "narrow.toml"
    f.write_text(
        'name = "narrow"\nbase = "X_d"\n[params.w]\ndist = "uniform"\nlow = 8\nhigh = 256\nq = 8\n'
        '[budget]\nflops = "1M:5M"\n'
    )
    code, out, err = run_cli("sample", "--space", f, "-n", 30, "--store", tmp_path / "s")
    assert code == 0, err
    df = pd.read_parquet(tmp_path / "s" / "models")
    assert (df.space == "narrow").all() and df.flops.between(1e6, 5e6).all()
    assert df[[f"w{i}" for i in range(1, 5)]].to_numpy().max() <= 256
    assert (np.diff(df[[f"w{i}" for i in range(1, 5)]].to_numpy(), axis=1) >= 0).all()


@pytest.mark.parametrize(
    "text,msg",
    [
        ('name = "X_c"', "built-in"),
        ('name = "a"\nfamily = "resnet"', "family"),
        ('name = "a"\n[params.q]\nlow = 1', "unknown parameter"),
        ('name = "a"\nstages = 9', "stages"),
        ('name = "a"\n[params.w]\ndist = "log_uniform"\nlow = 0\nhigh = 8\nq = 8', "low > 0"),
        ("name = ", "not valid TOML"),
    ],
)
def test_bad_toml_spaces(tmp_path, run_cli, text, msg):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    code, _, err = run_cli("sample", "--space", f, "--store", tmp_path / "s")
    assert code != 0 and msg in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------- TOML ranges the quantum does not divide (issue 21 §3)


def w_space(w, increasing=()):
    return space_from_dict(
        {"name": "qw", "base": "X_c", "stages": 3, "increasing": list(increasing), "params": {"w": w}}
    )


@pytest.mark.parametrize("increasing", [[], ["w"]])
@pytest.mark.parametrize("dist", ["uniform", "log_uniform"])
def test_quantum_that_does_not_divide_the_range_is_refused_in_one_line(tmp_path, run_cli, dist, increasing):
    f = tmp_path / "q.toml"
    f.write_text(
        f'name = "q"\nbase = "X_c"\nincreasing = {increasing!r}\n'
        f'[params.w]\ndist = "{dist}"\nlow = 12\nhigh = 100\nq = 8\n'.replace("'", '"')
    )
    code, _, err = run_cli("sample", "--space", f, "-n", 5, "--store", tmp_path / "s")
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "multiples of q = 8" in err and "low = 16, high = 96" in err


@pytest.mark.parametrize(
    "kind,low,high,q,ok",
    [
        ("uniform", 16, 96, 8, True),
        ("uniform", 0.25, 1, 0.25, True),
        ("uniform", 0.3, 1, 0.25, False),
        ("uniform", 1, 16, 1, True),
        ("log_uniform", 8, 256, 0.1, True),
        ("log_uniform", 8, 250, 8, False),
        ("power2_uniform", 8, 128, 8, True),
        ("power2_uniform", 1, 128, 8, False),  # floor(1 / 8) * 8 = 0
        ("power2_or_log_uniform", 1, 128, 8, True),  # powers below q are kept: the reference's rule
        ("power2_or_log_uniform", 1, 4, 8, True),  # q > high: never quantised
    ],
)
def test_quantum_rule_and_every_draw_inside_the_bounds(kind, low, high, q, ok):
    from regspace.errors import UsageProblem

    if not ok:
        with pytest.raises(UsageProblem, match="multiple"):
            Param("w", kind, low, high, q)
        return
    x = Param("w", kind, low, high, q).draw(np.random.default_rng(3), 20_000)
    assert x.min() >= low and x.max() <= high
    small = kind == "power2_or_log_uniform" and q > 1
    on_grid = np.isclose(np.round(x / q) * q, x) | (small & (x < q))
    assert on_grid.all()


def enumerate_uniform(low, high, q):
    """The stated law, independently: every multiple of q in [low, high], by plain counting."""
    out, k = [], math.ceil(low / q)
    while k * q <= high:
        out.append(k * q)
        k += 1
    return out


@pytest.mark.parametrize("increasing", [[], ["w"]])
def test_declared_uniform_range_is_the_sampled_set_with_or_without_ordering(increasing):
    space = w_space({"dist": "uniform", "low": 16, "high": 96, "q": 8}, increasing)
    raw = space.draw(np.random.default_rng(11), 60_000)
    w = raw["w"][raw["_valid"]]
    support = enumerate_uniform(16, 96, 8)
    assert set(w.ravel().tolist()) == set(support)
    if not increasing:
        assert chi2_uniform(w[:, 0].tolist(), support) > ALPHA
    else:  # uniform over the ordered triples of the same 11 values (stars and bars: C(13, 3) = 286)
        rows = [tuple(r) for r in w.tolist()]
        ordered = [t for t in itertools.product(support, repeat=3) if t[0] <= t[1] <= t[2]]
        assert len(ordered) == math.comb(len(support) + 2, 3)
        assert chi2_uniform(rows, ordered) > ALPHA


def test_declared_log_uniform_range_against_its_pmf():
    space = w_space({"dist": "log_uniform", "low": 16, "high": 96, "q": 8})
    w = space.draw(np.random.default_rng(12), 60_000)["w"][:, 1]
    values, p = log_uniform_pmf(16, 96, 8)
    counts = Counter(w.tolist())
    assert set(counts) <= set(values.tolist())
    assert stats.chisquare([counts.get(v, 0) for v in values.tolist()], p * len(w)).pvalue > ALPHA
