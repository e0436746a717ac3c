"""The store: a directory of parquet files that plain pandas, pyarrow or DuckDB can read (docs/design.md).

Layout (schema version 4)::

    STORE/regspace.json              {"format": "regspace-store", "schema_version": 4, ...}
    STORE/models/part-*.parquet      sampled models: one row per (space, model_id) and sampling call,
                                     with the draws of that call that produced it (multiplicity)
    STORE/results/part-*.parquet     training results, one row per (model_id, recipe_hash, seed)

Populations are i.i.d. draws (docs/design.md, "Populations"): a network drawn k times counts k
times. A later call that draws a stored network again appends a row with that call's draws, so the
multiplicity is append-only like everything else; :meth:`Store.read_arrow` merges the rows of one
model (multiplicity summed: :func:`regspace.population.merge_draws`). Schema-1 stores kept distinct
networks only: each model counts once. The tables' columns are defined in :mod:`regspace.schema`.

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

from regspace import __version__, defaults, population
from regspace.errors import StoreError
from regspace.schema import (
    DRAW_COLUMNS,
    SCHEMA_VERSION,
    SETTLED,
    TABLES,
    conform,
    recipe_hash,
    result_seed,
)

FORMAT = "regspace-store"
MARKER = "regspace.json"
DEFAULT_STORE = defaults.STORE
_warned_legacy: set[str] = set()


def _warn(message: str) -> None:
    print(f"regspace: warning: {message}", file=sys.stderr)


class Store:
    """A regspace store directory. Use :meth:`open` (existing) or :meth:`create` (new or existing)."""

    def __init__(self, path: Path, meta: dict, *, strict: bool = False):
        self.path = Path(path)
        self.meta = meta
        # strict: an unreadable part file is an error, not a warning. Commands that write from what they
        # read (training) open stores strictly: reading a damaged results part as "no results" would
        # train every model in it again (issue 25 §4).
        self.strict = strict
        self._warned: set[str] = set()  # unreadable part files named in a warning already: once each

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike = DEFAULT_STORE, *, create: bool = False, strict: bool = False) -> Store:
        """The store at ``path`` (``create``: a new one if there is none). ``strict``: see ``Store.strict``.
        Raises StoreError (one line) for a path that is not a store or a store newer than this regspace."""
        store = cls._open(path, create=create)
        store.strict = strict
        return store

    @classmethod
    def _open(cls, path: str | os.PathLike, *, create: bool) -> Store:
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise StoreError(f"store path {p} is a file, not a directory; choose another --store")
        marker = p / MARKER
        if not marker.exists():
            if not create:
                raise StoreError(f"no regspace store at {p}", hint="run `regspace sample` first, or pass --store")
            if p.exists() and any(not _being_initialised(q) for q in p.iterdir() if not q.name.startswith(".")):
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
    def create(cls, path: str | os.PathLike = DEFAULT_STORE, *, strict: bool = False) -> Store:
        return cls.open(path, create=True, strict=strict)

    @classmethod
    def _initialise(cls, p: Path) -> Store:
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created_by": f"regspace {__version__}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
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
        self._upgrade_marker()
        name = _part_name(time.time_ns())
        final = self.path / table_name / name
        try:
            with _temporary(final) as tmp:
                pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
                _fsync_path(tmp)
                os.replace(tmp, final)
            _fsync_path(final.parent)
        except OSError as e:  # pyarrow's I/O errors are OSErrors too, sometimes without errno set
            raise StoreError(_write_error(e, table.num_rows, final.parent, self.path)) from None
        return final

    def _upgrade_marker(self) -> None:
        """Parts of this schema are being added: say so in the marker, so an older regspace refuses the store
        with one line at open instead of at some part. Older parts stay as they are (readers conform them)."""
        if self.meta.get("schema_version", 1) >= SCHEMA_VERSION:
            return
        meta = {**self.meta, "schema_version": SCHEMA_VERSION, "upgraded_by": f"regspace {__version__}"}
        try:
            _atomic_write_bytes(self.path / MARKER, (json.dumps(meta, indent=2) + "\n").encode())
        except OSError as e:
            raise StoreError(f"cannot write to store {self.path}: {e.strerror or e}") from None
        self.meta = meta

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
        """All rows of a table as one arrow table, in write order, duplicates removed (first kept).

        For models, ``dedupe`` also merges the rows of one (space, model_id) into one: its first row,
        with ``multiplicity`` summed and ``draw_indices`` joined. ``dedupe=False`` gives the raw rows.
        """
        schema, key = TABLES[table_name]
        merge = dedupe and table_name == "models"
        wanted = columns
        if merge and columns is not None:
            columns = list(dict.fromkeys([*columns, *DRAW_COLUMNS]))
        elif dedupe and columns is not None and table_name == "results":  # its key, to de-duplicate by
            columns = list(dict.fromkeys([*columns, *key, "status"]))
        for attempt in range(5):
            try:
                tables = [t for t in (self.read_part(p, columns) for p in self.parts(table_name)) if t is not None]
                break
            except FileNotFoundError:  # a concurrent compaction removed a part we listed: list again
                time.sleep(0.05 * (attempt + 1))
        else:  # pragma: no cover - needs five compactions racing one read
            raise StoreError(f"store {self.path} kept changing while it was read; try again")
        want = schema if wanted is None else pa.schema([schema.field(c) for c in wanted])
        if not tables:  # (Schema.empty_table would import pandas: 0.2 s of start-up)
            return pa.Table.from_arrays([pa.array([], type=f.type) for f in want], schema=want)
        table = pa.concat_tables(tables)
        if dedupe and all(k in table.column_names for k in key):
            table = _dedupe(table, key)
        if merge:
            table = population.merge_draws(table).select(want.names)
        elif table.column_names != want.names:
            table = table.select(want.names)
        return table

    def read_part(self, path: Path, columns: list[str] | None = None) -> pa.Table | None:
        """One part file conformed to its table's schema; None (with a warning) if unreadable. With
        ``columns``, only those are read from the file (parquet is columnar: the others cost nothing),
        plus what conforming a results part needs (its seed and recipe hash; its recipe only when a
        seed must be recovered from it); a column the file lacks reads as nulls."""
        table_name = path.parent.name
        schema, _ = TABLES[table_name]
        try:
            file_schema = pq.read_schema(path)
            meta = file_schema.metadata or {}
            version = int(meta.get(b"regspace_schema_version", b"1"))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer regspace (schema {version} > {SCHEMA_VERSION})",
                    hint="upgrade regspace to read this store",
                )
            extra = set(file_schema.names) - set(schema.names)
            if extra:  # what conform would say of the whole file
                raise ValueError(f"unknown column(s) for this table: {sorted(extra)}")
            projected = columns is not None and not (version < 2 and table_name == "models")
            if projected:
                need = list(dict.fromkeys([*columns, *(["seed", "recipe_hash"] if table_name == "results" else [])]))
                table = pq.read_table(path, columns=[c for c in need if c in file_schema.names])
                schema = pa.schema([schema.field(c) for c in need])
            else:
                table = pq.read_table(path)
            if version < 2 and table_name == "models":
                table = _legacy_models(table, self.path)
            table = conform(table, schema)
            if table_name == "results":
                table = _seeded_results(table, version, recipes=lambda: _recipe_column(path, file_schema, table))
        except FileNotFoundError:
            raise
        except StoreError:
            raise
        except (OSError, pa.ArrowException, ValueError) as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            if self.strict:
                raise StoreError(
                    f"cannot read {path} ({reason}); training now would take its rows for missing",
                    hint="restore the file or move it aside; --skip-unreadable goes on without its rows "
                    "(models whose results it holds are then trained again)",
                ) from None
            if str(path) not in self._warned:
                self._warned.add(str(path))
                _warn(f"skipping unreadable file {path} ({reason}); its rows are not counted; move it aside or "
                      "restore it")  # fmt: skip
            return None
        return table.select(columns) if columns is not None else table

    def verify(self) -> tuple[int, list[tuple[Path, str]]]:
        """Read every part file in full, checking parquet's page checksums (written since store schema 5;
        older parts have none, and are checked for being readable). Returns (parts read, [(part, reason)])
        of the damaged ones."""
        bad, parts = [], [p for t in TABLES for p in self.parts(t)]
        for p in parts:
            try:
                pq.read_table(p, page_checksum_verification=True)
            except (OSError, pa.ArrowException, ValueError) as e:
                bad.append((p, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"))
        return len(parts), bad

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

    # -- queries: the one definition of "done" (SETTLED) -------------------------------------
    def results_for(self, recipe_hash: str, columns: list[str] | None = None, *, seed: int | None = None) -> pa.Table:
        """The results of one recipe, one per model and seed (SETTLED first, then the first written);
        ``seed``: only that seed's (None: every seed)."""
        extra = ["recipe_hash"] + (["seed"] if seed is not None else [])
        t = self.read_arrow("results", None if columns is None else list(dict.fromkeys([*extra, *columns])))
        t = t.filter(pc.equal(t.column("recipe_hash"), recipe_hash))
        if seed is not None:
            t = t.filter(pc.equal(t.column("seed"), seed))
        return t if columns is None else t.select(columns)

    def settled_ids(
        self, recipe_hash: str, *, seed: int = 0, with_failed: bool = False, skip_parts: set[str] | None = None
    ) -> set:
        """Models with a SETTLED result for this recipe and training ``seed`` (``with_failed``: or a failed
        one, which a run without --retry-failed does not train again). ``skip_parts`` (names, updated) reads
        only parts not seen yet."""
        done = (*SETTLED, "failed") if with_failed else SETTLED
        out = set()
        for p in self.parts("results"):
            if skip_parts is not None:
                if p.name in skip_parts:
                    continue
                skip_parts.add(p.name)
            t = self.read_part(p, ["model_id", "recipe_hash", "seed", "status"])
            if t is None:
                continue
            cols = (t.column(c).to_pylist() for c in ("model_id", "recipe_hash", "seed", "status"))
            for m, r, s, st in zip(*cols):
                if r == recipe_hash and s == seed and st in done:
                    out.add(m)
        return out

    def pending(
        self,
        recipe_hash: str,
        columns: list[str],
        *,
        seed: int = 0,
        spaces: list[str] | None = None,
        retry_failed: bool = False,
    ) -> list[dict]:
        """Model rows (``columns``) with no result settling them for this recipe and training ``seed``, one
        per model id, in store order; a model sampled in two spaces is listed once. Unknown ``spaces`` are an
        error."""
        models = self.read_arrow("models", list(dict.fromkeys(["model_id", "space", *columns]))).to_pylist()
        if spaces:
            known = {m["space"] for m in models}
            unknown = [s for s in spaces if s not in known]
            if unknown:
                raise StoreError(
                    f"the store has no models of space(s) {', '.join(unknown)}",
                    hint=f"it holds {', '.join(sorted(known)) or 'none'}",
                )
            models = [m for m in models if m["space"] in spaces]
        done = self.settled_ids(recipe_hash, seed=seed, with_failed=not retry_failed)
        out, seen = [], set()
        for m in models:
            if m["model_id"] not in done and m["model_id"] not in seen:
                seen.add(m["model_id"])
                out.append(m)
        return out

    def draw_rows(self) -> pa.Table:
        """Every models row's draws as written (DRAW_COLUMNS, one row per sampling call and network, not
        merged): what :mod:`regspace.population` orders and counts."""
        return self.read_arrow("models", list(DRAW_COLUMNS), dedupe=False)

    def draws(self, space: str) -> int:
        """How many accepted draws the store holds for ``space`` (the population's size, repeats included)."""
        return population.draw_count(self.read_arrow("models", ["space", "multiplicity"]), space)

    def next_draw(self, space: str, seed: int) -> int:
        """The first candidate of the (space, seed) stream that no stored row has used: sampling resumes there."""
        return population.next_draw(self.draw_rows(), space, seed)

    # -- maintenance ---------------------------------------------------------------------
    # -- what `collect` already copied from each sweep (so that the next collect fetches only what is new)
    COLLECTED = "collected.json"

    def collect_mark(self, key: str) -> dict:
        try:
            return json.loads((self.path / self.COLLECTED).read_text()).get(key, {})
        except (OSError, ValueError):
            return {}  # no mark (or an unreadable one): collect everything; readers de-duplicate

    def set_collect_mark(self, key: str, mark: dict) -> None:
        with self.lock("collected"):
            try:
                marks = json.loads((self.path / self.COLLECTED).read_text())
            except (OSError, ValueError):
                marks = {}
            marks[key] = mark
            try:
                _atomic_write_bytes(self.path / self.COLLECTED, json.dumps(marks, indent=1).encode())
            except OSError as e:
                raise StoreError(f"cannot write to store {self.path}: {e.strerror or e}") from None

    # -- side files ----------------------------------------------------------------------
    # The one door for others (a study's identity, a fidelity check's selection) into the store
    # directory: a JSON file beside the tables, replaced whole, atomically and durably.
    def _side_file(self, name: str) -> Path:
        if not name.endswith(".json") or Path(name).name != name or name.startswith(".") or name in (
            MARKER, self.COLLECTED
        ):  # fmt: skip
            raise ValueError(f"{name!r} is not a side-file name (a plain *.json name the store does not own)")
        return self.path / name

    def write_json(self, name: str, obj, *, indent: int = 1) -> Path:
        """Replace the side file ``name`` (e.g. "fidelity.json") with ``obj`` as JSON (no trailing newline).

        Readers see the old file or the new one, never a part; the file survives a crash once this returns.
        Raises StoreError when the directory cannot be written, ValueError for a name that is not a plain
        ``*.json`` name or that the store itself owns (its marker, its collect marks)."""
        path = self._side_file(name)
        try:
            _atomic_write_bytes(path, json.dumps(obj, indent=indent).encode())
        except OSError as e:
            raise StoreError(f"cannot write to store {self.path}: {e.strerror or e}") from None
        return path

    def read_json(self, name: str):
        """The side file ``name`` as written by :meth:`write_json`, or None when there is none.
        Raises StoreError when it exists but cannot be read or parsed."""
        path = self._side_file(name)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read {path}: {e}") from None

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


