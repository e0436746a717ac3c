"""Datasets: IDX/CIFAR/image-folder decoding, the cache, the seeded split, and downloads over loopback."""

import gzip
import hashlib
import http.server
import pickle
import threading

import numpy as np
import pytest

from regspace.data import make_split, prepare
from regspace.data.download import fetch
from regspace.data.sources import RemoteFile, Source, locate, read_idx
from regspace.errors import RegspaceError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REGSPACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REGSPACE_DATA", raising=False)
    monkeypatch.delenv("REGSPACE_DATA_URL", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(d, n_train=40, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    out = {}
    for name, arr in files.items():
        data = idx_bytes(arr)
        if gz:
            data = gzip.compress(data)
            name += ".gz"
        (d / name).write_bytes(data)
        out[name] = hashlib.sha256(data).hexdigest()
    return out, files


def tiny_source(digests, base_url="http://127.0.0.1:1/"):
    """A dataset like Fashion-MNIST whose published checksums are those of our tiny files."""
    files = tuple(RemoteFile(name, digest) for name, digest in digests.items())  # train/test images/labels order
    return Source("tiny", "idx", files, base_url, 28, 1, tuple(str(i) for i in range(10)))


def test_idx_roundtrip_and_truncation(tmp_path):
    _, files = write_idx_dataset(tmp_path / "d", gz=False)
    x = read_idx(tmp_path / "d" / "train-images-idx3-ubyte")
    assert x.shape == (40, 28, 28) and (x == files["train-images-idx3-ubyte"]).all()
    p = tmp_path / "d" / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(RegspaceError, match="truncated"):
        read_idx(p)


def test_fashion_mnist_from_data_dir_and_cache(tmp_path):
    write_idx_dataset(tmp_path / "fm")
    ds = prepare("fashion-mnist", data_dir=tmp_path / "fm")
    a = ds.arrays(verify=True)
    assert a["train_x"].shape == (40, 1, 28, 28) and a["test_y"].shape == (10,) and a["train_x"].dtype == np.uint8
    again = prepare("fashion-mnist", data_dir=tmp_path / "fm")
    assert again.path == ds.path  # cached: keyed on the raw files' checksums
    up = prepare("fashion-mnist", data_dir=tmp_path / "fm", resolution=32)
    assert up.arrays()["train_x"].shape == (40, 1, 32, 32) and up.path != ds.path


def test_regspace_data_env_is_searched(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "root" / "mnist", gz=False)
    monkeypatch.setenv("REGSPACE_DATA", str(tmp_path / "root"))
    assert prepare("mnist", download=False).n_train == 40


def test_bad_data_dir_is_one_clear_error(tmp_path):
    with pytest.raises(RegspaceError, match="does not exist"):
        prepare("fashion-mnist", data_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegspaceError, match="no fashion-mnist files"):
        prepare("fashion-mnist", data_dir=tmp_path / "empty")
    with pytest.raises(RegspaceError, match="unknown dataset"):
        prepare("imagenet-22k")
    with pytest.raises(RegspaceError, match="does not exist"):
        prepare(f"imagefolder:{tmp_path / 'missing'}")


def test_cifar_batches_directory(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (7, 3072)).astype(np.uint8), b"labels": list(rng.integers(0, 10, 7))}
        (d / name).write_bytes(pickle.dumps(batch))
    ds = prepare("cifar10", data_dir=tmp_path)
    a = ds.arrays()
    assert a["train_x"].shape == (35, 3, 32, 32) and a["test_x"].shape == (7, 3, 32, 32)
    raw = pickle.loads((d / "data_batch_1").read_bytes())
    assert (a["train_x"][0].reshape(-1) == raw[b"data"][0]).all()


def test_cifar_archive(tmp_path):
    """The canonical cifar-10-python.tar.gz, read without unpacking it to disk."""
    import tarfile

    src = tmp_path / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (3, 3072)).astype(np.uint8), b"labels": [1, 2, 3]}
        (src / name).write_bytes(pickle.dumps(batch))
    d = tmp_path / "d"
    d.mkdir()
    with tarfile.open(d / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    a = prepare("cifar10", data_dir=d).arrays()
    assert a["train_x"].shape == (15, 3, 32, 32) and a["test_y"].tolist() == [1, 2, 3]


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
            d = tmp_path / "imgs" / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40 + i, 30), colour).save(d / f"{i}.png")
    ds = prepare(f"imagefolder:{tmp_path / 'imgs'}", resolution=16)
    a = ds.arrays()
    assert a["train_x"].shape == (6, 3, 16, 16) and ds.num_classes == 2
    assert set(a["train_y"].tolist()) == {0, 1}
    assert a["train_x"][a["train_y"] == 1][:, 2].min() > 200  # dogs are blue


def test_split_is_seeded_disjoint_and_recorded():
    a = make_split(1000, val_size=100, train_size=300, seed=3)
    b = make_split(1000, val_size=100, train_size=300, seed=3)
    c = make_split(1000, val_size=100, train_size=300, seed=4)
    assert (a["val"] == b["val"]).all() and (a["train"] == b["train"]).all()
    assert not set(a["val"]) & set(a["train"])
    assert a["record"] == b["record"] and a["record"]["val_sha256"] != c["record"]["val_sha256"]
    with pytest.raises(RegspaceError):
        make_split(100, val_size=100, train_size=None, seed=0)
    with pytest.raises(RegspaceError):
        make_split(100, val_size=10, train_size=95, seed=0)


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    truncate: set = set()

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if name in self.truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.files, _Handler.truncate = {}, set()
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", _Handler
    httpd.shutdown()


def test_download_good_bad_and_truncated(tmp_path, server):
    base, handler = server
    payload = b"regspace" * 1000
    handler.files = {"good.bin": payload, "cut.bin": payload}
    handler.truncate = {"cut.bin"}
    good = hashlib.sha256(payload).hexdigest()
    out = fetch(base + "good.bin", tmp_path / "good.bin", sha256=good, progress=False)
    assert out.read_bytes() == payload
    with pytest.raises(RegspaceError, match="checksum mismatch"):
        fetch(base + "good.bin", tmp_path / "bad.bin", sha256="0" * 64, progress=False)
    with pytest.raises(RegspaceError, match="truncated|broke off"):
        fetch(base + "cut.bin", tmp_path / "cut.bin", sha256=good, progress=False)
    with pytest.raises(RegspaceError, match="could not download"):
        fetch(base + "missing.bin", tmp_path / "m.bin", sha256=good, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bin"]  # nothing half-written is left


def test_dataset_download_through_locate(tmp_path, server, monkeypatch):
    base, handler = server
    digests, _ = write_idx_dataset(tmp_path / "served")
    handler.files = {n: (tmp_path / "served" / n).read_bytes() for n in digests}
    source = tiny_source(digests)
    monkeypatch.setenv("REGSPACE_DATA_URL", base)
    found = locate(source, progress=False)
    assert set(found) == set(digests) and all(p.exists() for p in found.values())
    # a corrupted mirror is refused and leaves nothing behind
    import shutil

    shutil.rmtree(tmp_path / "cache" / "downloads")
    handler.files["t10k-labels-idx1-ubyte.gz"] = b"not the file"
    with pytest.raises(RegspaceError, match="checksum mismatch"):
        locate(source, progress=False)
    assert not (tmp_path / "cache" / "downloads" / "tiny" / "t10k-labels-idx1-ubyte.gz").exists()
