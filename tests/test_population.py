"""Populations are i.i.d. draws from the stated law, checked against an independent simulation.

The simulation below is written from the papers' definitions (DDS §3.1 and the reference sampler's
distributions, docs/design.md "Spaces"), not from regspace's sampler: per candidate it draws the raw
parameters, rejects by the space's constraints (ordering by plain rejection, not regspace's
stars-and-bars), then by the budget, and keeps every accepted draw — no de-duplication. Only the
per-design rules (widths, compatibility, complexity) are regspace's, and those are checked exactly
against the reference zoo elsewhere (test_zoo.py, test_complexity.py).

The spaces added by issue 21 (docs/design.md §2) are simulated the same way: NDS's per-stage lists with
the *number* of groups turned into a group width, RegNetX one design choice away, and the MBConv ladder,
whose non-decreasing 7-tuples are drawn by an exact sequential law (each entry from its conditional
distribution given the previous one, by counting the completions) instead of regspace's stars-and-bars,
because plain rejection keeps only about 1 row in 3,000 of them.

Every test is seeded, so it is deterministic; alpha only says how strict it is.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regspace.design import DesignBatch
from regspace.populate import sample_to_store
from regspace.presets import PRESETS, Budget
from regspace.spaces import SPACES
from regspace.spaces.regnet import regnet_stages
from regspace.store import Store

ALPHA = 1e-4  # per feature; ~200 comparisons in this file, so a true law fails one by chance with p ~ 2 %

ANYNET = {
    "d": np.arange(1, 17),
    "w": np.arange(8, 1025, 8),
    "b": np.array([1, 2, 4]),
    "g": np.array([1, 2, 4, 8, 16, 32]),
}
LADDER = {
    "a": ((), ()),
    "b": (("b",), ()),
    "c": (("b", "g"), ()),
    "d": (("b", "g"), ("w",)),
    "e": (("b", "g"), ("w", "d")),
}


# -- the reference sampler's scalar laws, vectorised (pycls sweep/random.py semantics) --------------
def law_uniform(rng, low, high, q, n):
    return np.floor(rng.uniform(low, high + q, n) / q) * q


def law_log_uniform(rng, low, high, q, n):
    f = np.exp(rng.uniform(math.log(low - min(q, low / 2)), math.log(high), n))
    return np.minimum(np.round(np.ceil(f / q) * q, 6), high)


def law_power2_uniform(rng, low, high, n):
    return 2.0 ** np.floor(rng.uniform(math.log2(low), math.log2(high) + 1, n))


def law_power2_or_log_uniform(rng, low, high, q, n):
    f = law_power2_uniform(rng, low, high, n)
    big = f >= q
    f[big] = law_log_uniform(rng, max(low, q), high, min(high, q), int(big.sum()))
    return f


REGNET_LAWS = {
    "RegNet": dict(d=(1, 63), w0=(8, 256), wa=(0.1, 256), wm=(1.5, 3), b=(1, 2, 4), g=(1, 2, 4, 8, 16, 32)),
    "RegNetX": dict(d=(12, 28), w0=(8, 256), wa=(8, 256), wm=(2, 3), b=(1,), g=None),
}
REGNET_LAWS["RegNetY"] = REGNET_LAWS["RegNetX"]
# DDS §4: RegNetX with one change (b = 1/4; g = 1; Swish, which changes no count, only the networks).
REGNET_LAWS["RegNetX_inv"] = {**REGNET_LAWS["RegNetX"], "b": (0.25,)}
REGNET_LAWS["RegNetX_dw"] = {**REGNET_LAWS["RegNetX"], "g": (1,)}
REGNET_LAWS["RegNetX_swish"] = REGNET_LAWS["RegNetX"]
REGNET_LAWS["RegNetX_dw_swish"] = REGNET_LAWS["RegNetX_dw"]  # DDS Fig. 15: both changes
ACTIVATION = {"RegNetX_swish": "silu", "RegNetX_dw_swish": "silu"}

# NDS Table 1 (CIFAR): per-stage lists; g is the NUMBER of groups; 3 stages, strides 1, 2, 2.
NDS_D, NDS_W = (1, 2, 3, 4, 6, 8, 12, 16, 24), (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)
RX_D = (1, 2, 4, 8, 16)
NDS_LAWS = {
    "Vanilla": dict(block="V", d=NDS_D, w=NDS_W),
    "ResNet": dict(block="R", d=NDS_D, w=NDS_W),
    "ResNeXt-A": dict(block="X", d=RX_D, w=(16, 32, 64, 128, 256), b=(1, 2, 4), groups=(1, 2, 4)),
    "ResNeXt-B": dict(block="X", d=RX_D, w=(64, 128, 256, 512, 1024), b=(1, 2, 4), groups=(1, 2, 4, 8, 16)),
}

# The MBConv ladder: EfficientNet-B0's 7 stages; per stage d, w, e, k; SE 0.25 of the input, Swish.
MB = {"d": np.arange(1, 5), "w": np.arange(8, 321, 8), "e": np.array([1.0, 3.0, 6.0]), "k": np.array([3, 5])}
MB_LADDER = {
    "a": ((), ()),
    "b": (("e",), ()),
    "c": (("e", "k"), ()),
    "d": (("e", "k"), ("w",)),
    "e": (("e", "k"), ("w", "d")),
}
EN_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def law_nondecreasing(rng, support, n, k):
    """n k-tuples uniform over the non-decreasing tuples of ``support``, drawn entry by entry: entry j
    takes index i >= the previous one with probability proportional to the number of non-decreasing
    completions of the remaining k - j - 1 entries from indices >= i, C(m - i + k - j - 2, k - j - 1)."""
    m = len(support)
    idx = np.zeros((n, k), dtype=int)
    lo = np.zeros(n, dtype=int)
    i = np.arange(m)
    for j in range(k):
        r = k - j - 1
        weight = np.array([math.comb(m - x + r - 1, r) for x in i], dtype=float)
        p = np.where(i[None, :] >= lo[:, None], weight[None, :], 0.0)
        cdf = np.cumsum(p, axis=1)
        u = rng.uniform(0, 1, n) * cdf[:, -1]
        idx[:, j] = (cdf <= u[:, None]).sum(axis=1)
        lo = idx[:, j]
    return support[idx]


def simulate(
    name: str, n: int, budget: Budget, preset, seed: int, batch: int = 200_000, groups_as_widths: bool = False
) -> pd.DataFrame:
    """n accepted draws of the stated law, one row per draw (repeats kept). ``groups_as_widths`` misreads
    NDS's number of groups as a group width (a wrong law, for the test that shows it is seen)."""
    rng = np.random.default_rng([seed, 12345])
    se = 0.25 if name.startswith(("Y_", "RegNetY", "MB_")) else 0.0
    out, got = [], 0
    extra = {}  # the design fields other than widths, depths, b, g
    stem = preset.stem
    while got < n:
        if name in NDS_LAWS:
            law = NDS_LAWS[name]
            raw = {p: rng.choice(law[p], (batch, 3)) for p in ("d", "w", "b", "groups") if p in law}
            k = 3
            ok = np.ones(batch, bool)
            w, d = raw["w"], raw["d"]
            b = raw["b"].astype(float) if "b" in raw else np.ones((batch, k))
            # the group width of NDS's number of groups: (w / b) / groups channels per group
            g = (np.rint(w / b).astype(int) // raw["groups"]) if "groups" in raw else np.ones((batch, k), int)
            if groups_as_widths:
                g = raw["groups"]
            extra = dict(block=law["block"], strides=(1, 2, 2))
        elif name.startswith("MB_"):
            shared, increasing = MB_LADDER[name[-1]]
            k = 7
            raw = {}
            for p, support in MB.items():
                if p in shared:
                    raw[p] = np.repeat(rng.choice(support, (batch, 1)), k, axis=1)
                elif p in increasing:
                    raw[p] = law_nondecreasing(rng, support, batch, k)
                else:
                    raw[p] = rng.choice(support, (batch, k))
            ok = np.ones(batch, bool)
            w, d = raw["w"], raw["d"]
            b, g = np.ones((batch, k)), np.ones((batch, k), int)
            stem = dataclasses.replace(preset.stem, width=32)
            extra = dict(block="MB", strides=EN_STRIDES, kernels=raw["k"], expansions=raw["e"], head_width=1280)
        elif name in REGNET_LAWS:
            law = REGNET_LAWS[name]
            raw = {
                "d": law_uniform(rng, *law["d"], 1, batch).astype(int),
                "w0": law_log_uniform(rng, *law["w0"], 8, batch),
                "wa": law_log_uniform(rng, *law["wa"], 0.1, batch),
                "wm": law_log_uniform(rng, *law["wm"], 0.001, batch),
            }
            raw["g"] = (
                law_power2_or_log_uniform(rng, 8, 128, 8, batch) if law["g"] is None else rng.choice(law["g"], batch)
            ).astype(int)
            raw["b"] = rng.choice(law["b"], batch).astype(float)
            w, d, ok = regnet_stages(raw["d"], raw["w0"], raw["wa"], raw["wm"], 4)
            k = 4
            b = np.repeat(raw["b"][:, None], k, 1)
            g = np.repeat(raw["g"][:, None], k, 1)
            extra = {"activation": ACTIVATION[name]} if name in ACTIVATION else {}
        else:
            shared, increasing = LADDER[name[-1]]
            raw = {}
            for p, support in ANYNET.items():
                cols = 1 if p in shared else 4
                raw[p] = np.repeat(rng.choice(support, (batch, cols)), 4 // cols, axis=1)
            ok = np.ones(batch, bool)
            for p in increasing:  # X_c conditioned on the ordering: plain rejection
                ok &= np.all(np.diff(raw[p], axis=1) >= 0, axis=1)
            w, d, b, g = raw["w"], raw["d"], raw["b"].astype(float), raw["g"]
            k = 4
        idx = np.flatnonzero(ok)
        per_stage = {f: np.asarray(v)[idx] if np.ndim(v) == 2 else v for f, v in extra.items()}
        designs = DesignBatch.from_sampled(w[idx], d[idx], b[idx], g[idx], se_ratio=se, stem=stem, **per_stage)
        cx = designs.complexity(preset.context)
        keep = np.flatnonzero(budget.contains(cx))[: n - got]
        got += len(keep)
        rows = {
            "flops": cx.flops[keep],
            "params": cx.params[keep],
            "acts": cx.acts[keep],
            "depth": designs.depths[keep].sum(1),
        }
        for i in range(k):
            rows[f"sw{i + 1}"] = designs.widths[keep, i]
            rows[f"sg{i + 1}"] = designs.group_widths[keep, i]
        if name in REGNET_LAWS:
            rows.update({p: raw[p][idx][keep] for p in ("d", "w0", "wa", "wm", "g")})
        if name.startswith("MB_"):
            rows.update({f"{p}{i}": raw[p][idx][keep, i - 1] for p in "ek" for i in (1, 7)})
        out.append(pd.DataFrame(rows))
    return pd.concat(out, ignore_index=True)


def sampled(tmp_path, name: str, n: int, budget: Budget, preset, seed: int, calls: int = 1) -> pd.DataFrame:
    """regspace's population, one row per draw (each stored network repeated by its multiplicity)."""
    store = Store.create(tmp_path / f"s-{name}")
    for _ in range(calls):  # several calls: the stream resumes, and repeats across calls count too
        sample_to_store(store, SPACES[name], n // calls, preset=preset, budget=budget, seed=seed)
    df = store.models()
    df = df.loc[df.index.repeat(df.multiplicity)].reset_index(drop=True)
    assert len(df) == n
    for i in range(len(df.stage_widths[0])):
        df[f"sw{i + 1}"] = df.stage_widths.map(lambda v, i=i: v[i])
        df[f"sg{i + 1}"] = df.stage_group_widths.map(lambda v, i=i: v[i])
    return df


def features(name):
    if name in NDS_LAWS:
        return ["flops", "params", "acts", "depth", "sw1", "sw2", "sw3", "sg1", "sg3"]
    if name.startswith("MB_"):
        widths = [f"sw{i}" for i in range(1, 8)]
        return ["flops", "params", "acts", "depth", *widths, "e1", "e7", "k1", "k7"]
    base = ["flops", "params", "acts", "depth", "sw1", "sw2", "sw3", "sw4", "sg1", "sg4"]
    return base + (["d", "w0", "wa", "wm", "g"] if name in REGNET_LAWS else [])


def worst_feature(ours: pd.DataFrame, theirs: pd.DataFrame, name: str) -> tuple[str, float]:
    """The feature whose two-sample KS test disagrees most, and its p-value."""
    ps = {f: stats.ks_2samp(ours[f].to_numpy(float), theirs[f].to_numpy(float)).pvalue for f in features(name)}
    f = min(ps, key=ps.get)
    return f, ps[f]


MNIST = PRESETS["mnist"]
# Budgets at which each family's acceptance is a few per cent, so the simulation stays fast.
CASES = {name: Budget.parse(flops="5M:40M") for name in SPACES if name[:2] in ("X_", "Y_")}
CASES.update(
    {
        "RegNet": Budget.parse(flops="2M:20M"),
        "RegNetX": Budget.parse(flops="5M:40M"),
        "RegNetY": Budget.parse(flops="5M:40M"),
        "RegNetX_inv": Budget.parse(flops="50M:100M"),
        "RegNetX_dw": Budget.parse(flops="5M:15M"),
        "RegNetX_swish": Budget.parse(flops="5M:40M"),
        "RegNetX_dw_swish": Budget.parse(flops="5M:15M"),
        "Vanilla": Budget.parse(flops="100M:300M"),
        "ResNet": Budget.parse(flops="100M:300M"),
        "ResNeXt-A": Budget.parse(flops="10M:30M"),
        "ResNeXt-B": Budget.parse(flops="100M:300M"),
        "MB_a": Budget.parse(flops="50M:150M"),
        "MB_b": Budget.parse(flops="20M:80M"),
        "MB_c": Budget.parse(flops="20M:80M"),
        "MB_d": Budget.parse(flops="10M:20M"),
        "MB_e": Budget.parse(flops="8M:20M"),
    }
)


def test_every_space_has_a_case():
    assert set(CASES) == set(SPACES)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_population_matches_a_simulation_of_the_law(tmp_path, name):
    n = 1200
    ours = sampled(tmp_path, name, n, CASES[name], MNIST, seed=3, calls=2)
    theirs = simulate(name, n, CASES[name], MNIST, seed=3)
    f, p = worst_feature(ours, theirs, name)
    assert p > ALPHA, f"{name}: {f} differs from the simulated law (KS p = {p:.2g})"


def test_the_sequential_law_is_uniform_over_ordered_tuples():
    """The simulation's own ordered law (used for MB_d, MB_e) against plain rejection, on a small case:
    3-tuples over 5 values (35 ordered tuples, each with probability 1/35)."""
    rng = np.random.default_rng(0)
    x = law_nondecreasing(rng, np.arange(5), 70_000, 3)
    assert (np.diff(x, axis=1) >= 0).all()
    _, counts = np.unique(x, axis=0, return_counts=True)
    assert len(counts) == math.comb(7, 3) and stats.chisquare(counts).pvalue > ALPHA


@pytest.mark.slow
def test_population_where_repeats_are_common(tmp_path):
    """RegNetX at the demo's budget holds only ~1,650 distinct networks: 3,000 draws repeat many of them.
    Keeping only distinct networks (sampling without replacement) fails this test by far."""
    budget = Budget.parse(flops="2M:4M")
    ours = sampled(tmp_path, "RegNetX", 3000, budget, MNIST, seed=0, calls=3)
    theirs = simulate("RegNetX", 3000, budget, MNIST, seed=0)
    distinct = ours.model_id.nunique()
    assert distinct < 2000  # repeats are common here: the test would see a de-duplicating sampler
    f, p = worst_feature(ours, theirs, "RegNetX")
    assert p > ALPHA, f"{f} differs from the simulated law (KS p = {p:.2g})"


@pytest.mark.slow
def test_the_simulation_sees_a_deduplicated_population(tmp_path):
    """The comparison above can fail: the same draws with repeats dropped (what a sampler that keeps
    distinct networks returns for -n = their number) are rejected at ALPHA."""
    budget = Budget.parse(flops="2M:4M")
    ours = sampled(tmp_path, "RegNetX", 3000, budget, MNIST, seed=0, calls=3).drop_duplicates("model_id")
    theirs = simulate("RegNetX", 3000, budget, MNIST, seed=0)
    assert worst_feature(ours, theirs, "RegNetX")[1] < ALPHA


def test_the_simulation_sees_groups_read_as_group_widths(tmp_path):
    """NDS draws the number of groups; a sampler that took those values as group widths (channels per
    group, regspace's g elsewhere) draws another law, and the comparison rejects it."""
    name = "ResNeXt-A"
    ours = sampled(tmp_path, name, 1200, CASES[name], MNIST, seed=3)
    wrong = simulate(name, 1200, CASES[name], MNIST, seed=3, groups_as_widths=True)
    assert worst_feature(ours, wrong, name)[1] < ALPHA
