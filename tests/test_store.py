"""The store: plain-pandas readable, append-only, atomic, concurrent-safe, versioned.

A conformance suite in the style of Optuna's StorageTestCase: every store behaviour is a test over the
``backend`` fixture, run once per entry of :data:`BACKENDS`. A second kind of store is one more entry
there (a class with the methods of :class:`ParquetDirectory`). Tests of what only one format can do
(a part file to copy or corrupt, parquet metadata) say which feature they need, and are skipped for a
backend without it.
"""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regspace.errors import StoreError
from regspace.schema import SCHEMA_VERSION
from regspace.store import Store

ROOT = Path(__file__).resolve().parents[1]


class ParquetDirectory:
    """The store as regspace writes it: a directory of parquet part files (docs/design.md)."""

    name = "parquet-directory"
    # parts: the store is part files that a test may list, copy, corrupt or rewrite;
    # plain: plain pandas/pyarrow read its tables (the rows as written, no de-duplication).
    features = frozenset({"parts", "plain"})

    def location(self, tmp_path: Path, name: str = "s") -> Path:
        """What --store takes for a new store named ``name``."""
        return tmp_path / name

    def create(self, location) -> Store:
        return Store.create(location)

    def open(self, location) -> Store:
        return Store.open(location)

    def plain(self, location, table: str) -> pd.DataFrame:
        """A table's rows as an outside reader sees them (every row written, copies included)."""
        return pd.read_parquet(Path(location) / table)


BACKENDS = [ParquetDirectory()]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request):
    return request.param


@pytest.fixture
def loc(backend, tmp_path):
    """A new store's location (nothing created yet)."""
    return backend.location(tmp_path)


@pytest.fixture
def store(backend, loc):
    """A new, empty store."""
    return backend.create(loc)


def needs(backend, *features):
    missing = set(features) - backend.features
    if missing:
        pytest.skip(f"{backend.name} has no {', '.join(sorted(missing))}")


def sample(run_cli, store, space="X_c", n=40, seed=0, *extra):
    code, out, err = run_cli("sample", "--space", space, "-n", n, "--seed", seed, "--store", store, *extra)
    assert code == 0, err
    return out


def raw_models(backend, loc) -> pd.DataFrame:
    """Every models row written (regspace's raw read: no merging, no de-duplication)."""
    return backend.open(loc).read_arrow("models", dedupe=False).to_pandas()


# -- sampling into a store ------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_ids(backend, tmp_path, run_cli):
    locs = {name: backend.location(tmp_path, name) for name in ("a", "b", "c")}
    for name in ("a", "b"):
        sample(run_cli, locs[name], "X_e", 60, 3)
        sample(run_cli, locs[name], "RegNetY", 60, 3)
    ids = [raw_models(backend, locs[name]).model_id.tolist() for name in ("a", "b")]
    assert ids[0] == ids[1] and len(set(ids[0])) == 120
    sample(run_cli, locs["c"], "X_e", 60, 4)
    assert set(raw_models(backend, locs["c"]).model_id) != set(ids[0][:60])


def test_more_samples_add_new_models_and_keep_old_ones(backend, loc, run_cli):
    sample(run_cli, loc, "X_c", 50)
    first = raw_models(backend, loc)
    sample(run_cli, loc, "X_c", 30)
    both = raw_models(backend, loc)
    assert len(both) == 80 and both.model_id.is_unique
    kept = both[both.model_id.isin(first.model_id)].sort_values("model_id").reset_index(drop=True)
    assert kept.drop(columns=["sampled_at"]).equals(
        first.sort_values("model_id").reset_index(drop=True).drop(columns=["sampled_at"])
    )
    # a second space may hold the same model: rows are per (space, model_id)
    sample(run_cli, loc, "X_d", 10)
    assert len(backend.open(loc).models()) == 90


