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
from regspace.population import same_regime


def select(
    order: dict[str, list[str]], per_space: int, seed: int, keep: dict[str, list[str]] | None = None
) -> dict[str, list[str]]:
    """``per_space`` distinct networks of each space, drawn at random (seeded) from its draws: every
    draw equally likely, so a network drawn twice is twice as likely to be chosen, as in the population.

    ``keep``: an earlier selection (space → model ids). Its networks that are still among the space's draws
    stay, first and in their order; the rest is filled at random from the other draws. A selection made from
    more draws (a study analysed at fewer models than it once sampled) thus keeps the retrained networks it can
    and stays a uniform sample of the draws: the kept ones are uniform among the draws they fall in, the fill
    uniform among the rest. Raises RegspaceError when a space has fewer than ``per_space`` distinct networks."""
    import zlib

    out = {}
    for space, ids in order.items():
        distinct = list(dict.fromkeys(ids))
        if len(distinct) < per_space:
            raise RegspaceError(
                f"{space} has {len(distinct)} distinct networks, fewer than the {per_space} the fidelity check trains",
                hint="sample more models or lower per_space",
            )
        drawn = set(distinct)
        chosen: list[str] = [m for m in (keep or {}).get(space, []) if m in drawn][:per_space]
        rng = np.random.default_rng([seed, zlib.crc32(space.encode())])
        for i in rng.permutation(len(ids)):  # draws in random order; first occurrences are distinct networks
            if len(chosen) == per_space:
                break
            if ids[i] not in chosen:
                chosen.append(ids[i])
        out[space] = chosen
    return out


def select_top(short: dict[str, float], order: dict[str, list[str]], k: int, seed: int) -> tuple[list, list]:
    """The ``k`` best networks by brief error and a random control of ``k``: (top, control), model ids.

    ``short``: model id → brief error (models without one are never chosen); ``order``: space → its draws
    (model ids, repeats included). Top: the ``k`` lowest errors (ties by model id). Control: ``k`` distinct
    networks drawn at random (seeded) from the draws that have a brief error, every draw equally likely as
    in the population; it may share networks with the top, as a random search of ``k`` would. Raises
    RegspaceError when there are no more than ``k`` networks to choose from."""
    draws = [m for ids in order.values() for m in ids if m in short]
    distinct = list(dict.fromkeys(draws))
    if len(distinct) <= k:
        raise RegspaceError(
            f"only {len(distinct)} network(s) have a brief result: the top {k} would be all of them",
            hint="train more models or lower --top",
        )
    top = sorted(distinct, key=lambda m: (short[m], m))[:k]
    rng = np.random.default_rng([seed, 24])
    control: list[str] = []
    for i in rng.permutation(len(draws)):
        if draws[i] not in control:
            control.append(draws[i])
        if len(control) == k:
            break
    return top, control


def regime_groups(order: dict[str, list[str]]) -> dict[str | None, dict[str, list[str]]]:
    """``order`` (population → draws) split by flops regime (population.split_population): {regime: its
    populations' draws}, in order of first appearance; {None: order} when no population has a regime."""
    from regspace.population import split_population

    out: dict = {}
    for name, ids in order.items():
        out.setdefault(split_population(name)[1], {})[name] = ids
    return out


def select_top_by_regime(short: dict[str, float], order: dict[str, list[str]], k: int, seed: int) -> dict:
    """:func:`select_top` in each flops regime of ``order`` apart (a study's populations "<space>@<regime>"):
    errors of different budgets do not rank one another, and a random search runs within one budget. So
    the K best and K random of every regime. Returns {"k", "top", "control"} (every regime's, joined) and,
    with two or more regimes, "regimes": {regime: {"top", "control"}}."""
    groups = regime_groups(order)
    picked = {r: select_top(short, g, k, seed) for r, g in groups.items()}
    out = {"k": k, "top": [m for t, _ in picked.values() for m in t],
           "control": [m for _, c in picked.values() for m in c]}  # fmt: skip
    if len(groups) > 1:
        out["regimes"] = {r: {"top": t, "control": c} for r, (t, c) in picked.items()}
    return out


def spearman_boot(x, y, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's ρ of paired ``x``, ``y`` and its percentile bootstrap CI over the pairs (resampled with
    replacement, ``n_boot`` times, all at once: ranks by scipy.stats.rankdata, ties averaged as in
    scipy.stats.spearmanr). NaN for fewer than 4 pairs or a constant side; a resample with a constant
    side is left out of the CI."""
    from scipy.stats import rankdata, spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), float("nan")
    rho = float(spearmanr(x, y).statistic)
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    ok = den > 0
    r = (rx * ry).sum(axis=1)[ok] / den[ok]
    tail = (1 - level) / 2
    return rho, float(np.quantile(r, tail)), float(np.quantile(r, 1 - tail))


def top_k(pairs: pd.DataFrame, top: list[str], control: list[str], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Retraining the best: ``pairs`` (model_id, short, long: every retrained model with both errors),
    ``top`` the K best by brief error, ``control`` K random ones (:func:`select_top`).

    - stay: how many of the top K (with both errors) are among the K lowest long errors of all the retrained
      (top and control together; ties by model id), and ``chance``: the count a random order would give
      on average (top × K / retrained);
    - regret: the best long error among the top K minus the best among the control (negative: the top K
      hold the better model), in points;
    - Spearman of short against long inside the top K, with its bootstrap CI.
    Raises RegspaceError when the top K or the control have no model with both errors."""
    by = pairs.drop_duplicates("model_id").set_index("model_id")
    t = [m for m in top if m in by.index]
    c = [m for m in control if m in by.index]
    if not t or not c:
        raise RegspaceError(
            "the top K or the control sample have no model with a long result yet",
            hint="train the fidelity models first (regspace fidelity trains what is missing)",
        )
    k = len(top)
    long_top = set(sorted(by.index, key=lambda m: (by.long[m], m))[:k])
    stay = sum(m in long_top for m in t)
    rho, lo, hi = spearman_boot(by.short[t], by.long[t], n_boot=n_boot, seed=seed)
    best_top, best_control = float(by.long[t].min()), float(by.long[c].min())
    return {
        "k": k,
        "top_n": len(t),
        "control_n": len(c),
        "retrained": int(len(by)),
        "stay": int(stay),
        "chance": len(t) * k / len(by),
        "best_top": best_top,
        "best_control": best_control,
        "regret": best_top - best_control,
        "spearman": rho,
        "spearman_ci": [lo, hi],
    }


