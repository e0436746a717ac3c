"""`regspace report`: everything about a store in one self-contained page (HTML, or Markdown + images).

The HTML inlines every figure as SVG and its styles: it opens offline, fetches nothing, and each
figure says which command redraws it. The report's sections are listed once (:data:`SECTIONS`), each
a function from the report's data to blocks (headings, lists, tables, figures); one renderer per
format turns blocks into HTML or Markdown.
"""

from __future__ import annotations

import datetime
import html
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from regspace import __version__
from regspace.analysis.table import trained
from regspace.analysis_io import analysed_fidelity, compare_store, load_table, store_fits
from regspace.errors import RegspaceError
from regspace.files import write_file
from regspace.status import store_status


@dataclass
class Figure:
    key: str
    title: str
    command: str
    fig: object


def _cmd(*parts) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts if p is not None and p != "")


def build_figures(
    store,
    df: pd.DataFrame,
    spaces: list[str],
    *,
    store_arg: str,
    recipe_arg: str | None,
    fidelity: dict | None = None,
    skipped: list[str] | None = None,
) -> list[Figure]:
    """The report's figures. An analysis that cannot run on these models (too few, no common range) is
    left out with a sentence in ``skipped``, so the report says so instead of failing (issue 25 §4)."""
    skipped = [] if skipped is None else skipped
    from regspace.plots import figures as F

    recipe_opt = ["--recipe-hash", recipe_arg] if recipe_arg else []
    if df.attrs.get("first_draws"):
        recipe_opt += ["--draws", df.attrs["first_draws"]]
    if df.attrs.get("error") == "min_error":
        recipe_opt += ["--error", "min_error"]
    common = ["--store", store_arg, *recipe_opt]
    sp = ",".join(spaces)
    out = [
        Figure(
            "edf",
            "Error EDFs (95% bootstrap bands)",
            _cmd("regspace", "plot-edf", *common, "--spaces", sp, "--band", "-o", "edf.png"),
            F.plot_edf(df, spaces=spaces, band=True),
        )
    ]
    ok = trained(df)
    if ok.groupby("space").size().reindex(spaces).fillna(0).min() < 2:
        skipped.append("The EDFs normalised by parameters are left out: a space has fewer than 2 trained models.")
    else:
        try:
            out.append(
                Figure(
                    "edf_params",
                    "Error EDFs normalised by parameters",
                    _cmd(
                        "regspace",
                        "plot-edf",
                        *common,
                        "--spaces",
                        sp,
                        "--normalize",
                        "params",
                        "--band",
                        "-o",
                        "edf_params.png",
                    ),
                    F.plot_edf(df, spaces=spaces, normalize="params", band=True),  # params: as in most NDS figures,
                )
            )
        except RegspaceError as e:
            skipped.append(f"The EDFs normalised by parameters are left out: {e}.")
    try:
        curves = F.plot_curves(df, spaces=spaces)
        out.append(
            Figure(
                "curves",
                "Learning curves of the best, median and worst model of each space",
                _cmd("regspace", "plot-curves", *[c for c in common if c not in ("--error", "min_error")], "--spaces",
                     sp, "-o", "curves.png"),
                curves,
            )
        )  # fmt: skip
    except RegspaceError:
        pass  # results from before curves were stored
    if fidelity is not None:
        out.append(
            Figure(
                "fidelity",
                f"Fidelity: short against long training ({fidelity['long_description']})",
                _cmd("regspace", "fidelity", "--store", store_arg, "--long-hash", fidelity["long_recipe"], "--plot",
                     "fidelity.png"),
                F.plot_fidelity(fidelity),
            )
        )  # fmt: skip
    for s in spaces:
        if (ok.space == s).sum() >= 2:
            out.append(
                Figure(
                    f"scatter_{s}",
                    f"{s}: error against parameters",
                    _cmd("regspace", "plot-scatter", *common, "--space", s, "-o", f"scatter_{s}.png"),
                    F.plot_scatter(df, space=s),
                )
            )
    for s in spaces:
        if (ok.space == s).sum() >= 1:
            out.append(
                Figure(
                    f"widths_{s}",
                    f"{s}: widths of the best models",
                    _cmd("regspace", "plot-widths", *common, "--space", s, "--top", "8", "-o", f"widths_{s}.png"),
                    F.plot_widths(df, space=s, top=8),
                )
            )
    if len(ok):
        fits = store_fits(store, ok, limit=REPORT_FIT_MAX)  # the store's e_fit cache, filled by compare and plot-fit
        if fits is None:
            skipped.append(
                f"The figure of error against e_fit is left out: more than {REPORT_FIT_MAX:,} models have no cached "
                f"fit (an exact fit takes about 0.1–0.5 s a model); `regspace plot-fit {_cmd(*common)}` fits them "
                "once, into the store's e_fit cache, and the next report draws it."
            )
        else:
            out.append(
                Figure(
                    "fit",
                    "Error against e_fit",
                    _cmd("regspace", "plot-fit", *common, "--spaces", sp, "-o", "fit.png"),
                    F.plot_fit(df, spaces=spaces, fits=fits),
                )
            )
        out.append(
            Figure(
                "search",
                "Random-search efficiency",
                _cmd("regspace", "plot-search", *common, "--spaces", sp, "-o", "search.png"),
                F.plot_search(df, spaces=spaces),
            )
        )
    return out