def _being_initialised(entry: Path) -> bool:
    """An empty table directory: another process is creating this store (its marker comes last)."""
    return entry.name in TABLES and entry.is_dir() and not any(entry.iterdir())


def _dedupe(table: pa.Table, key: list[str]) -> pa.Table:
    """Keep one row per key: the first in write order, except that a result with status 'failed'
    gives way to a later ok/diverged one for the same model and recipe (a retried failure)."""
    n = table.num_rows
    if n == 0:
        return table
    order = pa.array(range(n), type=pa.int64())
    if "status" in table.column_names:  # SETTLED results come first; among equals, the first written
        unsettled = pc.invert(pc.fill_null(pc.is_in(table.column("status"), pa.array(SETTLED)), False))
        order = pc.add(order, pc.multiply(pc.cast(unsettled, pa.int64()), n))
    indexed = table.select(key).append_column("_o", order)
    first = indexed.group_by(key, use_threads=False).aggregate([("_o", "min")]).column("_o_min")
    if len(first) == n:
        return table
    rows = pc.subtract(first, pc.multiply(pc.cast(pc.greater_equal(first, n), pa.int64()), n))
    return table.take(rows.take(pc.sort_indices(rows)))


def _part_name(ns: int) -> str:
    """Part files sort in write order: seconds and nanoseconds from ONE clock reading (two readings can
    straddle a second and sort a later part first)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9))
    return f"part-{stamp}-{ns % 10**9:09d}-{uuid.uuid4().hex[:8]}.parquet"


def _write_error(e: OSError, rows: int, where: Path, store: Path) -> str:
    """What happened, in one line: a full disk or quota is not a file-size limit."""
    text = str(e)
    intact = "nothing was written and every earlier row is intact"
    if e.errno in (errno.ENOSPC, errno.EDQUOT) or any(m in text for m in ("No space left", "Disk quota")):
        return (
            f"disk full while writing {rows} row(s) to {where}; {intact} (free space and rerun; finished work is kept)"
        )
    if e.errno == errno.EFBIG or "File too large" in text:
        return (
            f"file too large: writing {rows} row(s) to {where} exceeded the largest file this process may write "
            f"(a file-size limit such as `ulimit -f`, or the file system's maximum); {intact}"
        )
    return f"cannot write to store {store}: {e.strerror or e}"


def _recipe_column(path: Path, file_schema: pa.Schema, table: pa.Table) -> list:
    """A results part's recipe texts (read from the file when the table was read without them)."""
    if "recipe" in table.column_names:
        return table.column("recipe").to_pylist()
    if "recipe" not in file_schema.names:
        return [None] * table.num_rows
    return pq.read_table(path, columns=["recipe"]).column("recipe").to_pylist()


