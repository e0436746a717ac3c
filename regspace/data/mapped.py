"""Datasets larger than memory: uint8 shards on disk that every worker memory-maps.

A prepared dataset is a directory ``NAME-KEY.shards/`` under the cache, keyed by what it is made
from (dataset, resolution) so that the same ``--data`` finds it again::

    train-00000.npy ...        images (n, C, r, r) uint8, one .npy per shard (np.load mmap_mode="r")
    train-00000.meta.npz       the shard's labels and per-image channel sums
    train-00000.done.json      written last: the shard's sha256s, count, skipped images
    manifest.json              written last of all: shards with checksums, classes, counts, skipped

Each shard covers a fixed slice of the source's listing and is written under a dot-name, then
renamed; its ``.done.json`` (written after the rename) is what marks it complete. An interruption
leaves at worst a dot-file, which the next run deletes, and a rerun decodes only the shards that
have no ``.done.json``. The manifest appears only once every shard is complete, and training opens
only a dataset that has one. The page cache holds each shard once for every worker on the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regspace.data.files import PreparedDataset
from regspace.errors import RegspaceError

MANIFEST = "manifest.json"
PLAN = "prepare.json"  # written first: what is being built (source, geometry, shard size)
LAYOUT_VERSION = 1
SHARD_BYTES = 256 * 2**20  # a shard holds at most this many image bytes ...
SHARD_IMAGES = 4096  # ... and at most this many images (resume granularity for slow decoding)
SPLITS = ("train", "test")


def shard_images(image_bytes: int, limit: int | None = None) -> int:
    return max(1, min(limit or SHARD_IMAGES, SHARD_BYTES // max(1, image_bytes)))


class ShardedArray:
    """Read-only images (N, C, r, r) spread over memory-mapped shards; ``take`` gathers any rows."""

    def __init__(self, paths: list[Path], counts: list[int], shape: tuple[int, int, int]):
        self.paths, self.shape_tail = [Path(p) for p in paths], tuple(shape)
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._maps: list | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple:
        return (len(self), *self.shape_tail)

    @property
    def nbytes(self) -> int:
        return len(self) * int(np.prod(self.shape_tail))

    def _open(self) -> list:
        if self._maps is None:  # opened lazily, in the process that reads (maps do not cross a fork cleanly)
            self._maps = [np.load(p, mmap_mode="r") for p in self.paths]
        return self._maps

    def take(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``idx`` (any order, repeats allowed), in that order. Reads in ascending index order,
        shard by shard, so that neighbouring rows come from neighbouring pages."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.shape_tail), dtype=np.uint8) if out is None else out[: len(idx)]
        if not len(idx):
            return out
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"row index out of range for {len(self)} images")
        maps = self._open()
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        shard_of = np.searchsorted(self.offsets, sorted_idx, side="right") - 1
        bounds = np.flatnonzero(np.diff(shard_of)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(idx)]):
            s = int(shard_of[lo])
            out[order[lo:hi]] = maps[s][sorted_idx[lo:hi] - self.offsets[s]]
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(np.asarray(key))


@dataclass(frozen=True)
class MappedDataset(PreparedDataset):
    """A dataset prepared as memory-mapped shards (see the module docstring); ``path`` is the .shards
    directory."""

    layout: str = "mapped"

    @property
    def image_bytes(self) -> int:
        return self.channels * self.resolution * self.resolution

    @property
    def resident_bytes(self) -> int:
        """What one worker holds in its own memory: labels and channel sums, not the images."""
        return (self.n_train + self.n_test) * (8 + 16 * self.channels)

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    def arrays(self, *, verify: bool = False) -> dict:
        """train_x/test_x as :class:`ShardedArray`; labels and ``train_sums`` as small arrays."""
        m = self.manifest()
        if verify:
            verify_shards(self.path, m)
        out = {}
        for split in SPLITS:
            shards = m["splits"][split]["shards"]
            shape = (self.channels, self.resolution, self.resolution)
            out[f"{split}_x"] = ShardedArray(
                [self.path / s["file"] for s in shards], [s["count"] for s in shards], shape
            )
            meta = [np.load(self.path / s["meta"]) for s in shards]
            out[f"{split}_y"] = _concat([z["labels"] for z in meta], np.int64, (0,))
            out[f"{split}_sums"] = _concat([z["sums"] for z in meta], np.int64, (0, 2, self.channels))
        return out


def _concat(parts: list, dtype, empty_shape) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(empty_shape, dtype=dtype)


def open_mapped(directory: Path) -> MappedDataset | None:
    """The dataset in ``directory`` if it is complete (has a manifest whose shards all exist), else None."""
    try:
        m = json.loads((directory / MANIFEST).read_text())
        for split in SPLITS:
            for s in m["splits"][split]["shards"]:
                if (directory / s["file"]).stat().st_size != s["bytes"]:
                    return None
        return MappedDataset(
            m["name"],
            directory,
            m["key"],
            m["num_classes"],
            m["channels"],
            m["resolution"],
            m["splits"]["train"]["count"],
            m["splits"]["test"]["count"],
        )
    except (OSError, ValueError, KeyError):
        return None


def verify_shards(directory: Path, manifest: dict) -> int:
    """Re-hash every shard against the manifest; one error line naming the first bad shard."""
    from regspace.data.files import sha256_file

    n = 0
    for split in SPLITS:
        for s in manifest["splits"][split]["shards"]:
            for name, want in ((s["file"], s["sha256"]), (s["meta"], s["meta_sha256"])):
                if sha256_file(directory / name) != want:
                    raise RegspaceError(
                        f"shard {directory / name} is corrupt (checksum mismatch)",
                        hint="delete it and its .done.json, then run regspace data prepare again to rebuild it",
                    )
            n += 1
    return n


# -- building -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: which split, its number, and where its images come from."""

    split: str
    index: int
    source: tuple  # ("files", root, ((rel, label), ...)) or ("arrays", x_chunk, y_chunk)

    @property
    def stem(self) -> str:
        return f"{self.split}-{self.index:05d}"


