"""Is brief training a faithful proxy? Short-recipe errors against long-recipe errors of the same models.

The papers rest their method on brief training ranking models as full training would (DDS §3, NDS §4);
`regspace fidelity` measures it: rank correlations (Spearman, Kendall) with bootstrap CIs over the
paired models, and, per pair of spaces, whether the short and long errors order the spaces the same
way (by median, and by the direction of the KS distance). Pure: the store's record of a check is
kept by :mod:`regspace.analysis_io`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from regspace.errors import RegspaceError


def select(order: dict[str, list[str]], per_space: int, seed: int) -> dict[str, list[str]]:
    """``per_space`` distinct networks of each space, drawn at random (seeded) from its draws: every
    draw equally likely, so a network drawn twice is twice as likely to be chosen, as in the population."""
    import zlib

    out = {}
    for space, ids in order.items():
        distinct = list(dict.fromkeys(ids))
        if len(distinct) < per_space:
            raise RegspaceError(
                f"{space} has {len(distinct)} distinct networks, fewer than the {per_space} the fidelity check trains",
                hint="sample more models or lower per_space",
            )
        rng = np.random.default_rng([seed, zlib.crc32(space.encode())])
        chosen: list[str] = []
        for i in rng.permutation(len(ids)):  # draws in random order; first occurrences are distinct networks
            if ids[i] not in chosen:
                chosen.append(ids[i])
            if len(chosen) == per_space:
                break
        out[space] = chosen
    return out


def ks_direction(a: np.ndarray, b: np.ndarray) -> int:
    """+1 when A's EDF lies above B's where they differ most (A has more low-error models: A better),
    −1 when below, 0 when the EDFs coincide."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    d = fa - fb
    i = int(np.argmax(np.abs(d)))
    return int(np.sign(d[i]))


def _ci(short, long, statistic, n_boot: int, seed: int) -> tuple[float, float]:
    from scipy.stats import bootstrap

    if len(short) < 4 or np.ptp(short) == 0 or np.ptp(long) == 0:
        return (float("nan"), float("nan"))
    r = bootstrap(
        (short, long),
        lambda x, y: statistic(x, y).statistic,
        paired=True,
        vectorized=False,
        n_resamples=n_boot,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


def paired_errors(short: pd.DataFrame, long: pd.DataFrame, models: dict[str, list[str]]) -> pd.DataFrame:
    """One row per selected model with both errors (status ok in both runs): space, model_id, short, long."""
    s = short.set_index("model_id")
    lg = long.set_index("model_id")
    rows = []
    for space, ids in models.items():
        for mid in ids:
            if mid in s.index and mid in lg.index:
                a, b = s.loc[mid], lg.loc[mid]
                if a["status"] == "ok" and b["status"] == "ok":
                    rows.append(
                        {"space": space, "model_id": mid, "short": float(a["error"]), "long": float(b["error"])}
                    )
    return pd.DataFrame(rows, columns=["space", "model_id", "short", "long"])


def analyse(pairs: pd.DataFrame, *, selected: int, n_boot: int = 2000, seed: int = 0) -> dict:
    """Rank correlations with 95 % bootstrap CIs, and whether short and long order the spaces alike."""
    from scipy.stats import kendalltau, spearmanr

    if len(pairs) < 3:
        raise RegspaceError(
            f"only {len(pairs)} model(s) have both a short and a long result",
            hint="train the fidelity models first (regspace fidelity trains what is missing)",
        )
    x, y = pairs.short.to_numpy(float), pairs.long.to_numpy(float)
    out = {
        "n": int(len(pairs)),
        "selected": int(selected),
        "spearman": float(spearmanr(x, y).statistic),
        "spearman_ci": _ci(x, y, spearmanr, n_boot, seed),
        "kendall": float(kendalltau(x, y).statistic),
        "kendall_ci": _ci(x, y, kendalltau, n_boot, seed),
        "median_shift": float(np.median(y - x)),  # long minus short: how much the longer training gains
    }
    spaces = list(dict.fromkeys(pairs.space))
    per_space = []
    for s in spaces:
        g = pairs[pairs.space == s]
        row = {
            "space": s,
            "n": int(len(g)),
            "short_median": float(g.short.median()),
            "long_median": float(g.long.median()),
        }
        if len(g) >= 3 and np.ptp(g.short) > 0 and np.ptp(g.long) > 0:
            row["spearman"] = float(spearmanr(g.short, g.long).statistic)
        per_space.append(row)
    orders = []
    for a, b in itertools.combinations(spaces, 2):
        ga, gb = pairs[pairs.space == a], pairs[pairs.space == b]
        med_s = int(np.sign(gb.short.median() - ga.short.median()))  # +1: A has the lower median (A better)
        med_l = int(np.sign(gb.long.median() - ga.long.median()))
        ks_s = ks_direction(ga.short.to_numpy(float), gb.short.to_numpy(float))
        ks_l = ks_direction(ga.long.to_numpy(float), gb.long.to_numpy(float))
        orders.append({"a": a, "b": b, "median_short": med_s, "median_long": med_l, "median_agrees": med_s == med_l,
                       "ks_short": ks_s, "ks_long": ks_l, "ks_agrees": ks_s == ks_l})  # fmt: skip
    out["spaces"] = per_space
    out["orders"] = orders
    out["sentences"] = sentences(out)
    return out


def _better(a: str, b: str, sign: int) -> str:
    return f"{a} better" if sign > 0 else f"{b} better" if sign < 0 else "tied"


def sentences(r: dict) -> list[str]:
    lo, hi = r["spearman_ci"]
    klo, khi = r["kendall_ci"]
    lead = (
        f"Short and long training rank {r['n']} models (of {r['selected']} selected) with Spearman "
        f"{r['spearman']:.2f} (95 % CI {lo:.2f} to {hi:.2f}) and Kendall {r['kendall']:.2f} "
        f"({klo:.2f} to {khi:.2f}); the longer training lowers the median error by {-r['median_shift']:.2f} points."
    )
    out = [lead]
    for o in r["orders"]:
        agree = o["median_agrees"] and o["ks_agrees"]
        what = "agree" if agree else "disagree"
        out.append(
            f"{o['a']} vs {o['b']}: short and long training {what} on the order "
            f"(median: short {_better(o['a'], o['b'], o['median_short'])}, long "
            f"{_better(o['a'], o['b'], o['median_long'])}; KS direction: short "
            f"{_better(o['a'], o['b'], o['ks_short'])}, long {_better(o['a'], o['b'], o['ks_long'])})."
        )
    return out


def check_result(short: pd.DataFrame, long: pd.DataFrame, entry: dict, *, n_boot: int = 2000) -> dict:
    """The analysis of a recorded fidelity check: ``short`` and ``long`` hold each run's results
    (model_id, status, error); ``entry`` is the record (short and long recipe hashes, the long recipe's
    fields, the selected models per space). Raises RegspaceError when fewer than 3 models have both."""
    pairs = paired_errors(short, long, entry["models"])
    selected = sum(len(v) for v in entry["models"].values())
    out = analyse(pairs, selected=selected, n_boot=n_boot)
    out.update(short_recipe=entry["short"], long_recipe=entry["long"], pairs=pairs.to_dict("records"))
    lr = entry.get("long_recipe", {})
    out["long_description"] = f"{lr.get('epochs')} epochs on {lr.get('train_size') or 'all'} images"
    return out