def drawn_fields(df: pd.DataFrame) -> list[str]:
    """The recipe fields drawn per model (schema.HPARAM_COLUMNS) that the rows of ``df`` carry: a model's
    learning rate is part of what it is, so the model tables show it."""
    from regspace.schema import HPARAM_COLUMNS

    return [c for c in HPARAM_COLUMNS if c in df and df[c].notna().any()]


def _model_rows(g: pd.DataFrame, drawn: list[str] = ()) -> list[list]:
    from regspace.units import format_quantity

    rows = []
    for _, r in g.iterrows():
        rows.append(
            [
                r.model_id,
                f"{r.sweep_error:.2f}",
                "-" if pd.isna(r.test_error) else f"{r.test_error:.2f}",
                ",".join(map(str, r.stage_widths)),
                ",".join(map(str, r.stage_depths)),
                ",".join(map(str, r.stage_group_widths)),
                ",".join(format(b, "g") for b in r.stage_bottleneck_ratios),
                format_quantity(r.flops),
                format_quantity(r.params),
                *("-" if pd.isna(r[c]) else f"{r[c]:.3g}" for c in drawn),
            ]
        )
    return rows


def build_report(
    store,
    out: str | Path,
    *,
    spaces: list[str] | None = None,
    recipe_hash: str | None = None,
    fmt: str | None = None,
    store_arg: str | None = None,
    first_draws: int | None = None,
    error: str = "error",
) -> Path:
    """The report of ``store`` (its spaces' first ``first_draws`` draws, if given). A fidelity check
    recorded in the store for this recipe (`regspace fidelity`) gets its own section."""
    out = Path(out)
    fmt = fmt or ("md" if out.suffix.lower() == ".md" else "html")
    if fmt not in ("html", "md"):
        raise RegspaceError(f"unknown report format {fmt!r}: use html or md")
    df = load_table(store, spaces=spaces, recipe_hash=recipe_hash, first_draws=first_draws, error=error)
    spaces = df.attrs["spaces"]
    ok = trained(df)
    if not len(ok):
        raise RegspaceError("no trained models to report on", hint="run `regspace train` first")
    store_arg = store_arg or str(store.path)
    # the store's fidelity check whose short recipe is this report's; None if there is none (or too few
    # models have both results yet)
    fid = analysed_fidelity(store, short_hash=df.attrs["recipe_hash"], error=error)
    skipped: list[str] = []
    figs = build_figures(store, df, spaces, store_arg=store_arg, recipe_arg=df.attrs["recipe_hash"], fidelity=fid,
                         skipped=skipped)  # fmt: skip
    cmp = compare_store(store, df, spaces=spaces)  # the Findings' e_fit fits from the store's cache
    trends, speed = _trends_and_speed(df, figs, store_arg)
    status = [r for r in store_status(store) if r["space"] in spaces]
    report = Report(
        title=f"regspace report: {', '.join(spaces)}",
        store_arg=store_arg,
        recipe_hash=df.attrs.get("recipe_hash"),
        recipe=df.attrs.get("recipe") or {},
        spaces=spaces,
        ok=ok,
        cmp=cmp,
        status=status,
        fidelity=fid,
        figures=figs,
        skipped=skipped,
        trends=trends,
        speed=speed,
        importance=_importance_result(df, spaces),
    )
    blocks = [b for section in SECTIONS for b in section(report)]
    write_file(out, _html(report, blocks) if fmt == "html" else _markdown(report, blocks, out))
    return out


