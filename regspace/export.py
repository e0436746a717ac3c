"""`regspace export`: one flat table of models joined with their results (all recipes)."""

from __future__ import annotations

from pathlib import Path

from regspace.errors import RegspaceError

LIST_COLUMNS = ["stage_widths", "stage_depths", "stage_group_widths", "stage_bottleneck_ratios"]


def joined_table(store):
    """Every sampled model, joined with each of its results (models without one appear once, status pending)."""
    models = store.read("models")
    results = store.read("results")
    df = models.merge(results, on="model_id", how="left", suffixes=("", "_result"))
    df["status"] = df["status"].fillna("pending")
    return df


def export(store, out: str | Path, *, fmt: str | None = None) -> tuple[Path, int]:
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "parquet", "json"):
        raise RegspaceError(
            f"unknown export format {fmt!r}: use csv, parquet or json (or an output name ending in one)"
        )
    df = joined_table(store)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            df.to_parquet(out, index=False)
        elif fmt == "json":
            df.to_json(out, orient="records", date_format="iso", indent=1)
        else:
            flat = df.copy()
            for c in LIST_COLUMNS:
                flat[c] = flat[c].map(lambda v: ",".join(format(x, "g") for x in v) if v is not None else "")
            flat.to_csv(out, index=False)
    except OSError as e:
        raise RegspaceError(f"cannot write {out}: {e.strerror or e}") from None
    return out, len(df)
