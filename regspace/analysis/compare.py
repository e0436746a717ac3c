"""The numbers behind an EDF plot: per-space error statistics and pairwise KS distances."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from regspace.analysis.edf import ks_noise_level, ks_test, normalization, normalized_weights
from regspace.analysis.table import counts, draws, trained

PERCENTILES = (5, 25, 50, 75, 95)


def space_errors(df: pd.DataFrame, spaces: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Trained rows per space, in the table's space order."""
    spaces = spaces or df.attrs.get("spaces") or list(dict.fromkeys(df.space))
    ok = trained(df)
    return {s: ok[ok.space == s] for s in spaces}


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


def compare(
    df: pd.DataFrame, *, spaces: list[str] | None = None, normalize: str | None = None, n_bins: int = 10
) -> dict:
    groups = space_errors(df, spaces)
    norm: dict = {}
    weights = space_weights(groups, normalize, n_bins=n_bins, info=norm)
    warnings = list(df.attrs.get("warnings", []))
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
            if "test_error" in g and g.test_error.notna().any():
                t = draws(g.test_error.to_numpy(float), counts(g))
                row["test_median"] = float(np.nanmedian(t))
        rows.append(row)
    pairs = []
    for a, b in itertools.combinations([s for s, g in groups.items() if len(g)], 2):
        ea, eb = groups[a].sweep_error.to_numpy(float), groups[b].sweep_error.to_numpy(float)
        r = ks_test(ea, eb, weights[a], weights[b])
        if normalize:  # weighted EDFs: Kolmogorov's value at the effective sizes
            noise = ks_noise_level(r["n_a"], r["n_b"])
        elif weights[a] is not None or weights[b] is not None:  # repeated networks: permute the draws
            noise = ks_noise_level(
                0, draws_a=draws(ea, counts(groups[a])), draws_b=draws(eb, counts(groups[b])), seed=0
            )
        else:
            noise = ks_noise_level(r["n_a"], r["n_b"])
        r.update(a=a, b=b, noise=noise["noise"], noise_method=noise["method"])
        pairs.append(r)
    from regspace.analysis.findings import findings

    return {
        "findings": findings(df, pairs, spaces=list(groups)),
        "recipe_hash": df.attrs.get("recipe_hash"),
        "normalize": normalize,
        "normalization": norm or None,
        "error": df.attrs.get("error", "error"),  # final validation error (default) or min_error (the papers')
        "epoch": df.attrs.get("epoch"),  # None: after the last epoch
        "first_draws": df.attrs.get("first_draws"),  # None: every draw
        "warnings": warnings,
        "spaces": rows,
        "pairs": pairs,
    }


def error_title(result: dict) -> str:
    """What the errors are: final or best-epoch validation error, at which epoch, of which draws."""
    what = "best-epoch validation error" if result["error"] == "min_error" else "final validation error"
    if result.get("epoch"):
        what = ("best validation error up to" if result["error"] == "min_error" else "validation error after") + (
            f" epoch {result['epoch']}"
        )
    if result.get("first_draws"):
        what += f", first {result['first_draws']} draws per space"
    return what


def print_compare(result: dict) -> None:
    """`regspace compare`'s text: warnings, per-space statistics, KS table, Findings."""
    from regspace.console import print_table, say

    for w in result["warnings"]:
        say(f"regspace: warning: {w}")

    def f(r, k):
        return f"{r[k]:.2f}" if k in r else "-"

    print_table(
        ["space", "n", "networks", "diverged", "failed", "min", "p25", "median", "mean", "p75"],
        [
            [
                r["space"],
                r["n"],
                r.get("networks", 0),
                r["diverged"],
                r["failed"],
                *(f(r, k) for k in ("min", "p25", "median", "mean", "p75")),
            ]
            for r in result["spaces"]
        ],
        title=(
            f"{error_title(result)} (%), recipe {result['recipe_hash']}"
            if result["recipe_hash"]
            else "validation error (%): no results yet (run `regspace train`)"
        ),
        numeric={"n", "networks", "min", "p25", "median", "mean", "p75"},
    )
    if result["pairs"]:
        print_table(
            ["A", "B", "KS", "p-value", "noise (95% crit.)"],
            [[p["a"], p["b"], f"{p['ks']:.3f}", f"{p['p_value']:.3g}", f"{p['noise']:.3f}"] for p in result["pairs"]],
            title="Kolmogorov–Smirnov distance between EDFs",
            numeric={"KS", "p-value", "noise (95% crit.)"},
        )
    print("\nFindings")
    for line in result["findings"]["sentences"]:
        print(f"- {line}")
