"""Datasets for training: found or downloaded once, decoded once, cached as uint8 arrays.

``prepare(spec, resolution=...)`` returns a prepared dataset in one of two layouts that play one
role (``arrays()``, ``describe()``, ``resident_bytes``, ``layout``):

- ``memory`` (:class:`~regspace.data.cache.CachedDataset`): one .npz that each training worker loads
  whole (onto its GPU, or into its memory). Small datasets: Fashion-MNIST, CIFAR.
- ``mapped`` (:class:`~regspace.data.mapped.MappedDataset`): uint8 shards that every worker
  memory-maps and gathers batches from; the page cache holds them once per machine. Datasets whose
  decoded size exceeds ``map_above`` (default 2 GB), or any dataset prepared with ``regspace data
  prepare``.

Specs: ``fashion-mnist`` (default), ``mnist``, ``cifar10``, ``imagefolder:PATH``. No torch here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from regspace.data.cache import CachedDataset, cache_key, open_cached, write_cached
from regspace.data.files import cache_root, sha256_file
from regspace.data.imagefolder import resize
from regspace.data.mapped import MappedDataset
from regspace.data.sources import SOURCES, decode, get_source, locate
from regspace.errors import RegspaceError

__all__ = ["prepare", "CachedDataset", "MappedDataset", "SOURCES", "dataset_names", "make_split", "DEFAULT_MAP_ABOVE"]

# Decoded datasets larger than this are memory-mapped rather than copied into every worker (and onto
# every GPU): below it, even 16 workers' copies fit a small machine; above it, copies stop being cheap.
DEFAULT_MAP_ABOVE = 2 * 10**9


def dataset_names() -> list[str]:
    return [*SOURCES, "imagefolder:PATH"]


def prepare(
    spec: str,
    *,
    resolution: int | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    map_above: float | None = None,
    workers: int | None = None,
    shard_images: int | None = None,
    say=None,
    build_stats: dict | None = None,
) -> CachedDataset | MappedDataset:
    """Find (or download), decode and cache a dataset at ``resolution`` (None: its native size).

    ``map_above`` (bytes of decoded images): above it the dataset is memory-mapped, at or below it
    held in memory; ``0`` always maps, ``math.inf`` never does. None: a map begun for this dataset
    (``regspace data prepare``) is used, else the size decides against DEFAULT_MAP_ABOVE."""
    from regspace.console import say as default_say

    say = say or default_say
    if spec.lower() == "imagefolder":
        raise RegspaceError("the imagefolder dataset needs a path: --data imagefolder:PATH")
    opts = dict(progress=progress, map_above=map_above, workers=workers, shard_images=shard_images, say=say)
    opts["stats"] = build_stats
    if spec.lower().startswith("imagefolder:"):
        return _prepare_imagefolder(Path(spec.split(":", 1)[1]), resolution or 32, **opts)
    source = get_source(spec)
    files = locate(source, data_dir, download=download, progress=progress)
    digests = {name: sha256_file(p) if p.is_file() else _dir_digest(p) for name, p in sorted(files.items())}
    res = resolution or source.resolution
    key = cache_key({"dataset": source.name, "files": digests, "resolution": res})
    extra = {"source_files": {k: str(v) for k, v in files.items()}, "source_sha256": digests}
    mapped_dir = _mapped_dir(source.name, key)
    nbytes = source.channels * res * res * 70_000  # order of magnitude; these sources are all small
    if _wants_mapped(nbytes, map_above, mapped_dir):
        from regspace.data.build import build_mapped
        from regspace.data.mapped import open_mapped

        if (found := open_mapped(mapped_dir)) is not None and found.key == key:
            return found  # (the key covers the raw files' checksums and the resolution)
        return build_mapped(
            mapped_dir,
            {"name": source.name, "key": key, **extra},
            arrays=_decoded(source, files, res),
            num_classes=len(source.classes),
            progress=progress,
            say=say,
            stats=build_stats,
        )
    if (cached := open_cached(source.name, key)) is not None:
        return cached
    return write_cached(source.name, key, _decoded(source, files, res), len(source.classes), extra)


def _decoded(source, files, res: int) -> dict:
    arrays = decode(source, files)
    if res != source.resolution:
        arrays["train_x"], arrays["test_x"] = resize(arrays["train_x"], res), resize(arrays["test_x"], res)
    return arrays


def _mapped_dir(name: str, key: str) -> Path:
    return cache_root() / "datasets" / f"{name.replace('/', '_')}-{key}.shards"


def _wants_mapped(nbytes: int, map_above: float | None, mapped_dir: Path) -> bool:
    """The one rule for choosing a layout (see :func:`prepare`): an explicit ``map_above`` decides by
    size; otherwise a map begun for this dataset (complete, interrupted, or made from an older state of
    the folder) is used, finished or brought up to date; otherwise the size decides."""
    if map_above is not None:
        return nbytes > map_above
    from regspace.data.mapped import PLAN

    return (mapped_dir / PLAN).is_file() or nbytes > DEFAULT_MAP_ABOVE


def parse_map_above(text: str | None) -> float | None:
    """'2G' -> 2e9 bytes; '0' always maps; 'inf' never maps; None: automatic."""
    if text is None:
        return None
    if text.strip().lower() in ("inf", "never", "none"):
        return math.inf
    from regspace.units import parse_quantity

    return float(parse_quantity(text.upper().removesuffix("B"), what="--map-above size"))


def _dir_digest(path: Path) -> str:
    """A cheap identity for a directory of raw files: names, sizes and mtimes."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _prepare_imagefolder(root: Path, resolution: int, *, map_above, workers, shard_images, progress, say, stats):
    from regspace.data.build import build_mapped, decode_in_memory
    from regspace.data.imagefolder import CHANNELS, list_folder

    listing = list_folder(root)
    digest = listing.digest()
    name = f"imagefolder-{root.name}"
    header = {"name": name, "root": str(root.resolve()), "classes": list(listing.classes), "listing": digest}
    mapped_key = cache_key({"dataset": "imagefolder", "root": header["root"], "resolution": resolution})
    mapped_dir = _mapped_dir(name, mapped_key)
    nbytes = (listing.count("train") + listing.count("test")) * CHANNELS * resolution * resolution
    opts = dict(workers=workers, progress=progress, say=say)
    if _wants_mapped(nbytes, map_above, mapped_dir):
        return build_mapped(
            mapped_dir,
            {**header, "key": mapped_key},
            listing=listing,
            num_classes=len(listing.classes),
            resolution=resolution,
            shard_images=shard_images,
            stats=stats,
            **opts,
        )
    key = cache_key({"dataset": "imagefolder", "root": header["root"], "listing": digest, "resolution": resolution})
    if (cached := open_cached(name, key)) is not None:
        return cached
    arrays, skipped = decode_in_memory(listing, resolution, **opts)
    return write_cached(name, key, arrays, len(listing.classes), {**header, "skipped": skipped})


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