def top_sentences(r: dict) -> list[str]:
    lo, hi = r["spearman_ci"]
    rho = "not defined (fewer than 4 models or no spread)" if r["spearman"] != r["spearman"] else (
        f"{r['spearman']:.2f} (95 % CI {lo:.2f} to {hi:.2f})")  # fmt: skip
    better = "the top K hold the better model" if r["regret"] < 0 else (
        "the random sample holds the better model" if r["regret"] > 0 else "both hold equally good models")  # fmt: skip
    return [
        f"Of the {r['k']} best models by brief error, {r['stay']} (of {r['top_n']} retrained) stay in the top "
        f"{r['k']} of the long errors of all {r['retrained']} retrained models (with a random control sample of "
        f"{r['control_n']}; a random order would keep {r['chance']:.1f}).",
        f"Regret: the best long error among the top {r['k']} is {r['best_top']:.2f} %, among {r['control_n']} "
        f"random models {r['best_control']:.2f} %: {r['regret']:+.2f} points ({better}).",
        f"Inside the top {r['k']}, brief and long errors rank the models with Spearman {rho}.",
    ]


def spearman_by_epoch(curves: dict[str, list], final: dict[str, float], *, n_boot: int = 2000, seed: int = 0):
    """For every epoch k of the long runs: Spearman between each model's validation error after epoch k
    (``curves``: model id → per-epoch errors) and its final long error (``final``: model id → error), with
    bootstrap CIs (:func:`spearman_boot`), over the models whose curve reaches epoch k. One dict per epoch:
    {"epoch", "n", "spearman", "ci"}."""
    ids = [m for m in final if curves.get(m) is not None and len(curves[m])]
    longest = max((len(curves[m]) for m in ids), default=0)
    out = []
    for k in range(1, longest + 1):
        have = [m for m in ids if len(curves[m]) >= k]
        rho, lo, hi = spearman_boot([curves[m][k - 1] for m in have], [final[m] for m in have], n_boot=n_boot,
                                    seed=seed)  # fmt: skip
        out.append({"epoch": k, "n": len(have), "spearman": rho, "ci": [lo, hi]})
    return out


def epoch_sentence(rows: list[dict], brief: float) -> str:
    """How many epochs of the long recipe rank the models as the brief recipe does (Spearman ``brief``
    against the long final error): the first epoch from which every later epoch's ρ reaches it."""
    text = ", ".join(f"{r['epoch']}: {r['spearman']:.2f} ({r['ci'][0]:.2f}–{r['ci'][1]:.2f})" for r in rows
                     if r["spearman"] == r["spearman"])  # fmt: skip
    reach = None
    for r in reversed(rows):  # the start of the last run of epochs at or above the brief recipe's ρ
        if not r["spearman"] >= brief:
            break
        reach = r["epoch"]
    if reach is None or reach == rows[-1]["epoch"]:
        tail = f"no epoch before the last ranks them as well as the brief recipe (ρ = {brief:.2f})"
    else:
        tail = f"from epoch {reach} on, every epoch ranks them at least as well as the brief recipe (ρ = {brief:.2f})"
    return f"Spearman of the error after epoch k with the final long error, by epoch (95 % CI): {text}; {tail}."


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
        if not same_regime(a, b):  # populations of different budgets: trends compare them, not the order
            continue
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
    if entry.get("select") == "top" and entry.get("regimes"):  # chosen per flops regime: judged per regime
        out["top_by_regime"] = []
        for regime, sel in entry["regimes"].items():
            mine = pairs[pairs.model_id.isin(set(sel["top"]) | set(sel["control"]))]
            r = {"regime": regime, **top_k(mine, sel["top"], sel["control"], n_boot=n_boot)}
            out["top_by_regime"].append(r)
            out["sentences"] += [f"Regime {regime}: {s}" for s in top_sentences(r)]
    elif entry.get("select") == "top":
        out["top"] = top_k(pairs, entry["top"], entry["control"], n_boot=n_boot)
        out["sentences"] += top_sentences(out["top"])
    if "val_errors" in long:  # how many epochs of the long recipe would have ranked these models as well
        ok = long[long.model_id.isin(pairs.model_id) & (long.status == "ok")]
        curves = {m: c for m, c in zip(ok.model_id, ok.val_errors) if c is not None and not isinstance(c, float)}
        final = dict(zip(pairs.model_id, pairs.long))
        rows = spearman_by_epoch(curves, final, n_boot=n_boot)
        if rows:
            out["by_epoch"] = rows
            out["sentences"].append(epoch_sentence(rows, out["spearman"]))
    lr = entry.get("long_recipe", {})
    out["long_description"] = f"{lr.get('epochs')} epochs on {lr.get('train_size') or 'all'} images"
    return out
