"""The numbers behind an EDF plot: per-space error statistics and pairwise KS distances.

Pure: :func:`compare` returns a dict; :mod:`regspace.text` writes it as text.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from regspace.analysis.edf import ks_noise_level, ks_permutation_test, ks_test, normalization, normalized_weights
from regspace.analysis.findings import findings
from regspace.analysis.table import counts, draws, space_errors
from regspace.population import same_regime

PERCENTILES = (5, 25, 50, 75, 95)


def space_weights(
    groups: dict[str, pd.DataFrame], normalize: str | None, *, n_bins: int = 10, info: dict | None = None
):
    """Per-space EDF weights over the draws: None for a plain EDF whose networks were each drawn once,
    else multiplicity / draws (plain) or complexity-normalised by NDS's rule (:func:`normalization`:
    strictly inside the common range, every bin occupied in every space). ``info`` receives the
    normalisation actually used (range, bin count, and a note when bins had to be merged)."""
    if not normalize:
        return {s: None if (m := counts(g)).max(initial=1) == 1 else m / m.sum() for s, g in groups.items()}
    nonempty = {s: g for s, g in groups.items() if len(g)}
    norm = normalization({s: g[normalize].to_numpy(float) for s, g in nonempty.items()}, n_bins=n_bins)
    if info is not None:
        info.update(norm, quantity=normalize)
    rng = (norm["low"], norm["high"])
    return {
        s: normalized_weights(
            g[normalize].to_numpy(float), n_bins=norm["n_bins"], value_range=rng, counts=counts(g), strict=True
        )
        if len(g)
        else None
        for s, g in groups.items()
    }


def normalized_stats(errors, weights, m) -> dict:
    """The complexity-normalised sample's statistics, as its EDF shows them: n = draws with non-zero
    weight (a network drawn m times counts m times), networks with non-zero weight, min over them,
    the weighted mean and the weighted percentiles (the EDF's inverse: the smallest error at which
    F reaches p)."""
    e, w, m = np.asarray(errors, float), np.asarray(weights, float), np.asarray(m)
    kept = w > 0
    if not kept.any():
        return {"n": 0, "networks": 0}
    e, w, m = e[kept], w[kept], m[kept]
    order = np.argsort(e, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()

    def q(p):
        return float(e[order][min(len(e) - 1, int(np.searchsorted(cum, p / 100 - 1e-12)))])

    out = {"n": int(m.sum()), "networks": int(len(e)), "min": float(e.min()), "mean": float(np.average(e, weights=w))}
    out.update({("median" if p == 50 else f"p{p}"): q(p) for p in PERCENTILES})
    return out


def compare(
    df: pd.DataFrame,
    *,
    spaces: list[str] | None = None,
    normalize: str | None = None,
    n_bins: int = 10,
    fit_cache: dict | None = None,
) -> dict:
    """Per-space statistics, pairwise KS numbers and the Findings. ``fit_cache``: model id -> e_fit fit,
    read and filled (regspace.analysis_io keeps it in the store), so a rerun fits no model twice."""
    # pandas deep-copies a frame's attrs into every frame derived from it (thousands here); keep the
    # few scalars the statistics read, and the rest aside for the result
    attrs = dict(df.attrs)
    df = df.copy(deep=False)
    df.attrs = {k: attrs[k] for k in ("error", "epoch", "first_draws", "spaces", "seeds") if k in attrs}
    groups = space_errors(df, spaces)
    norm: dict = {}
    weights = space_weights(groups, normalize, n_bins=n_bins, info=norm)
    warnings = list(attrs.get("warnings", []))
    if norm.get("note"):
        warnings.append(norm["note"])
    rows = []
    for s, g in groups.items():
        all_rows = df[df.space == s]
        e = draws(g.sweep_error.to_numpy(float), counts(g))  # statistics over draws, repeats included
        m_all = counts(all_rows)
        row = {
            "space": s,
            "n": int(len(e)),
            "networks": int(len(g)),
            "sampled": int(m_all.sum()),
            "diverged": int(m_all[(all_rows.status == "diverged").to_numpy()].sum()),
            "failed": int(m_all[(all_rows.status == "failed").to_numpy()].sum()),
            "pending": int(m_all[(all_rows.status == "pending").to_numpy()].sum()),
        }
        if len(e):
            row.update(
                {
                    "min": float(e.min()),
                    "mean": float(e.mean()),
                    "median": float(np.median(e)),
                    **{f"p{p}": float(np.percentile(e, p)) for p in PERCENTILES if p != 50},
                }
            )
            if normalize and weights[s] is not None:
                row["normalized"] = normalized_stats(g.sweep_error.to_numpy(float), weights[s], counts(g))
            if "test_error" in g and g.test_error.notna().any():
                t = draws(g.test_error.to_numpy(float), counts(g))
                row["test_median"] = float(np.nanmedian(t))
        rows.append(row)
    pairs = []
    for a, b in itertools.combinations([s for s, g in groups.items() if len(g)], 2):
        if not same_regime(a, b):  # a study's flops regimes: spaces are compared within a budget (DDS Fig. 12)
            continue
        ea, eb = groups[a].sweep_error.to_numpy(float), groups[b].sweep_error.to_numpy(float)
        if not normalize and (weights[a] is not None or weights[b] is not None):
            # repeated networks: distance, p-value and noise level from one permutation test over the draws
            r = ks_permutation_test(draws(ea, counts(groups[a])), draws(eb, counts(groups[b])), seed=0)
            noise = {"noise": r.pop("noise"), "method": "permutation"}
            r.pop("n_perm")
        else:
            r = ks_test(ea, eb, weights[a], weights[b])
            # weighted (normalised) EDFs: Kolmogorov's value at the effective sizes
            noise = ks_noise_level(r["n_a"], r["n_b"])
        r.update(a=a, b=b, noise=noise["noise"], noise_method=noise["method"])
        pairs.append(r)
    return {
        "findings": findings(
            df, pairs, spaces=list(groups), weights=weights if normalize else None, fit_cache=fit_cache
        ),
        "recipe_hash": attrs.get("recipe_hash"),
        "normalize": normalize,
        "normalization": norm or None,
        "error": df.attrs.get("error", "error"),  # final validation error (default) or min_error (the papers')
        "epoch": df.attrs.get("epoch"),  # None: after the last epoch
        "first_draws": df.attrs.get("first_draws"),  # None: every draw
        "seeds": df.attrs.get("seeds"),  # ok seeds per design (min, max): errors are their means
        "warnings": warnings,
        "spaces": rows,
        "pairs": pairs,
    }