def prepare_command(
    spec: str,
    *,
    resolution: int | None,
    data_dir: str | None = None,
    map_above: float | None = 0,
    workers: int | None = None,
    shard_images: int | None = None,
    verify: bool = False,
    progress: bool = True,
) -> str:
    """`regspace data prepare`: prepare (or finish preparing) a dataset; returns the summary line."""
    import time

    from regspace.data.mapped import SPLITS, verify_shards
    from regspace.units import format_quantity

    stats: dict = {}
    started = time.perf_counter()
    ds = prepare(
        spec,
        resolution=resolution,
        data_dir=data_dir,
        progress=progress,
        map_above=map_above,
        workers=workers,
        shard_images=shard_images,
        build_stats=stats,
    )
    seconds = time.perf_counter() - started
    what = f"{spec} at {ds.resolution}×{ds.resolution}: {ds.n_train:,} training + {ds.n_test:,} test images"
    if ds.layout != "mapped":
        return f"{what}, held in memory ({format_quantity(ds.resident_bytes)}B at {ds.path})"
    m = ds.manifest()
    shards = sum(len(m["splits"][s]["shards"]) for s in SPLITS)
    size = format_quantity((ds.n_train + ds.n_test) * ds.image_bytes)
    line = f"{what} in {shards} memory-mapped shards ({size}B at {ds.path})"
    if stats.get("images"):
        line += f"; decoded {stats['images']:,} images in {seconds:.1f} s ({stats['images'] / seconds:,.0f} images/s)"
    else:
        line += "; already prepared"
    if m["skipped"]:
        line += f"; {len(m['skipped'])} unreadable image(s) skipped"
    if verify:
        line += f"; verified {verify_shards(ds.path, m)} shards"
    return line