def _seeded_results(table: pa.Table, version: int, recipes=None) -> pa.Table:
    """A results part keyed as schema 6 keys it (RESULT_KEY has the seed; the recipe hash leaves it out):
    a null seed reads as its recipe's (0 without one), and before schema 6 a result of another seed than 0
    carried a hash with its seed in it, which is recomputed from its recipe (schema.SCHEMA_VERSION, 6).
    ``recipes``: gives the part's recipe texts, row by row (default: the table's recipe column); called
    only when a seed or hash must be recovered."""
    import json

    seeds = table.column("seed")
    stale = seeds.null_count > 0 or (version < 6 and pc.any(pc.not_equal(seeds, 0)).as_py())
    if not stale:
        return table
    seed_out, hash_out = seeds.to_pylist(), table.column("recipe_hash").to_pylist()
    texts = recipes() if recipes is not None else table.column("recipe").to_pylist()
    for i, (seed, text) in enumerate(zip(seed_out, texts)):
        fields = json.loads(text) if text else {}
        seed_out[i] = seed = result_seed(seed, fields)
        if version < 6 and seed != 0 and fields:
            hash_out[i] = recipe_hash(fields)
    i_seed, i_hash = table.column_names.index("seed"), table.column_names.index("recipe_hash")
    table = table.set_column(i_seed, "seed", pa.array(seed_out, pa.int64()))
    return table.set_column(i_hash, "recipe_hash", pa.array(hash_out, pa.string()))


def _legacy_models(table: pa.Table, store: Path) -> pa.Table:
    """A schema-1 models part: it kept distinct networks only, so each of its models counts once."""
    if str(store) not in _warned_legacy:
        _warned_legacy.add(str(store))
        _warn(
            f"store {store} holds models sampled by an older regspace (schema 1, distinct networks only): "
            "each of them counts once"
        )
    n = table.num_rows
    if "multiplicity" not in table.column_names:
        table = table.append_column("multiplicity", pa.array([1] * n, type=pa.int64()))
    if "draw_indices" not in table.column_names and "draw_index" in table.column_names:
        table = table.append_column(
            "draw_indices",
            pa.ListArray.from_arrays(
                pa.array(range(0, n + 1), type=pa.int32()), table.column("draw_index").combine_chunks()
            ),
        )
    return table


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