# -- what the report holds -------------------------------------------------------------------------


@dataclass
class Report:
    """What the sections read: the table's trained rows, compare's result, the store's status per
    space, the fidelity check (or None) and the figures."""

    title: str
    store_arg: str
    recipe_hash: str | None
    recipe: dict
    spaces: list[str]
    ok: pd.DataFrame
    cmp: dict
    status: list[dict]
    fidelity: dict | None
    figures: list[Figure]
    skipped: list[str] = field(default_factory=list)  # analyses left out, and why
    trends: dict | None = None  # analysis.trends.regime_trends, when the models span two or more regimes
    speed: dict | None = None  # analysis.speed.speed_correlations, when results carry inference speeds
    importance: dict | None = None  # analysis.importance.importance_all: which parameters matter

    def figure(self, key: str) -> list[Figure]:
        return [f for f in self.figures if f.key == key]

    def figures_of(self, prefix: str) -> list[Figure]:
        return [f for f in self.figures if f.key.startswith(prefix)]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Bullets:
    lines: list[str]


@dataclass(frozen=True)
class Grid:
    header: list[str]
    rows: list[list]


@dataclass(frozen=True)
class Matrix:
    """A space × space verdict table: ``cells[i][j]`` is (text, kind) of row space i against column j, kind
    one of better, worse, equivalent, differ, unresolved, self — coloured in HTML, plain in Markdown."""

    spaces: list[str]
    cells: list[list[tuple[str, str]]]


@dataclass(frozen=True)
class Details:
    """A folded part: its summary line and its blocks (HTML <details>; a sub-heading in Markdown)."""

    summary: str
    blocks: list


@dataclass(frozen=True)
class Alert:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Emph:
    text: str


@dataclass(frozen=True)
class Prose:
    """A paragraph of text, ``Code`` and ``Emph`` spans; ``html_only``: left out of the Markdown."""

    spans: tuple
    html_only: bool = False


STATS_HEADER = ["space", "n (draws)", "min", "p5", "p25", "median", "mean", "p75", "p95"]
# n: Kish's effective number of draws, which the KS p-value uses (docs/design.md §5)
PAIRS_HEADER = ["space A", "space B", "KS", "p-value", "noise (95% crit.)", "n A (effective)", "n B (effective)"]
STORE_HEADER = ["space", "recipe", "draws", "networks", "ok", "diverged", "failed", "pending"]
MODEL_HEADER = ["model", "val err %", "test err %", "widths", "depths", "group w", "b", "flops", "params"]
NOISE_HEADER = ["space", "designs", "runs", "seed s.d.", "95% CI", "ICC(1)", "ICC 95% CI"]
FIDELITY_HEADER = ["space", "models", "median short", "median long", "Spearman"]
KS_NOTE = (
    "Kolmogorov–Smirnov distance between EDFs; ",
    Emph("noise"),
    " is the 95% critical value: the distance two samples of these sizes from one space exceed with at most 5% "
    "probability (exact for small n, a permutation over draws when networks repeat, asymptotic otherwise; about "
    "1.6–1.7× the mean distance NDS plots against n).",
)


# -- the sections, in order ------------------------------------------------------------------------


def _orderings(pairs: list[dict]) -> list[str]:
    """One line per claimed ordering (a pair whose verdict names a winner), best supported first: the
    Hodges–Lehmann shift and the (Holm-adjusted) Mann–Whitney p the direction rests on."""

    def p_of(p):
        return p.get("p_location_adjusted", p.get("p_location", p.get("p_value", 1.0)))

    lines = []
    for p in sorted((p for p in pairs if p.get("winner")), key=p_of):
        lose = p["b"] if p["winner"] == p["a"] else p["a"]
        shift = abs(p.get("hl_shift", p["median_shift"]))
        adjusted = "Holm-adjusted " if "p_location_adjusted" in p else ""
        lines.append(f"{p['winner']} better than {lose} (errors {shift:.2f} points lower; {adjusted}p = {p_of(p):.2g})")
    return lines


