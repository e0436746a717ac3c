"""Datasets larger than memory: memory-mapped shards, their preparation, resume, and training from them.

The mapped layout is checked against the in-memory layout built from the same folder (images,
labels, channel sums, batches, and a trained model's error must be identical), and against plain
numpy indexing.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from regspace.data import prepare
from regspace.data.imagefolder import image_sums
from regspace.data.mapped import ShardedArray, verify_shards
from regspace.errors import RegspaceError

from conftest import default_sigint


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REGSPACE_CACHE", str(tmp_path / "cache"))


def make_folder(root: Path, per_class=(20, 4), classes=("cat", "dog", "eel"), size=(24, 20), seed=0, bad=True):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "test"), per_class):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    if bad:
        (root / "train" / classes[0] / "broken.png").write_bytes(b"not a png")
    return root


def dense(ds):
    a = ds.arrays()
    return {k: (v[:] if isinstance(v, ShardedArray) else v) for k, v in a.items()}


def test_sharded_array_take_is_numpy_indexing(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (53, 2, 3, 3), dtype=np.uint8)
    counts, paths, lo = [7, 1, 20, 25], [], 0
    for i, n in enumerate(counts):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], x[lo : lo + n])
        lo += n
    arr = ShardedArray(paths, counts, x.shape[1:])
    idx = rng.integers(0, 53, 200)  # unsorted, repeated, across every shard
    assert np.array_equal(arr.take(idx), x[idx])
    assert np.array_equal(arr[5:40], x[5:40]) and len(arr) == 53
    with pytest.raises(IndexError):
        arr.take(np.array([53]))


def test_mapped_and_in_memory_layouts_hold_the_same_dataset(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs")
    mapped = prepare(f"imagefolder:{root}", resolution=16, map_above=0, shard_images=7, workers=2)
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image" in err and "broken.png" in err
    memory = prepare(f"imagefolder:{root}", resolution=16, map_above=float("inf"))
    assert (mapped.layout, memory.layout) == ("mapped", "memory")
    a, b = dense(mapped), dense(memory)
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(a[k], b[k]), k
    assert a["train_x"].shape == (60, 3, 16, 16) and a["test_x"].shape == (12, 3, 16, 16)
    assert np.array_equal(a["train_sums"], image_sums(b["train_x"]))
    m = mapped.manifest()
    assert len(m["splits"]["train"]["shards"]) == 9 and m["skipped"][0][0].endswith("broken.png")
    assert verify_shards(mapped.path, m) == 11
    # Found again with no option: the automatic choice uses the complete map.
    assert prepare(f"imagefolder:{root}", resolution=16).layout == "mapped"


def test_a_corrupt_shard_fails_verification_with_one_line(tmp_path):
    root = make_folder(tmp_path / "imgs", bad=False)
    ds = prepare(f"imagefolder:{root}", resolution=8, map_above=0, shard_images=16)
    shard = ds.path / ds.manifest()["splits"]["train"]["shards"][1]["file"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(RegspaceError, match="train-00001.npy is corrupt"):
        verify_shards(ds.path, ds.manifest())


def test_resume_keeps_completed_shards_and_discards_partial_ones(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs", bad=False)
    reference = dense(prepare(f"imagefolder:{root}", resolution=12, map_above=float("inf")))
    ds = prepare(f"imagefolder:{root}", resolution=12, map_above=0, shard_images=5, workers=1)
    d = ds.path
    # The state an interruption leaves: no manifest, some shards without their .done.json, a dot-file.
    (d / "manifest.json").unlink()
    for stem in ("train-00003", "test-00001"):
        (d / f"{stem}.done.json").unlink()
    (d / ".train-00007.npy.1a2b3c.tmp").write_bytes(b"half a shard")
    kept = {p.name: p.stat().st_mtime_ns for p in d.glob("*.npy")}
    assert prepare(f"imagefolder:{root}", resolution=12).layout == "mapped"  # a begun map is finished
    err = capsys.readouterr().err
    assert "resuming: 13 of 15 shards already complete" in err
    assert not list(d.glob(".*.tmp"))
    rewritten = {n for n, t in kept.items() if (d / n).stat().st_mtime_ns != t}
    assert rewritten == {"train-00003.npy", "test-00001.npy"}
    again = dense(prepare(f"imagefolder:{root}", resolution=12))
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(again[k], reference[k]), k


def test_a_changed_folder_is_prepared_again(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs", bad=False)
    first = prepare(f"imagefolder:{root}", resolution=8, map_above=0)
    assert first.n_train == 60
    make_folder(root, per_class=(21, 4), seed=1, bad=False)  # one more image per class (and new pixels)
    second = prepare(f"imagefolder:{root}", resolution=8)
    assert "changed since it was last prepared" in capsys.readouterr().err
    assert second.layout == "mapped" and second.n_train == 63 and second.path == first.path


@pytest.mark.parametrize(
    "layout, message",
    [
        ("one-class", r"has one class \(cat\)"),
        ("empty-class", "class folder .*dog has no images"),
        ("no-classes", "has no class sub-folders"),
        ("missing", "does not exist"),
    ],
)
def test_folders_that_are_not_datasets_are_one_line(tmp_path, layout, message):
    root = tmp_path / "f"
    if layout == "one-class":
        make_folder(root, classes=("cat",), bad=False)
    elif layout == "empty-class":
        make_folder(root, bad=False)
        for p in (root / "train" / "dog").iterdir():
            p.unlink()
    elif layout == "no-classes":
        root.mkdir()
    with pytest.raises(RegspaceError, match=message):
        prepare(f"imagefolder:{root}", resolution=8, map_above=0)


def test_a_disk_too_small_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil

    root = make_folder(tmp_path / "imgs", bad=False)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(RegspaceError, match=r"the shards need .*B at .* but only 1KB is free"):
        prepare(f"imagefolder:{root}", resolution=16, map_above=0)
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_batches_from_the_map_equal_batches_from_memory(tmp_path):
    import torch

    from regspace.train.pipeline import Batches, DeviceImages, MappedImages

    root = make_folder(tmp_path / "imgs", bad=False)
    x_map = prepare(f"imagefolder:{root}", resolution=10, map_above=0, shard_images=6).arrays()["train_x"]
    rows = np.array([3, 50, 7, 8, 41, 0, 22, 59, 13, 30, 31, 2])  # a split's rows, as make_split gives them
    held = DeviceImages(torch.from_numpy(x_map[:][rows]))
    y = torch.arange(len(rows))
    opts = dict(batch_size=5, mean=torch.zeros(3), std=torch.ones(3), in_channels=3, augment="flip+crop")
    for shuffle in (True, False):
        a = Batches(held, y, shuffle=shuffle, seed=4, **opts)
        b = Batches(MappedImages(x_map, rows, torch.device("cpu"), 5), y, shuffle=shuffle, seed=4, **opts)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(ya, yb) and torch.equal(xa, xb)


def test_a_model_trains_identically_from_the_map_and_from_memory(tmp_path):
    import torch

    from regspace.design import Context, Design, get_stem
    from regspace.train.fit import fit_one, prepare_tensors
    from regspace.train.recipe import Recipe
    from regspace.train.records import Task

    root = make_folder(tmp_path / "imgs", per_class=(40, 5), size=(16, 16), bad=False)
    recipe = Recipe(epochs=1, batch_size=16, val_size=30, train_size=None, dataset=f"imagefolder:{root}")
    design = Design.from_sampled([8, 16], [1, 1], 1.0, 8, stem=get_stem("cifar"))
    task = Task("m", design, Context(16, 3, 3))
    errors = {}
    for limit in (0, float("inf")):
        ds = prepare(recipe.dataset, resolution=16, map_above=limit)
        data = prepare_tensors(ds.arrays(), recipe, torch.device("cpu"), recipe.dataset, ds.num_classes)
        torch.manual_seed(0)
        r = fit_one(task, recipe, data, device=torch.device("cpu"))
        assert r.status == "ok", r.reason
        errors[r.data_layout] = (r.error, r.test_error, r.train_loss)
    assert errors["mapped"] == errors["memory"]


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "regspace", *map(str, args)], capture_output=True, text=True, timeout=300, **kw
    )


def test_an_interrupt_counts_the_shards_on_disk_as_a_resume_will(tmp_path, monkeypatch):
    """A shard written just before Ctrl-C, whose completion the parent had not yet recorded, is kept and
    counted (the suite once saw "1 of 210 shards" with 2 on disk)."""
    from regspace.data import build
    from regspace.data.mapped import completed_shards
    from regspace.errors import Interrupted

    def written_then_interrupted(fn, jobs, *, workers, on_done):
        on_done(jobs[0], fn(jobs[0]))
        fn(jobs[1])  # written, and Ctrl-C comes before on_done
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "run_jobs", written_then_interrupted)
    rng = np.random.default_rng(0)
    arrays = {"train_x": rng.integers(0, 255, (10, 1, 8, 8), dtype=np.uint8), "train_y": np.arange(10) % 2,
              "test_x": rng.integers(0, 255, (4, 1, 8, 8), dtype=np.uint8), "test_y": np.arange(4) % 2}  # fmt: skip
    with pytest.raises(Interrupted, match=r"interrupted: 2 of 6 shards of toy are complete and kept"):
        build.build_mapped(tmp_path / "d", {"name": "toy", "key": "k"}, arrays=arrays, num_classes=2, shard_images=3,
                           progress=False, say=lambda *a: None)  # fmt: skip
    assert len(completed_shards(tmp_path / "d")) == 2


def test_prepare_interrupted_by_ctrl_c_resumes_from_its_completed_shards(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=(200, 10), size=(48, 48), bad=False)
    env = {**os.environ, "REGSPACE_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "regspace", "data", "prepare", f"imagefolder:{root}", "--resolution", "32"]
    args += ["--shard-images", "3", "--workers", "1"]
    p = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    shards = tmp_path / "cache" / "datasets"
    deadline = time.time() + 60
    while time.time() < deadline and not list(shards.glob("*/*.done.json")):
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    (d,) = shards.glob("*.shards")
    done = len(list(d.glob("*.done.json")))
    assert err.strip().splitlines()[-1] == (
        f"regspace: error: interrupted: {done} of 210 shards of imagefolder-imgs are complete and kept "
        "(run the same command again to finish the rest)"
    )
    assert not (d / "manifest.json").exists() and 1 <= done < 210  # stopped part-way, nothing claimed complete
    p2 = _cli(*args[3:], env=env)
    assert p2.returncode == 0, p2.stderr
    assert f"resuming: {done} of 210 shards already complete" in p2.stderr
    assert "600 training + 30 test images in 210 memory-mapped shards" in p2.stdout
    m = json.loads((d / "manifest.json").read_text())
    assert verify_shards(d, m) == 210 and not list(d.glob(".*"))


@pytest.mark.slow
def test_train_reads_the_prepared_map_and_records_it(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=(30, 4), size=(16, 16), bad=False)
    env = {**os.environ, "REGSPACE_CACHE": str(tmp_path / "cache")}
    store = tmp_path / "s"
    p = _cli("data", "prepare", f"imagefolder:{root}", "--resolution", "16", env=env)
    assert p.returncode == 0 and "in 2 memory-mapped shards" in p.stdout, p.stderr
    p = _cli(
        "sample", "--store", store, "--space", "RegNetX", "-n", 2, "--preset", "mnist", "--resolution", 16,
        "--in-channels", 3, "--classes", 3, "--flops", ":20M", env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    tiny = ["--val-size", "20", "--train-size", "70", "--epochs", "1", "--batch-size", "16", "--workers", "1"]
    tiny += ["--data", f"imagefolder:{root}"]
    p = _cli("train", "--store", store, "--limit", 1, *tiny, env=env)
    assert p.returncode == 0 and "trained 1 of 1" in p.stdout, p.stderr
    import pandas as pd

    r = pd.read_parquet(store / "results")  # (the in-memory path's "memory" is checked in test_train.py)
    assert list(r.data_layout) == ["mapped"] and (r.status == "ok").all()
