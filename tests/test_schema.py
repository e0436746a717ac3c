"""The row codec: one definition of the store's columns, and values that round-trip through them."""

import dataclasses
import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from regspace import schema
from regspace.design import STEMS, Context, Design, DesignBatch, get_stem
from regspace.schema import (
    CONTEXT_COLUMNS,
    DESIGN_COLUMNS,
    DRAW_COLUMNS,
    MODEL_COLUMNS,
    MODEL_KEY,
    MODEL_ROW_KEY,
    MODELS_SCHEMA,
    RESULT_KEY,
    RESULTS_SCHEMA,
    conform,
    context_from_row,
    context_row,
    design_columns,
    design_from_row,
    design_row,
)
from regspace.store import Store
from regspace.train.records import Result, Task

LADDER = Path(__file__).resolve().parents[1] / "experiments" / "results" / "ladder" / "store"


def test_result_has_exactly_the_results_columns_in_order_with_their_types():
    fields = dataclasses.fields(Result)
    assert [f.name for f in fields] == RESULTS_SCHEMA.names
    for f in fields:
        want = schema.python_type(RESULTS_SCHEMA.field(f.name).type)
        assert f.type in (want, want | None), f.name
    assert [f.name for f in fields if f.default is dataclasses.MISSING] == ["model_id", "recipe_hash", "status"]


def test_a_result_row_round_trips_through_the_store(tmp_path):
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    values = {}  # one non-null value of every column, from its type
    for f in RESULTS_SCHEMA:
        t = schema.python_type(f.type)
        values[f.name] = {
            float: 1.5,
            int: 3,
            bool: True,
            str: f"{f.name}!",
            tuple: (1.0, 2.0),
            datetime.datetime: when,
        }[t]
    values.pop("status")
    for make in (Result.ok, Result.failed, Result.diverged):
        r = make(**values)
        row = r.row()
        assert list(row) == RESULTS_SCHEMA.names and row["val_errors"] == [1.0, 2.0]
        st = Store.create(tmp_path / r.status)
        st.append_rows("results", [row])
        back = st.read_arrow("results").to_pylist()
        assert back == [row]
    with pytest.raises(ValueError, match="status"):
        Result(model_id="m", recipe_hash="r", status="done")
    assert Result.ok("m", error=1.0, min_error=1.0, epochs=1, recipe_hash="r").finished_at is not None


DESIGNS = [
    Design.from_sampled([24, 56, 152, 368], [1, 1, 4, 7], 1.0, 8, stem=STEMS["imagenet"]),
    Design.from_sampled([48, 104, 208, 440], [1, 3, 6, 6], 1.0, 8, se_ratio=0.25, stem=STEMS["cifar"]),
    Design.from_sampled([16], [2], 2.0, 4, stem=STEMS["cifar"]),
    # schema 5: the block families' fields, 7 stages, a settable stem width, a head conv
    Design.from_sampled(
        [16, 24, 40, 80, 112, 192, 320],
        [1, 2, 2, 3, 3, 4, 1],
        1.0,
        1,
        se_ratio=0.25,
        block="MB",
        stem=get_stem("resnet", 24),
        strides=[1, 2, 2, 2, 1, 2, 1],
        kernels=[3, 3, 5, 3, 5, 5, 3],
        expansions=[1, 6, 6, 6, 6, 6, 6],
        head_width=1280,
    ),
    Design.from_sampled([10, 20], [1, 1], 0.5, 3, block="R", activation="silu", stem=get_stem("cifar", 8)),
    Design.from_sampled([32], [1], 0.25, 1, block="V"),
]


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: f"{d.block}-{d.stem.name}-{len(d.widths)}")
def test_design_and_context_round_trip_through_a_row(design):
    context = Context(32, 3, 10)
    row = {"model_id": design.model_id(context), **design_row(design), **context_row(context)}
    assert list(design_row(design)) == list(DESIGN_COLUMNS) and list(context_row(context)) == list(CONTEXT_COLUMNS)
    assert design_from_row(row) == design and context_from_row(row) == context
    task = Task.from_row(row)
    assert task.design == design and task.context == context and task.model_id == design.model_id(context)
    # a row of an older store has no block (its designs are all X or Y): the block follows from the SE ratio
    if design.block in ("X", "Y"):
        assert design_from_row({**row, "block": None}).block == ("Y" if design.se_ratio > 0 else "X")
    # what the store writes is what it reads
    stored = conform({k: [v] for k, v in row.items()}, MODELS_SCHEMA).to_pylist()[0]
    assert design_from_row(stored) == design
    # a row of a schema-4 store has none of the schema-5 columns: they read as their defaults
    old = {k: v for k, v in row.items() if k not in NEW_IN_5}
    if design.block in ("X", "Y") and design.stem in STEMS.values() and design_row(design)["head_width"] == 0:
        assert design_from_row(old) == design
        assert design_from_row(conform({k: [v] for k, v in old.items()}, MODELS_SCHEMA).to_pylist()[0]) == design


NEW_IN_5 = ("stage_kernels", "stage_expansions", "activation", "stem_width", "stage_strides", "head_width")


def test_schema_5_columns():
    assert schema.SCHEMA_VERSION == 6  # 6: regime, inference speed, seed in the key, drawn recipe fields
    for p in ("d", "w", "b", "g", "k", "e"):
        assert [f"{p}{i}" for i in range(1, 8)] == [
            c for c in MODELS_SCHEMA.names if c[:1] == p and c[1:].isdigit() and c != "w0"
        ]
    assert set(NEW_IN_5) <= set(DESIGN_COLUMNS)