def verdict_matrix(spaces: list[str], pairs: list[dict]) -> Matrix:
    """The pairs' verdicts as a space × space matrix, read along the rows ("row vs column")."""
    by_pair = {(p["a"], p["b"]): p for p in pairs} | {(p["b"], p["a"]): p for p in pairs}
    cells = []
    for a in spaces:
        row = []
        for b in spaces:
            p = by_pair.get((a, b))
            if a == b:
                row.append(("", "self"))
            elif p is None:
                row.append(("-", "unresolved"))
            elif p.get("winner"):
                kind = "better" if p["winner"] == a else "worse"
                row.append((f"{kind} {abs(p.get('hl_shift', p['median_shift'])):.2f}", kind))
            elif p["verdict"] == "equivalent":
                row.append(("≈", "equivalent"))
            elif p["verdict"] == "not resolved":
                row.append(("?", "unresolved"))
            else:
                row.append(("differ", "differ"))
        cells.append(row)
    return Matrix(list(spaces), cells)


def _findings(r: Report) -> list:
    f = r.cmp["findings"]
    pairs = f.get("pairs", [])
    lead = f["sentences"][:1]
    lead += [c["sentence"] for c in [f.get("correction")] if c and pairs]  # what was controlled, up front
    lead += [x["sentence"] for x in f.get("lost", [])]  # models left out of every statistic
    lead += f.get("seed_noise_sentences", [])  # the seed noise, and each resolved shift against it
    pair_lines = [p["sentence"] for p in pairs]
    other = [x["sentence"] for x in f.get("good_ranges", []) + f.get("e_fit", [])]
    orderings = _orderings(pairs)
    out = [Heading("Findings"), Bullets(lead + (orderings or ["No ordering of these spaces is resolved."]))]
    if len(r.spaces) > 1 and pairs:
        out += [Prose(("Verdicts, row against column (better/worse: the Hodges–Lehmann shift of the errors, in "
                       "points; ≈ equivalent; differ: the distributions differ with no direction; ? not resolved):",)),
                verdict_matrix(r.spaces, pairs)]  # fmt: skip
    if pair_lines:
        out.append(Details(f"Every pair in words ({len(pair_lines)})", [Bullets(pair_lines)]))
    if other:
        out.append(Details(f"Good ranges and e_fit ({len(other)})", [Bullets(other)]))
    return out


def _store(r: Report) -> list:
    # "pending" means something only for the recipe the report compares: a network never meant to be trained
    # with another recipe (the fidelity check's long one trains a few) is not pending under it.
    def compared(recipe):  # this report's recipe, any of its seeds (schema.run_key: "<hash>-s<seed>")
        return recipe in (None, r.recipe_hash) or str(recipe).startswith(f"{r.recipe_hash}-s")

    summary = [
        [s["space"], s["recipe"] or "-", s["draws"], s["sampled"], s["ok"], s["diverged"], s["failed"],
         s["pending"] if compared(s["recipe"]) else "-"]
        for s in r.status
    ]  # fmt: skip
    recipe = _pairs_in_columns(recipe_fields(r.recipe, (r.cmp.get("seeds") or {}).get("max", 1)), 3)
    return [
        Heading("Store"),
        *(Alert(w) for w in r.cmp.get("warnings", [])),
        Grid(STORE_HEADER, summary),
        Heading("Recipe", 3),
        Grid(["field", "value"] * 3, recipe),
    ]


def recipe_fields(recipe: dict, seeds: int = 1) -> list[tuple[str, str]]:
    """The recipe's (field, value) pairs as the report shows them. A result's recipe JSON holds its own
    model's drawn values: a drawn field shows its law instead (the recipe's ``sampled``), and with several
    seeds per design the seed says so."""
    from regspace.spaces.hparams import from_json

    laws = {p.name: p for p in from_json(recipe.get("sampled"))}
    out = []
    for k, v in sorted(recipe.items()):
        if k in laws:
            v = f"drawn per model: {laws[k].describe()}"
        elif k == "seed" and seeds > 1:
            v = f"{v} to {int(v) + seeds - 1} ({seeds} per design; errors are their mean)"
        out.append((k, str(v)))
    return out


def _edfs(r: Report) -> list:
    return [Heading("Error EDFs"), *r.figure("edf"), *r.figure("edf_params"), *(Prose((n,)) for n in r.skipped)]


def _curves(r: Report) -> list:
    return [Heading("Learning curves"), *curves] if (curves := r.figure("curves")) else []


