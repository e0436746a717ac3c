"""`regspace report`: everything about a store in one self-contained page (HTML, or Markdown + images).

The HTML inlines every figure as SVG and its styles: it opens offline, fetches nothing, and each
figure says which command redraws it.
"""

from __future__ import annotations

import datetime
import html
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from regspace import __version__
from regspace.analysis.compare import compare
from regspace.analysis.table import load_table, trained
from regspace.errors import RegspaceError
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
) -> list[Figure]:
    from regspace.analysis.fit import fit_frame
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
    if ok.groupby("space").size().reindex(spaces).fillna(0).min() >= 2:
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
        except RegspaceError:
            pass  # complexity ranges do not overlap: no normalised EDF
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
        fits = fit_frame(ok)
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


def _model_rows(g: pd.DataFrame) -> list[list]:
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
            ]
        )
    return rows


STATS_HEADER = ["space", "n (draws)", "min", "p5", "p25", "median", "mean", "p75", "p95"]
# n: Kish's effective number of draws, which the KS p-value uses (docs/design.md §5)
PAIRS_HEADER = ["space A", "space B", "KS", "p-value", "noise (95% crit.)", "n A (effective)", "n B (effective)"]
STORE_HEADER = ["space", "recipe", "draws", "networks", "ok", "diverged", "failed", "pending"]
MODEL_HEADER = ["model", "val err %", "test err %", "widths", "depths", "group w", "b", "flops", "params"]


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
    fid = _fidelity(store, df.attrs["recipe_hash"], error)
    figs = build_figures(store, df, spaces, store_arg=store_arg, recipe_arg=df.attrs["recipe_hash"], fidelity=fid)
    cmp = compare(df, spaces=spaces)
    status = [r for r in store_status(store) if r["space"] in spaces]
    sections = _sections(df, cmp, status, spaces, ok)
    sections["fidelity"] = fid
    title = f"regspace report: {', '.join(spaces)}"
    if fmt == "html":
        _write_html(out, title, sections, figs, df, store_arg)
    else:
        _write_md(out, title, sections, figs, df, store_arg)
    return out


def _fidelity(store, recipe_hash: str | None, error: str) -> dict | None:
    """The store's fidelity check whose short recipe is this report's, analysed; None if there is none
    (or too few models have both results yet)."""
    from regspace.analysis.fidelity import analysed

    return analysed(store, short_hash=recipe_hash, error=error)


FIDELITY_HEADER = ["space", "models", "median short", "median long", "Spearman"]


def _fidelity_rows(f: dict) -> list[list]:
    return [
        [r["space"], r["n"], f"{r['short_median']:.2f}", f"{r['long_median']:.2f}",
         f"{r['spearman']:.2f}" if "spearman" in r else "-"]
        for r in f["spaces"]
    ]  # fmt: skip


def _sections(df, cmp, status, spaces, ok) -> dict:
    summary = [
        [r["space"], r["recipe"] or "-", r["draws"], r["sampled"], r["ok"], r["diverged"], r["failed"], r["pending"]]
        for r in status
    ]
    stats = [
        [
            r["space"],
            r["n"],
            *(f"{r[k]:.2f}" if k in r else "-" for k in ("min", "p5", "p25", "median", "mean", "p75", "p95")),
        ]
        for r in cmp["spaces"]
    ]
    pairs = [
        [p["a"], p["b"], f"{p['ks']:.3f}", f"{p['p_value']:.3g}", f"{p['noise']:.3f}", int(p["n_a"]), int(p["n_b"])]
        for p in cmp["pairs"]
    ]
    best = {s: _model_rows(ok[ok.space == s].sort_values("sweep_error").head(10)) for s in spaces}
    worst = {s: _model_rows(ok[ok.space == s].sort_values("sweep_error").tail(5).iloc[::-1]) for s in spaces}
    recipe = df.attrs.get("recipe") or {}
    return {
        "summary": summary,
        "warnings": cmp.get("warnings", []),
        "findings": cmp["findings"]["sentences"],
        "stats": stats,
        "pairs": pairs,
        "best": best,
        "worst": worst,
        "recipe": _pairs_in_columns([(k, str(v)) for k, v in sorted(recipe.items())], 3),
    }


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


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em}.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{padding:.25em .6em;border-bottom:1px solid #e5e5e5;
text-align:right}th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
figure{margin:1.2em 0;overflow-x:auto}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#444}
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