def test_two_concurrent_samplers_lose_nothing(backend, loc):
    cmd = [sys.executable, "-m", "regspace", "sample", "--space", "X_a", "-n", "150", "--store", str(loc)]
    procs = [subprocess.Popen(cmd + ["--seed", str(k)], stderr=subprocess.PIPE, text=True) for k in (1, 1, 2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    df = raw_models(backend, loc)
    assert df.multiplicity.sum() == 450
    # the second seed-1 sampler continued after the first one's draws: no draw was used twice
    seed1 = [i for v in df[df.seed == 1].draw_indices for i in v]
    assert len(seed1) == 300 and len(set(seed1)) == 300


def draws_of(backend, loc):
    """Every (draw index, model id) the store holds, from its raw rows."""
    df = raw_models(backend, loc)
    return sorted((i, m) for m, v in zip(df.model_id, df.draw_indices) for i in v)


def test_resuming_continues_the_stream_and_never_recounts(backend, tmp_path, run_cli):
    """-n 300 in three calls gives exactly the draws of one -n 900 call: nothing redrawn, nothing skipped."""
    a, b = backend.location(tmp_path, "a"), backend.location(tmp_path, "b")
    args = ("--space", "RegNetX", "--preset", "mnist", "--flops", "2M:4M", "--seed", "5")
    for _ in range(3):
        assert run_cli("sample", "-n", 300, "--store", a, *args)[0] == 0
    assert run_cli("sample", "-n", 900, "--store", b, *args)[0] == 0
    draws_a, draws_b = draws_of(backend, a), draws_of(backend, b)
    assert draws_a == draws_b and len(draws_a) == 900
    merged = backend.open(a).models()
    assert merged.model_id.is_unique and merged.multiplicity.sum() == 900
    assert merged.multiplicity.max() > 1  # at this budget networks repeat, across calls too
    assert backend.open(a).next_draw("RegNetX", 5) == backend.open(b).next_draw("RegNetX", 5) == max(draws_a)[0] + 1
    assert backend.open(a).next_draw("RegNetX", 6) == 0 and backend.open(a).draws("RegNetX") == 900
    # --total counts draws: already there, so nothing is drawn
    code, out, _ = run_cli("sample", "--total", 900, "--store", a, *args)
    assert code == 0 and "already holds 900 draws" in out and draws_of(backend, a) == draws_a


def test_a_repeat_is_counted_not_trained_twice(backend, loc, run_cli):
    args = ("--space", "RegNetX", "--preset", "mnist", "--flops", "2M:4M")
    for _ in range(2):
        assert run_cli("sample", "-n", 200, "--store", loc, *args)[0] == 0
    st = backend.open(loc)
    raw = st.read_arrow("models", dedupe=False).to_pandas()
    merged = st.models()
    assert merged.model_id.is_unique and len(merged) < len(raw) < 400  # repeats within and across calls
    assert merged.multiplicity.sum() == raw.multiplicity.sum() == 400
    assert st.draw_rows().num_rows == len(raw)
    from regspace.status import store_status

    row = store_status(st)[0]
    assert row["draws"] == 400 and row["pending"] == row["sampled"] == len(merged)


# -- reading --------------------------------------------------------------------------------------------
def test_reads_deduplicate_rows_written_twice(backend, loc, run_cli):
    sample(run_cli, loc, "X_c", 20)
    st = backend.open(loc)
    st.append("models", st.read_arrow("models", dedupe=False))  # the same rows again (a crash mid-compaction)
    assert len(st.read_arrow("models", dedupe=False)) == 40
    assert len(backend.open(loc).models()) == 20  # regspace readers de-duplicate
    assert backend.open(loc).draws("X_c") == 20  # and count each draw once


def test_plain_readers_see_copies_regspace_readers_do_not(backend, loc, run_cli):
    needs(backend, "parts", "plain")
    sample(run_cli, loc, "X_c", 20)
    part = backend.open(loc).parts("models")[0]
    (Path(loc) / "models" / ("part-zz-copy.parquet")).write_bytes(part.read_bytes())
    assert len(backend.plain(loc, "models")) == 40  # plain readers see both copies
    assert len(backend.open(loc).models()) == 20  # regspace readers de-duplicate


def test_corrupt_part_is_named_and_other_rows_survive(backend, loc, run_cli):
    needs(backend, "parts")
    sample(run_cli, loc, "X_c", 20)
    sample(run_cli, loc, "X_b", 20)
    bad = Path(loc) / "models" / "part-00000000-corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    code, out, err = run_cli("status", "--store", loc)
    assert code == 0 and str(bad) in err and "skipping" in err
    assert "X_c\t-\t20" in out and "X_b\t-\t20" in out
    code, out, err = run_cli("sample", "--space", "X_c", "-n", 5, "--store", loc)
    assert code == 0 and bad.exists()  # never deleted
    assert backend.open(loc).compact("models", min_parts=1) == 0  # refuses to merge around a bad file


def _store_with_results_in_one_part(backend, loc, run_cli, recipe_hash):
    """A store whose results sit in one compacted part file (as the committed ladder's do)."""
    sample(run_cli, loc, "X_c", 12)
    store = backend.open(loc)
    ids = store.models().model_id.tolist()
    for mid in ids:  # one part per result, then compacted into one
        store.append_rows("results", [{"model_id": mid, "recipe_hash": recipe_hash, "status": "ok", "error": 9.0}])
    assert store.compact("results", min_parts=2) == len(ids) and len(store.parts("results")) == 1
    return store, ids


def test_a_damaged_results_part_stops_training_and_read_commands_warn_once(backend, loc, run_cli, capsys):
    """Issue 25 §4: a truncated results part (a disk error). Training would take every model in it for
    untrained and train it again: `train` refuses in one line naming the file; --skip-unreadable goes
    on; read commands warn once each."""
    needs(backend, "parts")
    from regspace.train.recipe import RECIPES
    from regspace.train.runner import open_work

    recipe = RECIPES["quick"]
    store, ids = _store_with_results_in_one_part(backend, loc, run_cli, recipe.hash)
    assert open_work(recipe, store=str(loc), queue=None, explicit_recipe=False).source is None  # all trained
    part = store.parts("results")[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    code, out, err = run_cli("train", "--store", loc, "--workers", "1")
    assert code != 0 and str(part) in err and "--skip-unreadable" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2  # the error line and its hint
    work = open_work(recipe, store=str(loc), queue=None, explicit_recipe=False, skip_unreadable=True)
    assert sorted(m["model_id"] for m in work.models) == sorted(ids)  # what going on would train again
    capsys.readouterr()
    for command in (["status"], ["compare"]):
        code, _, err = run_cli(*command, "--store", loc)
        assert code == 0 and err.count(str(part)) == 1, (command, err)


def test_status_verify_finds_a_damaged_part_by_its_checksums(backend, loc, run_cli):
    """A byte changed inside a part's data (not its footer): plain reads may not notice; `status --verify`
    reads every part in full with parquet's page checksums and names it."""
    needs(backend, "parts")
    store, _ = _store_with_results_in_one_part(backend, loc, run_cli, "r")
    code, out, _ = run_cli("status", "--store", loc, "--verify")
    assert code == 0 and "all readable" in out
    part = store.parts("results")[0]
    import pyarrow.parquet as pq

    # the middle of the largest column chunk: inside a data page, with the footer and magic bytes intact
    group = pq.ParquetFile(part).metadata.row_group(0)
    chunk = max((group.column(i) for i in range(group.num_columns)), key=lambda c: c.total_compressed_size)
    data = bytearray(part.read_bytes())
    data[chunk.data_page_offset + chunk.total_compressed_size // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    code, out, _ = run_cli("status", "--store", loc, "--verify")
    assert code == 1 and f"damaged: {part}" in out and "1 damaged" in out


def test_schema_is_fixed_so_plain_pandas_sees_every_column(backend, loc, run_cli):
    needs(backend, "plain")
    sample(run_cli, loc, "RegNetX", 5)
    sample(run_cli, loc, "X_a", 5)
    df = backend.plain(loc, "models")
    for col in [
        "model_id",
        "space",
        "flops",
        "params",
        "acts",
        "stage_widths",
        "stage_depths",
        "stage_group_widths",
        "stage_bottleneck_ratios",
        "d",
        "w0",
        "wa",
        "wm",
        "b",
        "g",
        "d1",
        "w4",
        "b2",
        "g3",
        "seed",
    ]:
        assert col in df.columns
    assert df[df.space == "X_a"].w0.isna().all() and df[df.space == "RegNetX"].w0.notna().all()
    assert df[df.space == "X_a"].d4.notna().all()


def test_results_table_roundtrip(store):
    store.append(
        "results",
        {
            "model_id": ["a", "a", "b"],
            "recipe_hash": ["r", "r", "r"],
            "status": ["ok", "ok", "failed"],
            "error": [10.0, 11.0, None],
        },
    )
    r = store.results()
    assert len(r) == 2 and r.set_index("model_id").error["a"] == 10.0
    with pytest.raises(ValueError):
        store.append("results", {"model_id": ["x"], "bogus": [1]})


def test_a_settled_result_supersedes_a_failed_one(store):
    """`--retry-failed` trains a failed model again: the later ok result is the one readers keep."""
    store.append_rows("results", [{"model_id": "a", "recipe_hash": "r", "status": "failed", "reason": "oom"}])
    assert store.settled_ids("r") == set() and store.settled_ids("r", with_failed=True) == {"a"}
    store.append_rows("results", [{"model_id": "a", "recipe_hash": "r", "status": "ok", "error": 5.0}])
    assert store.results_for("r", ["model_id", "status", "error"]).to_pylist() == [
        {"model_id": "a", "status": "ok", "error": 5.0}
    ]
    assert store.settled_ids("r") == {"a"} and store.results_for("other").num_rows == 0


def test_the_done_rule_on_hand_written_results(store):
    """What `regspace train` trains (issue 25 §5), read from hand-written rows: ok and diverged settle a
    model for their recipe; failed settles it only without --retry-failed; a result of another recipe
    settles nothing; a model sampled in two spaces is pending once; a later ok supersedes a failed one."""
    ids = ["ok", "div", "fail", "fail_then_ok", "none", "other_recipe", "two_spaces"]
    rows = [
        {"model_id": m, "space": "X_a" if m != "two_spaces" else s, "seed": 0, "draw_index": i, "multiplicity": 1,
         "draw_indices": [i]}
        for i, m in enumerate(ids) for s in (("X_a", "X_b") if m == "two_spaces" else ("X_a",))
    ]  # fmt: skip
    store.append_rows("models", rows)
    results = [
        ("ok", "r", "ok"), ("div", "r", "diverged"), ("fail", "r", "failed"), ("fail_then_ok", "r", "failed"),
        ("fail_then_ok", "r", "ok"), ("other_recipe", "q", "ok"),
    ]  # fmt: skip
    store.append_rows("results", [{"model_id": m, "recipe_hash": h, "status": st} for m, h, st in results])

    def pending(**kw):
        return [m["model_id"] for m in store.pending("r", ["model_id"], **kw)]

    assert pending() == ["none", "other_recipe", "two_spaces"]
    assert pending(retry_failed=True) == ["fail", "none", "other_recipe", "two_spaces"]
    assert store.settled_ids("r") == {"ok", "div", "fail_then_ok"}
    assert store.settled_ids("r", with_failed=True) == {"ok", "div", "fail", "fail_then_ok"}
    assert [m["model_id"] for m in store.pending("q", ["model_id"], spaces=["X_b"])] == ["two_spaces"]


def test_train_hands_the_done_rule_s_pending_models_to_training(tmp_path, run_cli, monkeypatch):
    """`regspace train` and its --retry-failed flag, from the command line to the models handed to the
    worker pool, on hand-written rows and without training (issue 25 §5): ok and diverged results of the
    recipe trained are done; failed is done unless --retry-failed; another recipe's result is not."""
    from regspace.train import runner
    from regspace.train.pool import TrainSummary
    from regspace.train.recipe import RECIPES

    store = Store.create(tmp_path / "s")
    ids = ["ok", "div", "fail", "none", "other_recipe"]
    store.append_rows("models", [{"model_id": m, "space": "X_a", "seed": 0, "draw_index": i, "multiplicity": 1,
                                  "draw_indices": [i], "resolution": 28, "num_classes": 10}
                                 for i, m in enumerate(ids)])  # fmt: skip
    quick = RECIPES["quick"].hash
    results = [("ok", quick, "ok"), ("div", quick, "diverged"), ("fail", quick, "failed"), ("other_recipe", "q", "ok")]
    store.append_rows("results", [{"model_id": m, "recipe_hash": h, "status": st} for m, h, st in results])
    handed = []

    def run_work(work, **kw):  # the pool's entry: what it would train
        handed.append(sorted(m["model_id"] for m in work.models))
        return TrainSummary(work.recipe, len(work.models))

    monkeypatch.setattr(runner, "run_work", run_work)
    assert run_cli("train", "--store", store.path)[0] == 0
    assert run_cli("train", "--store", store.path, "--retry-failed")[0] == 0
    assert run_cli("train", "--store", store.path, "--epochs", "5")[0] == 0  # another recipe: nothing is done
    assert handed == [["none", "other_recipe"], ["fail", "none", "other_recipe"], sorted(ids)]


def test_an_empty_store_reads_empty_tables(store):
    empty = store.read_arrow("models")
    assert empty.num_rows == 0 and list(store.models().columns) == empty.column_names
    assert store.read_arrow("models", ["space", "multiplicity"]).column_names == ["space", "multiplicity"]
    assert store.draws("X_a") == 0 and store.next_draw("X_a", 0) == 0 and store.model_ids() == set()
    assert store.pending("r", ["model_id"]) == []


# -- versions and opening -------------------------------------------------------------------------------
def test_newer_schema_is_refused(backend, loc, run_cli):
    needs(backend, "parts")
    sample(run_cli, loc, "X_c", 5)
    marker = Path(loc) / "regspace.json"
    meta = json.loads(marker.read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    marker.write_text(json.dumps(meta))
    code, _, err = run_cli("status", "--store", loc)
    assert code == 1 and "newer" in err and len(err.strip().splitlines()) == 1


def test_newer_part_file_is_refused(backend, loc, run_cli):
    needs(backend, "parts")
    sample(run_cli, loc, "X_c", 5)
    t = pq.read_table(backend.open(loc).parts("models")[0])
    t = t.replace_schema_metadata({b"regspace_schema_version": str(SCHEMA_VERSION + 1).encode()})
    pq.write_table(t, Path(loc) / "models" / "part-99-newer.parquet")
    code, _, err = run_cli("status", "--store", loc)
    assert code == 1 and "newer regspace" in err


def test_store_path_errors(backend, tmp_path, run_cli):
    needs(backend, "parts")
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_cli("sample", "--space", "X_c", "--store", f)
    assert code == 1 and "is a file" in err
    d = tmp_path / "other"
    d.mkdir()
    (d / "data.csv").write_text("1")
    code, _, err = run_cli("sample", "--space", "X_c", "--store", d)
    assert code == 1 and "not a regspace store" in err
    code, _, err = run_cli("status", "--store", backend.location(tmp_path, "nothing"))
    assert code == 1 and "no regspace store" in err


def test_open_requires_marker(backend, tmp_path):
    with pytest.raises(StoreError):
        backend.open(backend.location(tmp_path, "missing"))
    assert isinstance(backend.create(backend.location(tmp_path, "new")), Store)
    assert pa.__version__


def test_a_store_another_process_is_creating_is_not_refused(backend, tmp_path):
    """Store creation makes the table directories before the marker: a second creator in between must
    join the store, not call it foreign. A directory holding anything else is still refused."""
    needs(backend, "parts")
    p = backend.location(tmp_path, "s")
    (p / "models").mkdir(parents=True)
    (p / "results").mkdir()
    assert backend.create(p).meta["schema_version"] == SCHEMA_VERSION
    q = backend.location(tmp_path, "t")
    (q / "models").mkdir(parents=True)
    (q / "models" / "x.txt").write_text("not ours")
    with pytest.raises(StoreError, match="not a regspace store"):
        backend.create(q)


# -- writing and maintenance ----------------------------------------------------------------------------
def test_compaction_keeps_every_row(backend, loc, run_cli):
    for seed in range(5):
        sample(run_cli, loc, "X_c", 10, seed)
    st = backend.open(loc)
    before = st.models().sort_values(["space", "model_id"]).reset_index(drop=True)
    assert st.compact("models", min_parts=2) == 5
    assert len(st.parts("models")) == 1
    after = st.models().sort_values(["space", "model_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_disk_full_is_one_clear_line(backend, loc, monkeypatch, run_cli):
    import errno

    needs(backend, "parts")
    sample(run_cli, loc, "X_c", 5)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    code, _, err = run_cli("sample", "--space", "X_c", "-n", 5, "--store", loc)
    assert code == 1 and "disk full" in err
    monkeypatch.undo()
    assert len(backend.open(loc).models()) == 5
    assert not [p for p in (Path(loc) / "models").iterdir() if p.name.startswith(".")]


def test_part_names_sort_in_write_order_across_a_second(backend):
    needs(backend, "parts")
    from regspace.store import _part_name

    times = [1_700_000_000_999_999_999, 1_700_000_001_000_000_001, 1_700_000_001_500_000_000]
    names = [_part_name(t) for t in times]
    assert sorted(names) == names


def test_collect_marks_are_kept_per_sweep(store):
    assert store.collect_mark("q|a") == {}
    store.set_collect_mark("q|a", {"last": 3})
    store.set_collect_mark("q|b", {"last": 5})
    assert store.collect_mark("q|a") == {"last": 3} and store.collect_mark("q|b") == {"last": 5}


# -- stores written by older versions -------------------------------------------------------------------
def test_schema_1_store_is_read_with_each_model_once(backend, tmp_path, run_cli, capsys):
    """The committed short sweep was written at schema 1 (distinct networks only)."""
    import shutil

    needs(backend, "parts")
    src = ROOT / "experiments" / "results" / "short_sweep" / "store"
    s = backend.location(tmp_path, "old")
    shutil.copytree(src, s)
    assert json.loads((s / "regspace.json").read_text())["schema_version"] == 1
    st = backend.open(s)
    models = st.models()
    assert len(models) == 32 and (models.multiplicity == 1).all()
    assert (models.draw_indices.map(list) == models.draw_index.map(lambda i: [i])).all()
    err = capsys.readouterr().err
    assert err.count("schema 1, distinct networks only") == 1 and "counts once" in err
    code, out, _ = run_cli("compare", "--store", s, "--json")
    assert code == 0 and [r["n"] for r in json.loads(out)["spaces"]] == [16, 16]
    # sampling more upgrades the marker; the old rows keep counting once
    assert (
        run_cli(
            "sample", "-n", 5, "--space", "X_a", "--preset", "mnist", "--flops", "2M:4M", "--seed", "1", "--store", s
        )[0]
        == 0
    )
    assert json.loads((s / "regspace.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert backend.open(s).draws("X_a") == 21


LADDER = ROOT / "experiments" / "results" / "ladder" / "store"
LADDER_SPACES = ["X_a", "X_b", "X_c", "X_d", "X_e", "RegNetX"]


def test_the_committed_ladder_store_reads_the_same():
    """The ladder store (schema 4) read through the public API: any change in reading, de-duplicating or
    merging its rows shows up here. RegNetX drew two networks twice, in different sampling calls."""
    from regspace import population
    from regspace.status import store_status

    st = Store.open(LADDER)
    raw = st.read_arrow("models", dedupe=False)
    models = st.models()
    assert raw.num_rows == 384 and len(models) == 382 and models.model_id.is_unique
    assert list(dict.fromkeys(models.space)) == LADDER_SPACES
    assert int(models.multiplicity.sum()) == 384 and (models.seed == 7).all()
    assert {s: st.draws(s) for s in LADDER_SPACES} == dict.fromkeys(LADDER_SPACES, 64)
    assert models.groupby("space").size().to_dict() == {**dict.fromkeys(LADDER_SPACES, 64), "RegNetX": 62}
    repeats = models[models.multiplicity > 1].set_index("model_id").draw_indices.map(list).to_dict()
    assert repeats == {"70988bd52e37d86c": [3999, 14574], "068030cd3055e841": [12589, 16921]}
    assert st.next_draw("RegNetX", 7) == 18019 and st.next_draw("RegNetX", 0) == 0
    order = population.draw_order(st.draw_rows(), LADDER_SPACES)
    assert [len(v) for v in order.values()] == [64] * 6
    assert order["X_a"][:2] == ["28cbbaa87e86573e", "d43880a52ff14e2c"]
    assert order["RegNetX"][:2] == ["e76236106cf9eaf9", "67e07f60eb90e813"]
    results = st.results()
    assert len(results) == 398 and (results.status == "ok").all()
    assert results.recipe_hash.value_counts().to_dict() == {"0a6bacc79eca": 382, "267f5601a656": 16}
    status = {(r["space"], r["recipe"]): (r["draws"], r["sampled"], r["ok"], r["pending"]) for r in store_status(st)}
    assert status[("RegNetX", "0a6bacc79eca")] == (64, 62, 62, 0)
    assert status[("RegNetX", "267f5601a656")] == (64, 62, 8, 54)
    assert status[("X_a", "267f5601a656")] == (64, 64, 8, 56)
    assert len(status) == 12