def _comparison(r: Report) -> list:
    stats = [
        [s["space"], s["n"], *(f"{s[k]:.2f}" if k in s else "-" for k in ("min", "p5", "p25", "median", "mean", "p75",
                                                                            "p95"))]
        for s in r.cmp["spaces"]
    ]  # fmt: skip
    pairs = [
        [p["a"], p["b"], f"{p['ks']:.3f}", f"{p['p_value']:.3g}", f"{p['noise']:.3f}", int(p["n_a"]), int(p["n_b"])]
        for p in r.cmp["pairs"]
    ]
    out = [Heading("Comparison"), Grid(STATS_HEADER, stats)]
    if pairs:
        out += [Prose(KS_NOTE, html_only=True), Grid(PAIRS_HEADER, pairs)]
    noise = r.cmp["findings"].get("seed_noise")
    if noise:  # several seeds per design: how far one run's error moves from seed to seed, per space
        from regspace.text import noise_rows

        out += [Heading("Seed noise", 3),
                Prose(("The pooled within-design s.d. of one training run's error (points) with its chi-square "
                       "95 % CI, and ICC(1): the share of a run's error variance that lies between designs.",)),
                Grid(NOISE_HEADER, noise_rows(noise))]  # fmt: skip
    return out


def _fidelity(r: Report) -> list:
    f = r.fidelity
    if not f:
        return []
    rows = [
        [s["space"], s["n"], f"{s['short_median']:.2f}", f"{s['long_median']:.2f}",
         f"{s['spearman']:.2f}" if "spearman" in s else "-"]
        for s in f["spaces"]
    ]  # fmt: skip
    return [
        Heading("Fidelity of the brief training"),
        Prose(
            (
                "The same models trained again with a longer recipe (",
                f["long_description"],
                ", recipe ",
                Code(f["long_recipe"]),
                ").",
            )
        ),  # fmt: skip
        Bullets(f["sentences"]),
        Grid(FIDELITY_HEADER, rows),
        *r.figure("fidelity"),
    ]


def _parameters(r: Report) -> list:
    return [Heading("Parameters"), *r.figures_of("scatter_")]


# The report's importance: PED-ANOVA, whatever is installed (the same report on every machine, and about 0.1 s
# a fit against fANOVA's 0.4 s: 6 s for two spaces of 60 draws, 16 s for the ladder, against 24 s and 80 s),
# with fewer resamples than `regspace importance` (50, 49); 19 shuffles are the fewest at which a family-wise
# p of 0.05 can be reached. `regspace importance --method fanova` gives the variance shares.
REPORT_METHOD, REPORT_BOOT, REPORT_PERM = "ped-anova", 20, 19
REPORT_FIT_MAX = 2000  # models a report fits e_fit for (beyond its cache) before leaving the e_fit figure out


def _importance_result(df: pd.DataFrame, spaces: list[str]) -> dict:
    from regspace.analysis.importance import importance_all

    return importance_all(df, spaces, method=REPORT_METHOD, n_boot=REPORT_BOOT, n_perm=REPORT_PERM)


def _importance(r: Report) -> list:
    from regspace.text import importance_notes, importance_tables

    if not r.importance or not (r.importance["spaces"] or r.importance["skipped"]):
        return []
    command = _cmd("regspace", "importance", "--store", r.store_arg, "--recipe-hash", r.recipe_hash,
                   "--spaces", ",".join(r.spaces), "--method", "fanova")  # fmt: skip
    out: list = [Heading("Which parameters matter"),
                 Prose(("Per space, each sampled parameter's importance for the error, from Optuna's evaluators "
                        f"({REPORT_METHOD}, {REPORT_BOOT} bootstrap resamples, {REPORT_PERM} shuffles; the shares of "
                        "error variance, by fANOVA, with ", Code(command), ")."))]  # fmt: skip
    for t in importance_tables(r.importance):
        out += [Heading(t.title, 3), Grid(t.columns, t.rows)]
    return out + [Bullets(importance_notes(r.importance))]


def _models(r: Report) -> list:
    out: list = [Heading("Best and worst models")]
    drawn = drawn_fields(r.ok)
    header = [*MODEL_HEADER, *drawn]
    for space in r.spaces:
        ranked = r.ok[r.ok.space == space].sort_values("sweep_error")
        out += [
            Heading(f"{space}: best", 3),
            Grid(header, _model_rows(ranked.head(10), drawn)),
            Heading(f"{space}: worst", 3),
            Grid(header, _model_rows(ranked.tail(5).iloc[::-1], drawn)),
        ]
    return out


def _widths(r: Report) -> list:
    return [Heading("Widths"), *r.figures_of("widths_")]


