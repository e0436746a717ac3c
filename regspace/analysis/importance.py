"""Which parameters matter: per space, each sampled parameter's importance for the error (issue 24 §5).

A space's trained draws become Optuna trials (:func:`optuna.trial.create_trial`, one per draw, its error as
the value, the parameters with distributions taken from the space's laws) and one of Optuna's evaluators
scores each parameter:

- ``fanova`` (:class:`optuna.importance.FanovaImportanceEvaluator`; needs scikit-learn): a random forest is
  fitted to the error and each number is the share of the forest's error variance that the parameter
  explains alone (its main effect, Hutter et al. 2014). The numbers are NOT normalised here (Optuna's
  ``get_param_importances`` would scale them to sum 1): their sum is at most 1, the rest being
  interactions and the noise the forest fits;
- ``ped-anova`` (:class:`optuna.importance.PedAnovaImportanceEvaluator`): how much the parameter's
  distribution among the best 10 % of draws differs from its distribution over all draws (a Pearson
  divergence; 0: no difference). Not a share of variance; fast, and needs nothing beyond Optuna.

Uncertainty: a bootstrap over draws (resample the space's draws with replacement, recompute; ``n_boot``
resamples, each one evaluator fit) gives a 95 % percentile interval per parameter. Claims: a parameter is
said to matter only when its importance beats the largest importance that *any* parameter gets with the
errors shuffled (``n_perm`` shuffles, a max-statistic permutation test: the chance of naming any parameter
when none matters is at most ``alpha``, over all parameters at once). With no effect the result says so.

Cost: (1 + n_boot + n_perm) evaluator fits per space; a fANOVA fit of 64 draws and 8 parameters with
16 trees takes about 0.4 s on one core, a PED-ANOVA fit about 0.03 s.

Pure: frames in, dicts out; Optuna is imported inside the functions (no store, torch or plotting).
"""

from __future__ import annotations

import importlib.util
import time
import warnings

import numpy as np
import pandas as pd

from regspace.analysis.findings import ALPHA, PARAMS
from regspace.analysis.table import counts
from regspace.errors import RegspaceError, UsageProblem

METHODS = ("fanova", "ped-anova")
N_TREES = 16  # fANOVA's forest: 16 trees give the importances of 64 (within 0.01 here) at a quarter of the cost
N_BOOT = 50
N_PERM = 49  # the smallest permutation p-value is 1 / (1 + N_PERM) = 0.02
MIN_DRAWS = 8
_LOG_KINDS = ("log_uniform", "power2_uniform", "power2_or_log_uniform")

MEANING = {
    "fanova": (
        "fANOVA (Optuna, a {trees}-tree random forest fitted to the error): each number is the share of the "
        "error variance that the parameter explains alone (its main effect), not normalised; the shares sum to "
        "at most 1, the rest is interactions and noise"
    ),
    "ped-anova": (
        "PED-ANOVA (Optuna): how much the parameter's distribution among the best 10 % of draws differs from "
        "its distribution over all draws (Pearson divergence; 0: none); not a share of variance, not normalised"
    ),
}


def has_fanova() -> bool:
    """Whether fANOVA can run: Optuna's forest is scikit-learn's (the optional ``importance`` extra)."""
    return importlib.util.find_spec("sklearn") is not None


def resolve_method(method: str) -> str:
    """``auto``: fanova when scikit-learn is installed, else ped-anova. Raises UsageProblem for an unknown
    method, or fanova without scikit-learn."""
    if method == "auto":
        return "fanova" if has_fanova() else "ped-anova"
    if method not in METHODS:
        raise UsageProblem(f"unknown importance method {method!r}; use auto, {' or '.join(METHODS)}")
    if method == "fanova" and not has_fanova():
        raise UsageProblem(
            "fANOVA needs scikit-learn, which is not installed",
            hint="pip install 'regspace[importance]', or use --method ped-anova",
        )
    return method


def space_laws(space: str, recipe: dict | None = None) -> dict:
    """The laws of a space's parameters ({name: Param}: the space's own, resolved by name, and the recipe
    fields its recipe drew); {} for a space regspace cannot resolve by name (its frame then decides). A
    study's population "<space>@<regime>" has its space's laws."""
    from regspace.population import split_population
    from regspace.spaces import get_space
    from regspace.spaces.hparams import from_json

    laws = {}
    try:
        laws = {p.name: p for p in get_space(split_population(space)[0]).params()}
    except RegspaceError:
        pass
    laws.update({p.name: p for p in from_json((recipe or {}).get("sampled"))})
    return laws


