"""The store: a directory of parquet files that plain pandas, pyarrow or DuckDB can read (SPEC §7).

Layout (schema version 1)::

    STORE/regspace.json              {"format": "regspace-store", "schema_version": 1, ...}
    STORE/models/part-*.parquet      sampled models, one row per (space, model_id)
    STORE/results/part-*.parquet     training results, one row per (model_id, recipe_hash)

Every write is a new part file, written under a dot-name (which readers ignore), flushed, then
renamed into place: a reader never sees half a file and concurrent writers never touch each
other's files. Nothing is ever rewritten in place; :meth:`Store.compact` merges parts into one new
part before deleting the old ones, so a crash at any moment loses nothing (at worst rows appear
twice, and readers de-duplicate). All part files of a table share one fixed schema, so
``pandas.read_parquet("STORE/models")`` sees every column.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from regspace import __version__
from regspace.errors import StoreError

SCHEMA_VERSION = 1
FORMAT = "regspace-store"
MARKER = "regspace.json"
DEFAULT_STORE = "regspace-store"

MODEL_PARAM_COLUMNS = (
    [("d", pa.int64()), ("w0", pa.int64()), ("wa", pa.float64()), ("wm", pa.float64()),
     ("b", pa.float64()), ("g", pa.int64())]
    + [(f"d{i}", pa.int64()) for i in range(1, 5)]
    + [(f"w{i}", pa.int64()) for i in range(1, 5)]
    + [(f"b{i}", pa.float64()) for i in range(1, 5)]
    + [(f"g{i}", pa.int64()) for i in range(1, 5)]
)

MODELS_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("space", pa.string()),
        ("block", pa.string()),
        ("flops", pa.int64()),
        ("params", pa.int64()),
        ("acts", pa.int64()),
        ("depth", pa.int64()),
        ("stage_widths", pa.list_(pa.int64())),
        ("stage_depths", pa.list_(pa.int64())),
        ("stage_group_widths", pa.list_(pa.int64())),
        ("stage_bottleneck_ratios", pa.list_(pa.float64())),
        ("se_ratio", pa.float64()),
        ("stem", pa.string()),
        ("resolution", pa.int64()),
        ("in_channels", pa.int64()),
        ("num_classes", pa.int64()),
        ("preset", pa.string()),
        *MODEL_PARAM_COLUMNS,
        ("seed", pa.int64()),
        ("draw_index", pa.int64()),
        ("sampled_at", pa.timestamp("us", tz="UTC")),
        ("regspace_version", pa.string()),
    ]
)

RESULTS_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("recipe_hash", pa.string()),
        ("status", pa.string()),  # ok | diverged | failed
        ("error", pa.float64()),  # final validation top-1 error, percent
        ("min_error", pa.float64()),  # minimum over epochs of the validation error, percent
        ("test_error", pa.float64()),  # test-set top-1 error, percent (never used to compare spaces)
        ("train_loss", pa.float64()),
        ("epochs", pa.int64()),  # epochs completed
        ("reason", pa.string()),  # why a model diverged or failed
        ("train_seconds", pa.float64()),
        ("images_per_second", pa.float64()),
        ("peak_memory_mb", pa.float64()),
        ("device", pa.string()),
        ("seed", pa.int64()),
        ("dataset", pa.string()),
        ("split", pa.string()),  # JSON: train/val sizes, split seed, checksum
        ("recipe", pa.string()),  # JSON: every hyper-parameter
        ("torch_version", pa.string()),
        ("lightning_version", pa.string()),
        ("regspace_version", pa.string()),
        ("host", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)

TABLES = {"models": (MODELS_SCHEMA, ["space", "model_id"]), "results": (RESULTS_SCHEMA, ["model_id", "recipe_hash"])}


def _warn(message: str) -> None:
    print(f"regspace: warning: {message}", file=sys.stderr)


class Store:
    """A regspace store directory. Use :meth:`open` (existing) or :meth:`create` (new or existing)."""

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike = DEFAULT_STORE, *, create: bool = False) -> Store:
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise StoreError(f"store path {p} is a file, not a directory; choose another --store")
        marker = p / MARKER
        if not marker.exists():
            if not create:
                raise StoreError(f"no regspace store at {p}", hint="run `regspace sample` first, or pass --store")
            if p.exists() and any(q for q in p.iterdir() if not q.name.startswith(".")):
                raise StoreError(f"{p} is a non-empty directory that is not a regspace store (no {MARKER})")
            return cls._initialise(p)
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read {marker}: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(f"{marker} does not describe a regspace store")
        version = meta.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StoreError(
                f"store {p} has schema version {version}, newer than this regspace supports ({SCHEMA_VERSION})",
                hint="upgrade regspace to read it",
            )
        return cls(p, meta)

    @classmethod
    def create(cls, path: str | os.PathLike = DEFAULT_STORE) -> Store:
        return cls.open(path, create=True)

    @classmethod
    def _initialise(cls, p: Path) -> Store:
        meta = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "created_by": f"regspace {__version__}",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            for sub in ("models", "results"):
                (p / sub).mkdir(parents=True, exist_ok=True)
            marker = p / MARKER
            if not marker.exists():
                _atomic_write_bytes(marker, (json.dumps(meta, indent=2) + "\n").encode(), exclusive=True)
        except OSError as e:
            raise StoreError(f"cannot create store at {p}: {e.strerror or e}") from None
        return cls.open(p)

    # -- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str = "store"):
        """An exclusive advisory lock (fcntl.flock): serialises read-modify-append sequences."""
        import fcntl

        fd = os.open(self.path / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- writing -------------------------------------------------------------------------
    def append(self, table_name: str, table: pa.Table | dict) -> Path | None:
        """Append rows as a new part file (atomic). Missing columns are written as nulls."""
        schema, _ = TABLES[table_name]
        table = conform(table, schema)
        if table.num_rows == 0:
            return None
        meta = {b"regspace_schema_version": str(SCHEMA_VERSION).encode(), b"regspace_table": table_name.encode()}
        table = table.replace_schema_metadata(meta)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"part-{stamp}-{time.time_ns() % 10**9:09d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.path / table_name / name
        try:
            with _temporary(final) as tmp:
                pq.write_table(table, tmp, compression="zstd")
                _fsync_path(tmp)
                os.replace(tmp, final)
            _fsync_path(final.parent)
        except OSError as e:  # pyarrow's I/O errors are OSErrors too, sometimes without errno set
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(
                    m in str(e) for m in ("No space left", "Disk quota", "File too large")):
                raise StoreError(
                    f"disk full while writing {table.num_rows} row(s) to {final.parent}; nothing was written "
                    "and every earlier row is intact", hint="free space and rerun; finished work is kept",
                ) from None
            raise StoreError(f"cannot write to store {self.path}: {e.strerror or e}") from None
        return final

    def append_rows(self, table_name: str, rows: list[dict]) -> Path | None:
        """Append row dicts (keys are column names; missing columns become nulls)."""
        schema, _ = TABLES[table_name]
        return self.append(table_name, pa.Table.from_pylist(rows, schema=schema))

    # -- reading -------------------------------------------------------------------------
    def parts(self, table_name: str) -> list[Path]:
        d = self.path / table_name
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if p.name.startswith("part-") and p.name.endswith(".parquet"))

    def read_arrow(self, table_name: str, columns: list[str] | None = None, *, dedupe: bool = True) -> pa.Table:
        """All rows of a table as one arrow table, in write order, duplicates removed (first kept)."""
        schema, key = TABLES[table_name]
        for attempt in range(5):
            try:
                tables = [t for t in (self.read_part(p, columns) for p in self.parts(table_name)) if t is not None]
                break
            except FileNotFoundError:  # a concurrent compaction removed a part we listed: list again
                time.sleep(0.05 * (attempt + 1))
        else:  # pragma: no cover - needs five compactions racing one read
            raise StoreError(f"store {self.path} kept changing while it was read; try again")
        want = schema if columns is None else pa.schema([schema.field(c) for c in columns])
        if not tables:  # (Schema.empty_table would import pandas: 0.2 s of start-up)
            return pa.Table.from_arrays([pa.array([], type=f.type) for f in want], schema=want)
        table = pa.concat_tables(tables)
        if dedupe and all(k in table.column_names for k in key):
            table = _dedupe(table, key)
        return table

    def read_part(self, path: Path, columns: list[str] | None = None) -> pa.Table | None:
        """One part file conformed to its table's schema; None (with a warning) if unreadable."""
        schema, _ = TABLES[path.parent.name]
        try:
            meta = pq.read_schema(path).metadata or {}
            version = int(meta.get(b"regspace_schema_version", b"1"))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer regspace (schema {version} > {SCHEMA_VERSION})",
                    hint="upgrade regspace to read this store",
                )
            table = pq.read_table(path)
        except FileNotFoundError:
            raise
        except StoreError:
            raise
        except (OSError, pa.ArrowException, ValueError) as e:
            _warn(f"skipping unreadable file {path} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                  "its rows are not counted; move it aside or restore it")
            return None
        table = conform(table, schema)
        return table.select(columns) if columns is not None else table

    def read(self, table_name: str, columns: list[str] | None = None):
        """All rows of a table as a pandas DataFrame, de-duplicated."""
        return self.read_arrow(table_name, columns).to_pandas()

    def models(self, columns: list[str] | None = None):
        return self.read("models", columns)

    def results(self, columns: list[str] | None = None):
        return self.read("results", columns)

    def model_ids(self, space: str | None = None) -> set[str]:
        t = self.read_arrow("models", ["space", "model_id"])
        spaces = t.column("space").to_pylist()
        return {m for s, m in zip(spaces, t.column("model_id").to_pylist()) if space is None or s == space}

    # -- maintenance ---------------------------------------------------------------------
    def compact(self, table_name: str, *, min_parts: int = 16) -> int:
        """Merge a table's parts into one (when there are at least ``min_parts``). Returns parts removed."""
        with self.lock(f"compact-{table_name}"):
            parts = self.parts(table_name)
            if len(parts) < min_parts:
                return 0
            schema, key = TABLES[table_name]
            tables = []
            for p in parts:
                t = self.read_part(p)
                if t is None:  # never delete what we could not read
                    return 0
                tables.append(t)
            self.append(table_name, _dedupe(pa.concat_tables(tables), key))
            for p in parts:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            return len(parts)


def conform(table: pa.Table | dict, schema: pa.Schema) -> pa.Table:
    """Cast to ``schema``: missing columns become nulls, unknown columns are an error."""
    if isinstance(table, dict):
        n = len(next(iter(table.values()))) if table else 0
        arrays = []
        for f in schema:
            if f.name in table:
                arrays.append(pa.array(table[f.name], type=f.type, from_pandas=True))
            else:
                arrays.append(pa.nulls(n, type=f.type))
        extra = set(table) - set(schema.names)
        if extra:
            raise ValueError(f"unknown column(s) for this table: {sorted(extra)}")
        return pa.Table.from_arrays(arrays, schema=schema)
    if table.schema.equals(schema):
        return table  # already conformed (e.g. by the sampler, which keeps the table for --queue)
    extra = set(table.column_names) - set(schema.names)
    if extra:
        raise ValueError(f"unknown column(s) for this table: {sorted(extra)}")
    arrays = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, type=f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _dedupe(table: pa.Table, key: list[str]) -> pa.Table:
    """Keep one row per key: the first in write order, except that a result with status 'failed'
    gives way to a later ok/diverged one for the same model and recipe (a retried failure)."""
    n = table.num_rows
    if n == 0:
        return table
    order = pa.array(range(n), type=pa.int64())
    if "status" in table.column_names:
        failed = pc.fill_null(pc.equal(table.column("status"), "failed"), False)
        order = pc.add(order, pc.multiply(pc.cast(failed, pa.int64()), n))
    indexed = table.select(key).append_column("_o", order)
    first = indexed.group_by(key, use_threads=False).aggregate([("_o", "min")]).column("_o_min")
    if len(first) == n:
        return table
    rows = pc.subtract(first, pc.multiply(pc.cast(pc.greater_equal(first, n), pa.int64()), n))
    return table.take(rows.take(pc.sort_indices(rows)))


@contextlib.contextmanager
def _temporary(final: Path):
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    with _temporary(path) as tmp:
        tmp.write_bytes(data)
        _fsync_path(tmp)
        if exclusive:
            try:
                os.link(tmp, path)  # fails if another process created it first
            except FileExistsError:
                pass
        else:
            os.replace(tmp, path)