def _trends_and_speed(df: pd.DataFrame, figs: list[Figure], store_arg: str) -> tuple[dict | None, dict | None]:
    """The trends across regimes (when the table has two or more) and inference time against complexity
    (when results carry inference speeds), with their figures appended to ``figs``."""
    from regspace.analysis.speed import speed_correlations
    from regspace.analysis.trends import regime_trends
    from regspace.plots.trends import plot_speed, plot_trends

    trends = speed = None
    if "regime" in df and df["regime"].dropna().nunique() >= 2:
        trends = regime_trends(df)
        for s in trends["spaces"]:
            if s["params"]:
                cmd = _cmd("regspace", "trends", "--store", store_arg, "--space", s["space"], "--plot",
                           f"trends_{s['space']}.png")  # fmt: skip
                figs.append(Figure(f"trends_{s['space']}", f"{s['space']}: best models across flops regimes", cmd,
                                   plot_trends(trends, space=s["space"])))  # fmt: skip
    if "inference_images_per_second" in df and pd.to_numeric(df["inference_images_per_second"]).gt(0).any():
        speed = speed_correlations(df)
        figs.append(Figure("speed", "Inference time against complexity", _cmd("regspace", "speed", "--store",
                           store_arg, "--plot", "speed.png"), plot_speed(df)))  # fmt: skip
    return trends, speed


def _trends(r: Report) -> list:
    if not r.trends:
        return []
    from regspace.analysis.trends import every_draw_slope, sentences

    rows = [
        [s["space"], p["param"], *(f"{x['best']:.3g} / {x['top']:.3g} [{x['top_low']:.3g}, {x['top_high']:.3g}]"
                                   for x in p["regimes"]), f"{p['slope']:.2f} [{p['low']:.2f}, {p['high']:.2f}]",
         p["trend"], every_draw_slope(p)]
        for s in r.trends["spaces"] for p in s["params"]
    ]  # fmt: skip
    regimes = next((s["regimes"] for s in r.trends["spaces"] if s["params"]), [])
    header = ["space", "parameter", *(x["regime"] for x in regimes), "slope (log-log) [CI]", "trend",
              "every draw's slope [CI]"]  # fmt: skip
    return [
        Heading("Trends across flops regimes"),
        Prose((f"Per regime: the best model's value / the median of the top {r.trends['top']:.0%} "
               f"[{r.trends['confidence']:.0%} bootstrap interval]; the slope is least squares of log parameter on "
               f"log flops over the top models of every regime; flat means its CI lies within "
               f"±{r.trends['flat_slope']}. Every draw's slope is the same fit over all models, for comparison: "
               f"a budget alone moves some parameters for every model.",)),  # fmt: skip
        Bullets(sentences(r.trends)),
        *([Grid(header, rows)] if rows else []),
        *r.figures_of("trends_"),
    ]


def _speed(r: Report) -> list:
    if not r.speed:
        return []
    from regspace.analysis.speed import sentences

    return [Heading("Inference time against complexity"), Bullets(sentences(r.speed)), *r.figure("speed")]


def _titled(key: str, head: str) -> Callable[[Report], list]:
    def section(r: Report) -> list:
        return [Heading(head), *figs] if (figs := r.figure(key)) else []

    return section


SECTIONS: tuple[Callable[[Report], list], ...] = (
    _findings,
    _store,
    _edfs,
    _curves,
    _comparison,
    _fidelity,
    _parameters,
    _importance,
    _models,
    _widths,
    _titled("fit", "Quantised linear fit"),
    _titled("search", "Random-search efficiency"),
    _trends,
    _speed,
)