def distributions(g: pd.DataFrame, laws: dict | None = None) -> dict:
    """{column: Optuna distribution} of the parameters that vary among ``g``'s rows: the columns of
    :data:`regspace.analysis.findings.PARAMS` (the design's and the drawn recipe fields), without columns
    that repeat another (a shared per-stage parameter). Log scale where the law is log-uniform or power-of-2
    (without a law: positive values spanning a factor of 8 or more); bounds: the law's, widened to the data."""
    from optuna.distributions import FloatDistribution, IntDistribution

    laws = laws or {}
    out = {}
    kept: list[np.ndarray] = []
    for c in PARAMS:
        if c not in g or g[c].isna().any() or g[c].nunique() < 2:
            continue
        v = g[c].to_numpy(float)
        if any(np.array_equal(v, k) for k in kept):
            continue  # g1 … g4 of a space that shares g: one parameter, not four
        kept.append(v)
        law = laws.get(c) or laws.get(c.rstrip("0123456789"))
        lo, hi = float(v.min()), float(v.max())
        if law is not None and law.kind != "choice":
            lo, hi = min(lo, float(law.low)), max(hi, float(law.high))
        log = lo > 0 and (law.kind in _LOG_KINDS if law is not None else hi / lo >= 8)
        if np.all(v == np.round(v)) and (law is None or law.integer):
            out[c] = IntDistribution(int(lo), int(hi), log=log and lo >= 1)
        else:
            out[c] = FloatDistribution(lo, hi, log=log)
    return out


class _Trials:
    """What Optuna's importance evaluators read of a Study: its complete trials and its one direction
    (minimise). A real Study's in-memory storage deep-copies every trial added to it, nine tenths of a fit's
    time at 5,000 draws; the evaluators only read the trials, so they are handed over as they are. Each gets
    its own id and number, 0, 1, ..., as the storage would number them (PED-ANOVA tells trials apart by id)."""

    def __init__(self, trials: list):
        from optuna.study import StudyDirection

        self.trials = trials
        self.directions = [StudyDirection.MINIMIZE]

    def _is_multi_objective(self) -> bool:
        return False

    def get_trials(self, deepcopy: bool = True, states=None) -> list:
        return [t for t in self.trials if states is None or t.state in states]


def _draw_trials(x: dict, y: np.ndarray, dists: dict) -> list:
    """One complete Optuna trial per draw (:func:`optuna.trial.create_trial`): its parameters and error."""
    import optuna
    from optuna.distributions import IntDistribution

    cols = list(dists)
    cast = {c: int if isinstance(dists[c], IntDistribution) else float for c in cols}
    return [
        optuna.trial.create_trial(params={c: cast[c](x[c][i]) for c in cols}, distributions=dists, value=float(y[i]))
        for i in range(len(y))
    ]


def _numbered(trials: list, rows, values=None) -> list:
    """Copies of ``trials[rows]`` numbered 0, 1, ... (``values``: their errors replaced, row by row)."""
    import copy

    out = []
    for k, i in enumerate(rows):
        t = copy.copy(trials[i])
        t._trial_id = t.number = k
        if values is not None:
            t._values = [float(values[k])]
        out.append(t)
    return out


def _evaluate(x: dict, y: np.ndarray, dists: dict, method: str, seed: int, trials: list | None = None) -> np.ndarray:
    """One evaluator fit: the importance of each column of ``dists`` (in its order). ``trials``: the draws
    as trials (:func:`_draw_trials` of ``x`` and ``y``, numbered), when the caller has them already."""
    import optuna

    cols = list(dists)
    if trials is None:
        trials = _numbered(_draw_trials(x, y, dists), range(len(y)))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "fanova":
                ev = optuna.importance.FanovaImportanceEvaluator(n_trees=N_TREES, seed=seed)
            else:
                ev = optuna.importance.PedAnovaImportanceEvaluator()
            got = ev.evaluate(_Trials(trials))
    finally:
        optuna.logging.set_verbosity(verbosity)
    return np.array([float(got.get(c, 0.0)) for c in cols])


