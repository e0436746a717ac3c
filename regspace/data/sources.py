"""Where datasets come from: local directories, the Debian package, or their canonical download.

Search order for a dataset's raw files: ``--data-dir``, ``$REGSPACE_DATA``, system directories
(Debian's dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist), regspace's download
cache; failing those, the files are downloaded from the canonical location (``$REGSPACE_DATA_URL``
overrides the base URL, e.g. for a mirror) and verified against their published sha256.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regspace.data.files import cache_root
from regspace.errors import RegspaceError, UsageProblem


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str


@dataclass(frozen=True)
class Source:
    """A dataset with a fixed set of raw files."""

    name: str
    kind: str  # idx | cifar
    files: tuple[RemoteFile, ...]
    base_url: str
    resolution: int
    channels: int
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()


FASHION_MNIST = Source(
    "fashion-mnist",
    "idx",
    (
        RemoteFile("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        RemoteFile("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        RemoteFile("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    28,
    1,
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ("/usr/share/datasets/fashion-mnist",),
)

MNIST = Source(
    "mnist",
    "idx",
    (
        RemoteFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    28,
    1,
    tuple(str(i) for i in range(10)),
    ("/usr/share/datasets/mnist",),
)

CIFAR10 = Source(
    "cifar10",
    "cifar",
    (RemoteFile("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),),
    "https://www.cs.toronto.edu/~kriz/",
    32,
    3,
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)

SOURCES = {s.name: s for s in (FASHION_MNIST, MNIST, CIFAR10)}
ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}


def get_source(name: str) -> Source:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SOURCES:
        raise UsageProblem(f"unknown dataset {name!r}", hint=f"use one of {', '.join(SOURCES)} or imagefolder:PATH")
    return SOURCES[key]


# -- locating raw files ------------------------------------------------------------------


def _candidates(source: Source, directory: Path) -> list[Path]:
    return [directory, directory / source.name]


def _files_in(source: Source, directory: Path) -> dict[str, Path] | None:
    """Map each raw file to a path in ``directory`` (also accepts idx files without .gz, and an
    extracted cifar-10-batches-py directory), or None when something is missing."""
    found = {}
    for f in source.files:
        plain = f.name[:-3] if f.name.endswith(".gz") else None
        if (directory / f.name).is_file():
            found[f.name] = directory / f.name
        elif plain and (directory / plain).is_file():
            found[f.name] = directory / plain
        elif source.kind == "cifar" and (directory / "cifar-10-batches-py" / "data_batch_1").is_file():
            found[f.name] = directory / "cifar-10-batches-py"
        elif source.kind == "cifar" and (directory / "data_batch_1").is_file():
            found[f.name] = directory
        else:
            return None
    return found


def locate(
    source: Source, data_dir: str | os.PathLike | None = None, *, download: bool = True, progress: bool = True
) -> dict[str, Path]:
    """Paths of the raw files, downloading them when no local copy exists."""

    if data_dir is not None:
        d = Path(data_dir)
        if not d.is_dir():
            raise RegspaceError(f"data directory {d} does not exist")
        for c in _candidates(source, d):
            if (found := _files_in(source, c)) is not None:
                return found
        raise RegspaceError(
            f"no {source.name} files in {d}",
            hint=f"expected {', '.join(f.name for f in source.files)} (or without .gz)",
        )
    search = []
    if os.environ.get("REGSPACE_DATA"):
        search += _candidates(source, Path(os.environ["REGSPACE_DATA"]))
    search += [Path(p) for p in source.system_dirs]
    downloads = cache_root() / "downloads" / source.name
    search.append(downloads)
    for c in search:
        if c.is_dir() and (found := _files_in(source, c)) is not None:
            return found
    if not download:
        raise RegspaceError(
            f"{source.name} not found locally and downloads are disabled", hint="pass --data-dir or set REGSPACE_DATA"
        )
    from regspace.data.download import fetch

    base = os.environ.get("REGSPACE_DATA_URL", source.base_url)
    if not base.endswith("/"):
        base += "/"
    downloads.mkdir(parents=True, exist_ok=True)
    for f in source.files:
        target = downloads / f.name
        if not target.exists():
            fetch(base + f.name, target, sha256=f.sha256, progress=progress)
    return {f.name: downloads / f.name for f in source.files}


# -- decoding ------------------------------------------------------------------------------


def _open_maybe_gz(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST format): images (N, rows, cols) or labels (N,), uint8."""
    try:
        with _open_maybe_gz(path) as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise RegspaceError(f"cannot read {path}: {e}") from None
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise RegspaceError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise RegspaceError(f"{path} is truncated or corrupt: header says {dims}, found {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def decode(source: Source, files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Raw files -> uint8 arrays train_x/test_x (N, C, H, W) and int64 labels train_y/test_y."""
    if source.kind == "idx":
        names = [f.name for f in source.files]
        tx, ty, ex, ey = (read_idx(files[n]) for n in names)
        if tx.ndim != 3 or ex.ndim != 3 or len(tx) != len(ty) or len(ex) != len(ey):
            raise RegspaceError(f"{source.name}: image and label files do not match")
        return {
            "train_x": tx[:, None],
            "train_y": ty.astype(np.int64),
            "test_x": ex[:, None],
            "test_y": ey.astype(np.int64),
        }
    return _decode_cifar(files[source.files[0].name])


def _decode_cifar(path: Path) -> dict[str, np.ndarray]:
    batches = {}
    try:
        if path.is_dir():
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                with open(path / name, "rb") as f:
                    batches[name] = pickle.load(f, encoding="bytes")
        else:
            with tarfile.open(path, "r:gz") as tar:
                for member in tar.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if base.startswith("data_batch_") or base == "test_batch":
                        batches[base] = pickle.load(tar.extractfile(member), encoding="bytes")
    except (OSError, EOFError, tarfile.TarError, pickle.UnpicklingError, KeyError) as e:
        raise RegspaceError(f"cannot read CIFAR-10 from {path}: {e}") from None
    missing = ({f"data_batch_{i}" for i in range(1, 6)} | {"test_batch"}) - set(batches)
    if missing:
        raise RegspaceError(f"CIFAR-10 at {path} lacks {', '.join(sorted(missing))}")

    def stack(names):
        x = np.concatenate([np.asarray(batches[n][b"data"], dtype=np.uint8) for n in names]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(batches[n][b"labels"], dtype=np.int64) for n in names])
        return x, y

    tx, ty = stack([f"data_batch_{i}" for i in range(1, 6)])
    ex, ey = stack(["test_batch"])
    return {"train_x": tx, "train_y": ty, "test_x": ex, "test_y": ey}
