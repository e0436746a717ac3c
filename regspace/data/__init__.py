"""Datasets for training: found or downloaded once, decoded once, cached as uint8 arrays.

``prepare(spec, resolution=...)`` returns a :class:`~regspace.data.cache.CachedDataset`; the
training workers load its arrays and slice batches from them (see regspace.train.pipeline).
Specs: ``fashion-mnist`` (default), ``mnist``, ``cifar10``, ``imagefolder:PATH``. No torch here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from regspace.data.cache import CachedDataset, cache_key, open_cached, write_cached
from regspace.data.files import sha256_file
from regspace.data.sources import SOURCES, decode, get_source, locate
from regspace.errors import RegspaceError

__all__ = ["prepare", "CachedDataset", "SOURCES", "dataset_names", "make_split"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def dataset_names() -> list[str]:
    return [*SOURCES, "imagefolder:PATH"]


def prepare(
    spec: str,
    *,
    resolution: int | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> CachedDataset:
    """Find (or download), decode and cache a dataset at ``resolution`` (None: its native size)."""
    if spec.lower().startswith("imagefolder:"):
        return _prepare_imagefolder(Path(spec.split(":", 1)[1]), resolution or 32)
    if spec.lower() == "imagefolder":
        raise RegspaceError("the imagefolder dataset needs a path: --data imagefolder:PATH")
    source = get_source(spec)
    files = locate(source, data_dir, download=download, progress=progress)
    digests = {name: sha256_file(p) if p.is_file() else _dir_digest(p) for name, p in sorted(files.items())}
    res = resolution or source.resolution
    key = cache_key({"dataset": source.name, "files": digests, "resolution": res})
    if (cached := open_cached(source.name, key)) is not None:
        return cached
    arrays = decode(source, files)
    if res != source.resolution:
        arrays["train_x"], arrays["test_x"] = resize(arrays["train_x"], res), resize(arrays["test_x"], res)
    return write_cached(
        source.name,
        key,
        arrays,
        len(source.classes),
        {"source_files": {k: str(v) for k, v in files.items()}, "source_sha256": digests},
    )


def _dir_digest(path: Path) -> str:
    """A cheap identity for a directory of raw files: names, sizes and mtimes."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def resize(x: np.ndarray, resolution: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, r, r): shorter side to r (bilinear, antialiased), centre crop."""
    from PIL import Image

    n, c, h, w = x.shape
    out = np.empty((n, c, resolution, resolution), dtype=np.uint8)
    for i in range(n):  # once, when the cache entry is built; never in the training loop
        for ch in range(c):
            out[i, ch] = _resize_one(Image.fromarray(x[i, ch]), resolution)
    return out


def _resize_one(img, r: int) -> np.ndarray:
    from PIL import Image

    w, h = img.size
    scale = r / min(w, h)
    nw, nh = max(r, round(w * scale)), max(r, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - r) // 2, (nh - r) // 2
    return np.asarray(img.crop((left, top, left + r, top + r)))


def _prepare_imagefolder(root: Path, resolution: int) -> CachedDataset:
    """One sub-folder per class. With train/ and test/ (or val/) sub-folders they are used as the
    splits; otherwise every image is training data and there is no test set."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise RegspaceError(f"image folder {root} does not exist")
    splits = {"train": root / "train", "test": root / "test" if (root / "test").is_dir() else root / "val"}
    if not splits["train"].is_dir():
        splits = {"train": root, "test": None}
    classes = sorted(p.name for p in splits["train"].iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise RegspaceError(f"image folder {splits['train']} has no class sub-folders")
    listing = {}
    for split, d in splits.items():
        files = []
        if d is not None and d.is_dir():
            for label, cls in enumerate(classes):
                cdir = d / cls
                if cdir.is_dir():
                    files += [(p, label) for p in sorted(cdir.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        listing[split] = files
    if not listing["train"]:
        raise RegspaceError(f"no images found under {splits['train']}")
    ident = [
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns, y)
        for files in listing.values()
        for p, y in files
    ]
    key = cache_key({"dataset": "imagefolder", "root": str(root.resolve()), "files": ident, "resolution": resolution})
    name = f"imagefolder-{root.name}"
    if (cached := open_cached(name, key)) is not None:
        return cached
    arrays = {}
    for split, files in listing.items():
        x = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
        for i, (p, _) in enumerate(files):
            try:
                with Image.open(p) as img:
                    x[i] = _resize_one(img.convert("RGB"), resolution).transpose(2, 0, 1)
            except (OSError, UnidentifiedImageError) as e:
                raise RegspaceError(f"cannot read image {p}: {e}") from None
        prefix = "train" if split == "train" else "test"
        arrays[f"{prefix}_x"] = x
        arrays[f"{prefix}_y"] = np.array([y for _, y in files], dtype=np.int64)
    return write_cached(name, key, arrays, len(classes), {"root": str(root), "classes": classes})


def make_split(n_train_pool: int, *, val_size: int, train_size: int | None, seed: int) -> dict:
    """A seeded validation split carved from the training set: {'val': idx, 'train': idx, 'record': {...}}."""
    if val_size >= n_train_pool:
        raise RegspaceError(
            f"validation size {val_size} leaves no training images (the training set has {n_train_pool})"
        )
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n_train_pool)
    val = np.sort(perm[:val_size])
    rest = perm[val_size:]
    if train_size is not None and train_size > len(rest):
        raise RegspaceError(f"train size {train_size} is larger than the {len(rest)} images left after validation")
    train = np.sort(rest[: train_size or len(rest)])
    import hashlib

    record = {
        "split_seed": seed,
        "val_size": int(len(val)),
        "train_size": int(len(train)),
        "train_pool": n_train_pool,
        "val_sha256": hashlib.sha256(val.astype(np.int64).tobytes()).hexdigest()[:16],
    }
    return {"val": val, "train": train, "record": record}
