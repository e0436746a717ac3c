"""The store: plain-pandas readable, append-only, atomic, concurrent-safe, versioned."""

import json
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regspace.errors import StoreError
from regspace.store import SCHEMA_VERSION, Store


def sample(run_cli, store, space="X_c", n=40, seed=0, *extra):
    code, out, err = run_cli("sample", "--space", space, "-n", n, "--seed", seed, "--store", store, *extra)
    assert code == 0, err
    return out


def test_same_seed_gives_byte_identical_ids(tmp_path, run_cli):
    for name in ("a", "b"):
        sample(run_cli, tmp_path / name, "X_e", 60, 3)
        sample(run_cli, tmp_path / name, "RegNetY", 60, 3)
    ids = [pd.read_parquet(tmp_path / name / "models").model_id.tolist() for name in ("a", "b")]
    assert ids[0] == ids[1] and len(set(ids[0])) == 120
    sample(run_cli, tmp_path / "c", "X_e", 60, 4)
    assert set(pd.read_parquet(tmp_path / "c" / "models").model_id) != set(ids[0][:60])


def test_more_samples_add_new_models_and_keep_old_ones(tmp_path, run_cli):
    s = tmp_path / "s"
    sample(run_cli, s, "X_c", 50)
    first = pd.read_parquet(s / "models")
    sample(run_cli, s, "X_c", 30)
    both = pd.read_parquet(s / "models")
    assert len(both) == 80 and both.model_id.is_unique
    kept = both[both.model_id.isin(first.model_id)].sort_values("model_id").reset_index(drop=True)
    assert kept.drop(columns=["sampled_at"]).equals(
        first.sort_values("model_id").reset_index(drop=True).drop(columns=["sampled_at"])
    )
    # a second space may hold the same model: rows are per (space, model_id)
    sample(run_cli, s, "X_d", 10)
    assert len(Store.open(s).models()) == 90