@pytest.mark.parametrize("se_ratio", [0.0, 0.25])
def test_a_batch_has_the_columns_of_its_designs(se_ratio):
    widths, depths = [[24, 56, 152], [16, 32, 64]], [[1, 2, 3], [2, 2, 2]]
    batch = DesignBatch.from_sampled(widths, depths, [[1.0] * 3, [2.0] * 3], [[8] * 3, [4] * 3], se_ratio=se_ratio,
                                     stem=STEMS["cifar"])  # fmt: skip
    mb = DesignBatch.from_sampled(widths, depths, 1.0, 1, se_ratio=se_ratio, stem=get_stem("imagenet", 24),
                                  block="MB", strides=[[1, 2, 2], [2, 1, 2]], kernels=[[3, 5, 3], [5, 5, 7]],
                                  expansions=[[1, 6, 4], [1, 2, 6]], head_width=64)  # fmt: skip
    for one in (batch, mb):
        cols = design_columns(one)
        assert list(cols) == list(DESIGN_COLUMNS)
        assert [{k: v[i] for k, v in cols.items()} for i in range(len(one))] == [
            design_row(one.design(i)) for i in range(len(one))
        ]


def test_the_column_groups_are_columns_of_the_tables():
    names = set(MODELS_SCHEMA.names)
    for group in (DESIGN_COLUMNS, CONTEXT_COLUMNS, DRAW_COLUMNS, MODEL_COLUMNS, MODEL_ROW_KEY, MODEL_KEY):
        assert set(group) <= names, group
    assert set(RESULT_KEY) <= set(RESULTS_SCHEMA.names)
    assert len(MODEL_COLUMNS) == len(set(MODEL_COLUMNS))
    for name in ("multiplicity", "draw_indices", "seed", "draw_index"):  # population.py reads these
        assert name in DRAW_COLUMNS


def test_every_committed_ladder_row_decodes_to_its_model_id():
    """The codec and the id: each stored row's design and context hash to the id stored with it."""
    rows = Store.open(LADDER).read_arrow("models", MODEL_COLUMNS).to_pylist()
    assert len(rows) == 382
    for row in rows:
        task = Task.from_row(row)
        assert task.design.model_id(task.context) == row["model_id"]
        assert task.design.block == row["block"] == "X"
        cx = task.design.complexity(task.context)
        assert (cx.flops, cx.params, cx.acts) == (row["flops"], row["params"], row["acts"])
    assert rows[0]["model_id"] == "28cbbaa87e86573e"


def test_conform_fills_missing_columns_and_refuses_unknown_ones():
    t = conform({"model_id": ["a"], "recipe_hash": ["r"], "status": ["ok"]}, RESULTS_SCHEMA)
    assert t.schema.equals(RESULTS_SCHEMA) and t.column("error").null_count == 1
    assert conform(t, RESULTS_SCHEMA) is t
    assert conform(pa.table({"model_id": ["a"]}), RESULTS_SCHEMA).schema.equals(RESULTS_SCHEMA)
    with pytest.raises(ValueError, match="bogus"):
        conform({"bogus": [1]}, RESULTS_SCHEMA)
    with pytest.raises(ValueError, match="bogus"):
        conform(pa.table({"bogus": [1]}), RESULTS_SCHEMA)


NEW_IN_6 = ("peak_reserved_mb", "device_workers", "tf32")


def test_a_schema_5_results_part_reads_with_the_schema_6_columns_null(tmp_path):
    """Issue 23: schema 6 adds results columns (reserved GPU memory, workers sharing the device, TF32). A part
    written by schema 5 (without them, its metadata saying 5) still reads, they read as null, and a row
    written now beside it keeps its values."""
    import pyarrow.parquet as pq

    assert schema.SCHEMA_VERSION == 6 and set(NEW_IN_6) <= set(RESULTS_SCHEMA.names)
    assert RESULTS_SCHEMA.field("tf32").type == pa.bool_()
    st = Store.create(tmp_path / "s")
    v5 = pa.schema([f for f in RESULTS_SCHEMA if f.name not in NEW_IN_6])
    old = pa.Table.from_pylist(
        [{"model_id": "m5", "recipe_hash": "r", "status": "ok", "error": 9.5, "peak_memory_mb": 900.0}], schema=v5
    ).replace_schema_metadata({b"regspace_schema_version": b"5", b"regspace_table": b"results"})
    pq.write_table(old, tmp_path / "s" / "results" / "part-0000000000000000001-v5.parquet")
    st.append_rows("results", [Result.ok("m6", error=8.0, min_error=8.0, epochs=1, recipe_hash="r",
                                         peak_reserved_mb=1024.0, device_workers=4, tf32=False).row()])  # fmt: skip
    rows = {r["model_id"]: r for r in Store.open(tmp_path / "s").results_for("r").to_pylist()}
    assert rows["m5"]["error"] == 9.5 and rows["m5"]["peak_memory_mb"] == 900.0
    assert all(rows["m5"][c] is None for c in NEW_IN_6)
    assert (rows["m6"]["peak_reserved_mb"], rows["m6"]["device_workers"], rows["m6"]["tf32"]) == (1024.0, 4, False)