def _pairs_in_columns(pairs: list[tuple[str, str]], columns: int) -> list[list[str]]:
    """(field, value) pairs laid out in ``columns`` side-by-side column pairs, filled top to bottom."""
    rows = -(-len(pairs) // columns)
    out = []
    for r in range(rows):
        row = []
        for c in range(columns):
            k = c * rows + r
            row += list(pairs[k]) if k < len(pairs) else ["", ""]
        out.append(row)
    return out


# -- HTML ------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em}.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{padding:.25em .6em;border-bottom:1px solid #e5e5e5;
text-align:right}th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
figure{margin:1.2em 0;overflow-x:auto}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#444}
table.verdicts td{text-align:center}.v-better{background:#d8f0d8}.v-worse{background:#f6d8d8}
.v-equivalent{background:#e4ecf7}.v-differ{background:#fbeccd}.v-unresolved{color:#888}
details{margin:.6em 0}summary{cursor:pointer;color:#333}
code{background:#f3f3f3;padding:.1em .3em;border-radius:3px;font-size:.9em;word-break:break-all}
"""


def _table_html(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(f: Figure) -> str:
    from regspace.plots.style import svg_text

    return (
        f'<figure id="{html.escape(f.key)}">{svg_text(f.fig)}<figcaption><b>{html.escape(f.title)}.</b> '
        f"Redraw: <code>{html.escape(f.command)}</code></figcaption></figure>"
    )


def _span_html(s) -> str:
    if isinstance(s, Code):
        return f"<code>{html.escape(s.text)}</code>"
    if isinstance(s, Emph):
        return f"<i>{html.escape(s.text)}</i>"
    return html.escape(s)


def _block_html(b) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{html.escape(b.text)}</h{b.level}>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in b.lines) + "</ul>"
    if isinstance(b, Grid):
        return _table_html(b.header, b.rows)
    if isinstance(b, Alert):
        return f"<p><b>Warning:</b> {html.escape(b.text)}</p>"
    if isinstance(b, Prose):
        return "<p>" + "".join(_span_html(s) for s in b.spans) + "</p>"
    if isinstance(b, Figure):
        return _figure_html(b)
    if isinstance(b, Matrix):
        head = "<th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in b.spaces)
        rows = "".join(
            f"<tr><th>{html.escape(a)}</th>"
            + "".join(f"<td class='v-{kind}'>{html.escape(text)}</td>" for text, kind in row)
            + "</tr>"
            for a, row in zip(b.spaces, b.cells)
        )
        return f"<table class='verdicts'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(b, Details):
        inner = "".join(_block_html(x) for x in b.blocks)
        return f"<details><summary>{html.escape(b.summary)}</summary>{inner}</details>"
    raise TypeError(f"no HTML for {b!r}")


def _html(r: Report, blocks: list) -> str:
    title = html.escape(r.title)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{title}</h1><p class='meta'>store <code>{html.escape(r.store_arg)}</code> · recipe "
        f"<code>{html.escape(str(r.recipe_hash))}</code> · generated "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by regspace {__version__}</p>",
        *(_block_html(b) for b in blocks),
        "</body></html>",
    ]
    return "\n".join(parts)


# -- Markdown --------------------------------------------------------------------------------------


def _table_md(header, rows) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _span_md(s) -> str:
    if isinstance(s, Code):
        return f"`{s.text}`"
    if isinstance(s, Emph):
        return f"*{s.text}*"
    return s


def _block_md(b, images: dict[str, str]) -> str | None:
    if isinstance(b, Heading):
        return f"{'#' * b.level} {b.text}"
    if isinstance(b, Bullets):
        return "\n".join(f"- {line}" for line in b.lines)
    if isinstance(b, Grid):
        return _table_md(b.header, b.rows)
    if isinstance(b, Alert):
        return f"> **Warning:** {b.text}\n"
    if isinstance(b, Prose):
        return None if b.html_only else "".join(_span_md(s) for s in b.spans)
    if isinstance(b, Figure):
        return images[b.key]
    if isinstance(b, Matrix):
        return _table_md(["", *b.spaces], [[a, *(text for text, _ in row)] for a, row in zip(b.spaces, b.cells)])
    if isinstance(b, Details):
        inner = [text for x in b.blocks if (text := _block_md(x, images)) is not None]
        return "\n\n".join([f"**{b.summary}**", *inner])
    raise TypeError(f"no Markdown for {b!r}")


def _markdown(r: Report, blocks: list, out: Path) -> str:
    """The Markdown text; its figures are written as PNG files into ``<out stem>_files/`` beside it."""
    from regspace.plots.style import save

    img_dir = out.with_name(out.stem + "_files")
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RegspaceError(f"cannot write {img_dir}: {e.strerror or e}") from None
    images = {}
    for f in r.figures:
        p = save(f.fig, img_dir / f"{f.key}.png")
        images[f.key] = f"![{f.title}]({img_dir.name}/{p.name})\n\n*{f.title}.* Redraw: `{f.command}`"
    parts = [f"# {r.title}", f"store `{r.store_arg}` · recipe `{r.recipe_hash}` · regspace {__version__}"]
    parts += [text for b in blocks if (text := _block_md(b, images)) is not None]
    return "\n\n".join(parts) + "\n"