def test_two_concurrent_samplers_lose_nothing(tmp_path):
    s = tmp_path / "s"
    cmd = [sys.executable, "-m", "regspace", "sample", "--space", "X_a", "-n", "150", "--store", str(s)]
    procs = [subprocess.Popen(cmd + ["--seed", str(k)], stderr=subprocess.PIPE, text=True) for k in (1, 1, 2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    df = pd.read_parquet(s / "models")
    assert df.multiplicity.sum() == 450
    # the second seed-1 sampler continued after the first one's draws: no draw was used twice
    seed1 = [i for v in df[df.seed == 1].draw_indices for i in v]
    assert len(seed1) == 300 and len(set(seed1)) == 300


def test_reads_deduplicate_rows_written_twice(tmp_path, run_cli):
    s = tmp_path / "s"
    sample(run_cli, s, "X_c", 20)
    part = Store.open(s).parts("models")[0]
    (s / "models" / ("part-zz-copy.parquet")).write_bytes(part.read_bytes())
    assert len(pd.read_parquet(s / "models")) == 40  # plain readers see both copies
    assert len(Store.open(s).models()) == 20  # regspace readers de-duplicate


def test_corrupt_part_is_named_and_other_rows_survive(tmp_path, run_cli):
    s = tmp_path / "s"
    sample(run_cli, s, "X_c", 20)
    sample(run_cli, s, "X_b", 20)
    bad = s / "models" / "part-00000000-corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    code, out, err = run_cli("status", "--store", s)
    assert code == 0 and str(bad) in err and "skipping" in err
    assert "X_c\t-\t20" in out and "X_b\t-\t20" in out
    code, out, err = run_cli("sample", "--space", "X_c", "-n", 5, "--store", s)
    assert code == 0 and bad.exists()  # never deleted
    assert Store.open(s).compact("models", min_parts=1) == 0  # refuses to merge around a bad file


def test_newer_schema_is_refused(tmp_path, run_cli):
    s = tmp_path / "s"
    sample(run_cli, s, "X_c", 5)
    meta = json.loads((s / "regspace.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (s / "regspace.json").write_text(json.dumps(meta))
    code, _, err = run_cli("status", "--store", s)
    assert code == 1 and "newer" in err and len(err.strip().splitlines()) == 1


def test_newer_part_file_is_refused(tmp_path, run_cli):
    s = tmp_path / "s"
    sample(run_cli, s, "X_c", 5)
    t = pq.read_table(Store.open(s).parts("models")[0])
    t = t.replace_schema_metadata({b"regspace_schema_version": str(SCHEMA_VERSION + 1).encode()})
    pq.write_table(t, s / "models" / "part-99-newer.parquet")
    code, _, err = run_cli("status", "--store", s)
    assert code == 1 and "newer regspace" in err


def test_store_path_errors(tmp_path, run_cli):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_cli("sample", "--space", "X_c", "--store", f)
    assert code == 1 and "is a file" in err
    d = tmp_path / "other"
    d.mkdir()
    (d / "data.csv").write_text("1")
    code, _, err = run_cli("sample", "--space", "X_c", "--store", d)
    assert code == 1 and "not a regspace store" in err
    code, _, err = run_cli("status", "--store", tmp_path / "nothing")
    assert code == 1 and "no regspace store" in err


def test_compaction_keeps_every_row(tmp_path, run_cli):
    s = tmp_path / "s"
    for seed in range(5):
        sample(run_cli, s, "X_c", 10, seed)
    st = Store.open(s)
    before = st.models().sort_values(["space", "model_id"]).reset_index(drop=True)
    assert st.compact("models", min_parts=2) == 5
    assert len(st.parts("models")) == 1
    after = st.models().sort_values(["space", "model_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_disk_full_is_one_clear_line(tmp_path, monkeypatch, run_cli):
    import errno

    s = tmp_path / "s"
    sample(run_cli, s, "X_c", 5)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    code, _, err = run_cli("sample", "--space", "X_c", "-n", 5, "--store", s)
    assert code == 1 and "disk full" in err
    monkeypatch.undo()
    assert len(Store.open(s).models()) == 5
    assert not [p for p in (s / "models").iterdir() if p.name.startswith(".")]


def test_schema_is_fixed_so_plain_pandas_sees_every_column(tmp_path, run_cli):
    s = tmp_path / "s"
    sample(run_cli, s, "RegNetX", 5)
    sample(run_cli, s, "X_a", 5)
    df = pd.read_parquet(s / "models")
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


def test_results_table_roundtrip(tmp_path):
    st = Store.create(tmp_path / "s")
    st.append(
        "results",
        {
            "model_id": ["a", "a", "b"],
            "recipe_hash": ["r", "r", "r"],
            "status": ["ok", "ok", "failed"],
            "error": [10.0, 11.0, None],
        },
    )
    r = st.results()
    assert len(r) == 2 and r.set_index("model_id").error["a"] == 10.0
    with pytest.raises(ValueError):
        st.append("results", {"model_id": ["x"], "bogus": [1]})


def test_open_requires_marker(tmp_path):
    with pytest.raises(StoreError):
        Store.open(tmp_path / "missing")
    assert isinstance(Store.create(tmp_path / "new"), Store)
    assert pa.__version__


def draws_of(store):
    """Every (draw index, model id) the store holds, from plain pandas."""
    df = pd.read_parquet(store / "models")
    return sorted((i, m) for m, v in zip(df.model_id, df.draw_indices) for i in v)


def test_resuming_continues_the_stream_and_never_recounts(tmp_path, run_cli):
    """-n 300 in three calls gives exactly the draws of one -n 900 call: nothing redrawn, nothing skipped."""
    args = ("--space", "RegNetX", "--preset", "mnist", "--flops", "2M:4M", "--seed", "5")
    for _ in range(3):
        assert run_cli("sample", "-n", 300, "--store", tmp_path / "a", *args)[0] == 0
    assert run_cli("sample", "-n", 900, "--store", tmp_path / "b", *args)[0] == 0
    a, b = draws_of(tmp_path / "a"), draws_of(tmp_path / "b")
    assert a == b and len(a) == 900
    merged = Store.open(tmp_path / "a").models()
    assert merged.model_id.is_unique and merged.multiplicity.sum() == 900
    assert merged.multiplicity.max() > 1  # at this budget networks repeat, across calls too
    # --total counts draws: already there, so nothing is drawn
    code, out, _ = run_cli("sample", "--total", 900, "--store", tmp_path / "a", *args)
    assert code == 0 and "already holds 900 draws" in out and draws_of(tmp_path / "a") == a


def test_a_repeat_is_counted_not_trained_twice(tmp_path, run_cli):
    s = tmp_path / "s"
    for _ in range(2):
        assert (
            run_cli("sample", "-n", 200, "--store", s, "--space", "RegNetX", "--preset", "mnist", "--flops", "2M:4M")[0]
            == 0
        )
    st = Store.open(s)
    raw = st.read_arrow("models", dedupe=False).to_pandas()
    merged = st.models()
    assert merged.model_id.is_unique and len(merged) < len(raw) < 400  # repeats within and across calls
    assert merged.multiplicity.sum() == raw.multiplicity.sum() == 400
    from regspace.status import store_status

    row = store_status(st)[0]
    assert row["draws"] == 400 and row["pending"] == row["sampled"] == len(merged)


def test_schema_1_store_is_read_with_each_model_once(tmp_path, run_cli, capsys):
    """The committed short sweep was written at schema 1 (distinct networks only)."""
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "experiments" / "results" / "short_sweep" / "store"
    s = tmp_path / "old"
    shutil.copytree(src, s)
    assert json.loads((s / "regspace.json").read_text())["schema_version"] == 1
    st = Store.open(s)
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
    assert Store.open(s).draws("X_a") == 21


def test_part_names_sort_in_write_order_across_a_second():
    from regspace.store import _part_name

    times = [1_700_000_000_999_999_999, 1_700_000_001_000_000_001, 1_700_000_001_500_000_000]
    names = [_part_name(t) for t in times]
    assert sorted(names) == names


def test_a_store_another_process_is_creating_is_not_refused(tmp_path):
    """Store creation makes the table directories before the marker: a second creator in between must
    join the store, not call it foreign. A directory holding anything else is still refused."""
    p = tmp_path / "s"
    (p / "models").mkdir(parents=True)
    (p / "results").mkdir()
    assert Store.create(p).meta["schema_version"] == SCHEMA_VERSION
    q = tmp_path / "t"
    (q / "models").mkdir(parents=True)
    (q / "models" / "x.txt").write_text("not ours")
    with pytest.raises(StoreError, match="not a regspace store"):
        Store.create(q)
