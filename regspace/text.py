"""Results as text: the one place that turns tables, comparisons and checks into lines.

A table is rich on a terminal and a ``# title`` line, a header line and tab-separated rows otherwise
(pipes, files). The plain form is what files hold: ``compare.txt`` is :func:`compare_text`, and
``regspace compare`` piped prints the same bytes (its warnings go to stderr). Nothing here computes a
statistic; files are written by :mod:`regspace.files`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from regspace.console import say, stdout_is_terminal


@dataclass(frozen=True)
class Table:
    """Rows under a header; ``numeric`` columns are right-aligned on a terminal."""

    columns: list[str]
    rows: list[list]
    title: str | None = None
    numeric: frozenset = field(default_factory=frozenset)

    def plain(self) -> str:
        """``# title``, the header and the rows, tab-separated, each line ending in a newline."""
        lines = [f"# {self.title}"] if self.title else []
        lines.append("\t".join(self.columns))
        lines += ["\t".join(str(x) for x in r) for r in self.rows]
        return "\n".join(lines) + "\n"

    def print(self) -> None:
        """On stdout: rich on a terminal, :meth:`plain` when piped."""
        if not stdout_is_terminal():
            sys.stdout.write(self.plain())
            return
        from rich.console import Console
        from rich.table import Table as RichTable

        table = RichTable(title=self.title, title_justify="left", header_style="bold")
        for c in self.columns:
            table.add_column(c, justify="right" if c in self.numeric else "left", overflow="fold")
        for r in self.rows:
            table.add_row(*(str(x) for x in r))
        Console().print(table)


def print_table(
    columns: list[str], rows: list[list], *, title: str | None = None, numeric: set[str] = frozenset()
) -> None:
    """A table on stdout: rich on a terminal; a header line and tab-separated rows when piped."""
    Table(columns, rows, title, frozenset(numeric)).print()


def bullets(lines: list[str]) -> str:
    """``- line`` per line, each ending in a newline."""
    return "".join(f"- {line}\n" for line in lines)


# -- regspace compare ------------------------------------------------------------------------------


def error_title(result: dict) -> str:
    """What the errors are: final or best-epoch validation error, at which epoch, of which draws."""
    what = "best-epoch validation error" if result["error"] == "min_error" else "final validation error"
    if result.get("epoch"):
        what = ("best validation error up to" if result["error"] == "min_error" else "validation error after") + (
            f" epoch {result['epoch']}"
        )
    if result.get("first_draws"):
        what += f", first {result['first_draws']} draws per space"
    from regspace.analysis.seeds import seeds_text

    if seeds_text(result.get("seeds")):
        what += f", {seeds_text(result.get('seeds'))}"
    return what


def compare_tables(result: dict) -> list[Table]:
    """:func:`analysis.compare.compare`'s per-space statistics and (with two spaces or more) its KS table."""

    def f(r, k):
        return f"{r[k]:.2f}" if k in r else "-"

    out = [
        Table(
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
            ],  # fmt: skip
            title=(
                f"{error_title(result)} (%), recipe {result['recipe_hash']}"
                if result["recipe_hash"]
                else "validation error (%): no results yet (run `regspace train`)"
            ),
            numeric=frozenset({"n", "networks", "min", "p25", "median", "mean", "p75"}),
        )
    ]
    norm = result.get("normalization") or {}
    if result.get("normalize") and any("normalized" in r for r in result["spaces"]):
        # the KS table below compares these normalised EDFs: show their samples, not the plain draws
        out.append(
            Table(
                ["space", "n", "networks", "min", "p25", "median", "mean", "p75"],
                [
                    [
                        r["space"],
                        r["normalized"]["n"],
                        r["normalized"]["networks"],
                        *(f(r["normalized"], k) for k in ("min", "p25", "median", "mean", "p75")),
                    ]
                    for r in result["spaces"]
                    if "normalized" in r
                ],  # fmt: skip
                title=(
                    f"normalised by {result['normalize']} ({norm.get('n_bins')} bins): draws strictly inside "
                    "the common range (n), weighted statistics (%)"
                ),
                numeric=frozenset({"n", "networks", "min", "p25", "median", "mean", "p75"}),
            )
        )
    noise = (result.get("findings") or {}).get("seed_noise")
    if noise:
        out.append(
            Table(
                ["space", "designs", "runs", "seed s.d.", "95% CI", "ICC(1)", "ICC 95% CI"],
                noise_rows(noise),
                title="seed noise: pooled within-design s.d. of one run's error (points), share between designs",
                numeric=frozenset({"designs", "runs", "seed s.d.", "ICC(1)"}),
            )
        )
    if result["pairs"]:
        out.append(
            Table(
                ["A", "B", "KS", "p-value", "noise (95% crit.)"],
                [
                    [p["a"], p["b"], f"{p['ks']:.3f}", f"{p['p_value']:.3g}", f"{p['noise']:.3f}"]
                    for p in result["pairs"]
                ],  # fmt: skip
                title="Kolmogorov–Smirnov distance between EDFs"
                + (f" normalised by {result['normalize']}" if result.get("normalize") else ""),
                numeric=frozenset({"KS", "p-value", "noise (95% crit.)"}),
            )
        )
    return out