def write_shard(directory: str, job: ShardJob, resolution: int) -> dict:
    """Decode (or slice) one shard and write it atomically; returns its .done.json record."""
    from regspace.data.imagefolder import decode_chunk, image_sums

    d = Path(directory)
    if job.source[0] == "files":
        x, y, sums, skipped = decode_chunk(job.source[1], list(job.source[2]), resolution)
    else:
        x, y = job.source[1], np.asarray(job.source[2], dtype=np.int64)
        sums, skipped = image_sums(x), []
    record = {"file": f"{job.stem}.npy", "meta": f"{job.stem}.meta.npz", "count": int(len(x)), "skipped": skipped}
    record["sha256"], record["bytes"] = _atomic_write(d / record["file"], lambda f: np.save(f, x))
    record["meta_sha256"], _ = _atomic_write(d / record["meta"], lambda f: np.savez(f, labels=y, sums=sums))
    _atomic_text(d / f"{job.stem}.done.json", json.dumps(record))
    return record


def _atomic_write(path: Path, write) -> tuple[str, int]:
    """Write via a dot-file in the same directory, fsync, rename; (sha256, size) of what was written."""
    buf = io.BytesIO()
    write(buf)
    data = buf.getbuffer()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return hashlib.sha256(data).hexdigest(), len(data)


def _atomic_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def completed_shards(directory: Path) -> dict[str, dict]:
    """stem -> record of every shard whose .done.json exists and whose files have the recorded size."""
    done = {}
    for p in directory.glob("*.done.json"):
        try:
            rec = json.loads(p.read_text())
            if (directory / rec["file"]).stat().st_size == rec["bytes"] and (directory / rec["meta"]).is_file():
                done[p.name[: -len(".done.json")]] = rec
        except (OSError, ValueError, KeyError):
            pass
    return done


def clean_leftovers(directory: Path) -> int:
    """Delete the dot-files an interrupted run left behind; returns how many."""
    n = 0
    for p in directory.glob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def check_disk(directory: Path, need_bytes: int) -> None:
    """Refuse, before writing anything, when the disk cannot hold the shards still to write."""
    free = shutil.disk_usage(directory).free
    if need_bytes > free:
        from regspace.units import format_quantity

        raise RegspaceError(
            f"the shards need {format_quantity(need_bytes)}B at {directory} but only {format_quantity(free)}B is free",
            hint="free space there, or point $REGSPACE_CACHE at a larger disk",
        )


def write_manifest(directory: Path, header: dict, jobs: list[ShardJob], done: dict[str, dict]) -> dict:
    splits = {}
    for split in SPLITS:
        shards = [done[j.stem] for j in jobs if j.split == split]
        splits[split] = {"count": sum(s["count"] for s in shards), "shards": shards}
    skipped = [s for split in SPLITS for rec in splits[split]["shards"] for s in rec["skipped"]]
    manifest = {**header, "layout_version": LAYOUT_VERSION, "splits": splits, "skipped": skipped}
    _atomic_text(directory / MANIFEST, json.dumps(manifest, indent=1))
    return manifest