def _write_html(out: Path, title: str, s: dict, figs: list[Figure], df, store_arg: str) -> None:
    by_key = {f.key: f for f in figs}
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>store <code>{html.escape(store_arg)}</code> · recipe "
        f"<code>{html.escape(str(df.attrs.get('recipe_hash')))}</code> · generated "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by regspace {__version__}</p>",
        "<h2>Findings</h2>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in s["findings"]) + "</ul>",
        "<h2>Store</h2>",
        *(f"<p><b>Warning:</b> {html.escape(w)}</p>" for w in s["warnings"]),
        _table_html(STORE_HEADER, s["summary"]),
        "<h3>Recipe</h3>",
        _table_html(["field", "value"] * 3, s["recipe"]),
        "<h2>Error EDFs</h2>",
    ]
    for key in ("edf", "edf_params"):
        if key in by_key:
            parts.append(_figure_html(by_key[key]))
    if "curves" in by_key:
        parts += ["<h2>Learning curves</h2>", _figure_html(by_key["curves"])]
    parts += [
        "<h2>Comparison</h2>",
        _table_html(STATS_HEADER, s["stats"]),
    ]
    if s["pairs"]:
        parts += [
            "<p>Kolmogorov–Smirnov distance between EDFs; <i>noise</i> is the 95% critical value: the distance "
            "two samples of these sizes from one space exceed with at most 5% probability (exact for small n, "
            "a permutation over draws when networks repeat, asymptotic otherwise; about 1.6–1.7× the mean "
            "distance NDS plots against n).</p>",
            _table_html(PAIRS_HEADER, s["pairs"]),
        ]
    if s.get("fidelity"):
        f = s["fidelity"]
        parts += [
            "<h2>Fidelity of the brief training</h2>",
            f"<p>The same models trained again with a longer recipe ({html.escape(f['long_description'])}, "
            f"recipe <code>{html.escape(f['long_recipe'])}</code>).</p>",
            "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in f["sentences"]) + "</ul>",
            _table_html(FIDELITY_HEADER, _fidelity_rows(f)),
        ]
        if "fidelity" in by_key:
            parts.append(_figure_html(by_key["fidelity"]))
    parts.append("<h2>Parameters</h2>")
    parts += [_figure_html(f) for f in figs if f.key.startswith("scatter_")]
    parts.append("<h2>Best and worst models</h2>")
    for space in s["best"]:
        parts += [
            f"<h3>{html.escape(space)}: best</h3>",
            _table_html(MODEL_HEADER, s["best"][space]),
            f"<h3>{html.escape(space)}: worst</h3>",
            _table_html(MODEL_HEADER, s["worst"][space]),
        ]
    parts.append("<h2>Widths</h2>")
    parts += [_figure_html(f) for f in figs if f.key.startswith("widths_")]
    for key, head in (("fit", "Quantised linear fit"), ("search", "Random-search efficiency")):
        if key in by_key:
            parts += [f"<h2>{head}</h2>", _figure_html(by_key[key])]
    parts.append("</body></html>")
    _atomic_text(out, "\n".join(parts))


def _table_md(header, rows) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _write_md(out: Path, title: str, s: dict, figs: list[Figure], df, store_arg: str) -> None:
    from regspace.plots.style import save

    img_dir = out.with_name(out.stem + "_files")
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RegspaceError(f"cannot write {img_dir}: {e.strerror or e}") from None
    images = {}
    for f in figs:
        p = save(f.fig, img_dir / f"{f.key}.png")
        images[f.key] = f"![{f.title}]({img_dir.name}/{p.name})\n\n*{f.title}.* Redraw: `{f.command}`"
    parts = [
        f"# {title}",
        f"store `{store_arg}` · recipe `{df.attrs.get('recipe_hash')}` · regspace {__version__}",
        "## Findings",
        "\n".join(f"- {line}" for line in s["findings"]),
        "## Store",
        *(f"> **Warning:** {w}\n" for w in s["warnings"]),
        _table_md(STORE_HEADER, s["summary"]),
        "### Recipe",
        _table_md(["field", "value"] * 3, s["recipe"]),
        "## Error EDFs",
    ]
    parts += [images[k] for k in ("edf", "edf_params") if k in images]
    if "curves" in images:
        parts += ["## Learning curves", images["curves"]]
    parts += [
        "## Comparison",
        _table_md(STATS_HEADER, s["stats"]),
    ]
    if s["pairs"]:
        parts.append(_table_md(PAIRS_HEADER, s["pairs"]))
    if s.get("fidelity"):
        f = s["fidelity"]
        parts += [
            "## Fidelity of the brief training",
            f"The same models trained again with a longer recipe ({f['long_description']}, "
            f"recipe `{f['long_recipe']}`).",
            "\n".join(f"- {line}" for line in f["sentences"]),
            _table_md(FIDELITY_HEADER, _fidelity_rows(f)),
        ]
        if "fidelity" in images:
            parts.append(images["fidelity"])
    parts.append("## Parameters")
    parts += [v for k, v in images.items() if k.startswith("scatter_")]
    parts.append("## Best and worst models")
    for space in s["best"]:
        parts += [
            f"### {space}: best",
            _table_md(MODEL_HEADER, s["best"][space]),
            f"### {space}: worst",
            _table_md(MODEL_HEADER, s["worst"][space]),
        ]
    parts.append("## Widths")
    parts += [v for k, v in images.items() if k.startswith("widths_")]
    for key, head in (("fit", "Quantised linear fit"), ("search", "Random-search efficiency")):
        if key in images:
            parts += [f"## {head}", images[key]]
    _atomic_text(out, "\n\n".join(parts) + "\n")


def _atomic_text(path: Path, text: str) -> None:
    import os
    import uuid

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise RegspaceError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