def noise_rows(noise: dict) -> list[list]:
    """Rows (space, designs, runs, s.d., its CI, ICC(1), its CI) of analysis.seeds.noise_by_space's result."""

    def row(name, r):
        return [name, r["designs"], r["runs"], f"{r['sd']:.3f}", f"{r['sd_ci'][0]:.3f} to {r['sd_ci'][1]:.3f}",
                f"{r['icc']:.2f}", f"{r['icc_ci'][0]:.2f} to {r['icc_ci'][1]:.2f}"]  # fmt: skip

    return [row(s, r) for s, r in noise["spaces"].items()] + [row("all", noise["all"])]


def findings_text(result: dict) -> str:
    return "\nFindings\n" + bullets(result["findings"]["sentences"])


def compare_text(result: dict) -> str:
    """The comparison as plain text (compare.txt): the tables, then the Findings; no warnings."""
    return "".join(t.plain() for t in compare_tables(result)) + findings_text(result)


def print_compare(result: dict) -> None:
    """`regspace compare`'s text: warnings (stderr), per-space statistics, KS table, Findings."""
    for w in result["warnings"]:
        say(f"regspace: warning: {w}")
    for t in compare_tables(result):
        t.print()
    sys.stdout.write(findings_text(result))


# -- the fidelity check ----------------------------------------------------------------------------


def fidelity_text(result: dict) -> str:
    """fidelity.txt: what the long training was, then the check's sentences."""
    return (
        f"# fidelity: {result['long_description']} (recipe {result['long_recipe']}) against the study's recipe\n"
        + bullets(result["sentences"])
    )


# -- status ----------------------------------------------------------------------------------------


def sweep_table(queue_rows: list[dict], *, sweep: str, where: str) -> Table:
    """A sweep's state per space (``where``: the queue URL, password redacted)."""
    return Table(
        ["space", "waiting", "running", "done", "lost", "retries"],
        [[q["space"], q["waiting"], q["running"], q["done"], q["lost"], q["retries"]] for q in queue_rows],
        title=f"sweep {sweep!r} at {where}",
        numeric=frozenset({"waiting", "running", "done", "lost", "retries"}),
    )


def status_table(rows: list[dict]) -> Table:
    """`regspace status`: per space and recipe, draws, networks and results by status."""

    def fmt(e):
        return "-" if e is None else f"{e:.2f}"

    return Table(
        ["space", "recipe", "draws", "networks", "ok", "diverged", "failed", "pending", "min err %", "median err %"],
        [
            [
                r["space"],
                r["recipe"] or "-",
                r["draws"],
                r["sampled"],
                r["ok"],
                r["diverged"],
                r["failed"],
                r["pending"],
                fmt(r["min_error"]),
                fmt(r["median_error"]),
            ]
            for r in rows
        ],  # fmt: skip
        numeric=frozenset({"draws", "networks", "ok", "diverged", "failed", "pending", "min err %", "median err %"}),
    )


def importance_tables(result: dict) -> list[Table]:
    """One table per space of :func:`regspace.analysis.importance.importance_all`: each parameter's
    importance, its 95 % bootstrap interval, the permutation p-value, and whether it is shown to matter."""
    tables = []
    for r in result["spaces"]:
        rows = [
            [p["param"], f"{p['importance']:.3f}", "–" if p["ci"] is None else f"{p['ci'][0]:.3f}–{p['ci'][1]:.3f}",
             f"{p['p']:.2g}", "yes" if p["matters"] else "no"]
            for p in r["params"]
        ]  # fmt: skip
        title = (f"{r['space']}: importance by {r['method']}, n = {r['n']} draws, 95 % CI from {r['n_boot']} "
                 f"bootstrap resamples of the draws, p from {r['n_perm']} shuffles of the errors "
                 f"({r['seconds']:.1f} s)")  # fmt: skip
        cols = ["parameter", "importance", "95 % CI", "p (shuffled)", "matters"]
        tables.append(Table(cols, rows, title, frozenset(cols[1:4])))
    return tables


def importance_notes(result: dict) -> list[str]:
    """The lines under the tables: what the numbers mean, each space's verdict, the spaces left out."""
    meanings = list(dict.fromkeys(r["meaning"] for r in result["spaces"]))
    rule = ("a parameter matters when its importance beats the largest importance of any parameter with the errors "
            "shuffled (max-statistic permutation test: family-wise error at most alpha)")  # fmt: skip
    notes = [f"importance: {m}" for m in meanings] + ([rule] if result["spaces"] else [])
    return notes + [r["verdict"] for r in result["spaces"]] + [f"left out: {s}" for s in result["skipped"]]


def importance_text(result: dict) -> str:
    """The plain text `regspace importance` prints when piped: the tables, then the notes."""
    return "".join(t.plain() for t in importance_tables(result)) + bullets(importance_notes(result))