def importance(
    df: pd.DataFrame,
    space: str,
    *,
    method: str = "auto",
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    alpha: float = ALPHA,
    seed: int = 0,
    laws: dict | None = None,
    error: str = "sweep_error",
) -> dict:
    """Each parameter's importance for ``space``'s error, with a bootstrap CI and a permutation claim.

    ``df``: the analysis frame (load_table: one row per network, ``multiplicity`` draws each, status and
    ``error`` in percent); its ok rows of ``space`` are expanded to draws. ``laws``: {parameter: Param}
    (default :func:`space_laws` of the space and the frame's recipe). Returns {space, method, n, meaning,
    n_boot, n_perm, alpha, seconds, params: [{param, importance, ci, p, matters}] (most important first),
    verdict}. Raises RegspaceError when fewer than MIN_DRAWS draws are trained or no parameter varies.
    """
    method = resolve_method(method)
    t0 = time.perf_counter()
    g = df[(df.space == space) & (df.status == "ok") & df[error].notna()]
    m = counts(g)
    g = g.iloc[np.repeat(np.arange(len(g)), m)].reset_index(drop=True)  # the population of draws
    if len(g) < MIN_DRAWS:
        raise RegspaceError(f"{space}: {len(g)} trained draw(s); importance needs at least {MIN_DRAWS}")
    if laws is None:
        laws = space_laws(space, df.attrs.get("recipe"))
    dists = distributions(g, laws)
    if not dists:
        raise RegspaceError(f"{space}: no sampled parameter varies among its trained draws")
    cols = list(dists)
    x = {c: g[c].to_numpy(float) for c in cols}
    y = g[error].to_numpy(float)
    rng = np.random.default_rng(seed)
    base = _draw_trials(x, y, dists)  # built once; each fit below gets numbered copies
    point = _evaluate(x, y, dists, method, seed, _numbered(base, range(len(y))))
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        boots.append(_evaluate({c: v[i] for c, v in x.items()}, y[i], dists, method, seed, _numbered(base, i)))
    null_max = np.array([
        _evaluate(x, (yp := rng.permutation(y)), dists, method, seed, _numbered(base, range(len(y)), yp)).max()
        for _ in range(n_perm)
    ])  # fmt: skip
    boots = np.array(boots).reshape(n_boot, len(cols))
    rows = []
    for j, c in enumerate(cols):
        ci = [float(np.quantile(boots[:, j], 0.025)), float(np.quantile(boots[:, j], 0.975))] if n_boot else None
        p = float((1 + np.sum(null_max >= point[j])) / (1 + n_perm))
        rows.append({"param": c, "importance": float(point[j]), "ci": ci, "p": p, "matters": p <= alpha})
    rows.sort(key=lambda r: -r["importance"])
    shown = [r["param"] for r in rows if r["matters"]]
    n = len(y)
    test = f"{n_perm} shuffles, family-wise level {alpha:g}"
    if shown:
        verdict = (f"{space}: {', '.join(shown)} shown to matter at n = {n} (each beats every parameter's "
                   f"importance with the errors shuffled; {test})")  # fmt: skip
    else:
        verdict = (f"{space}: no parameter is shown to matter at n = {n}: none explains more of the error than "
                   f"the parameters do with the errors shuffled ({test})")  # fmt: skip
    return {
        "space": space,
        "method": method,
        "n": n,
        "meaning": MEANING[method].format(trees=N_TREES),
        "n_boot": n_boot,
        "n_perm": n_perm,
        "alpha": alpha,
        "seconds": time.perf_counter() - t0,
        "params": rows,
        "verdict": verdict,
    }


def importance_all(df: pd.DataFrame, spaces: list[str] | None = None, *, say=None, **options) -> dict:
    """:func:`importance` of each space (default: the frame's, in sampled order). A space that cannot be
    analysed (too few draws, nothing varies) is listed in ``skipped`` with its reason. ``say``: a progress
    line per space (the fits take seconds each). Returns {"spaces": [results], "skipped": [lines]}."""
    names = spaces or df.attrs.get("spaces") or list(dict.fromkeys(df.space))
    out: dict = {"spaces": [], "skipped": []}
    for name in names:
        if say:
            fits = 1 + options.get("n_boot", N_BOOT) + options.get("n_perm", N_PERM)
            say(f"importance of {name}: {fits} evaluator fits")
        try:
            out["spaces"].append(importance(df, name, **options))
        except RegspaceError as e:
            out["skipped"].append(e.line())
    return out
