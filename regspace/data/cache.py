"""Decoded datasets, cached once as uncompressed .npz files of uint8 images (keyed, checksummed).

A cache entry's name is a hash of what it was made from (dataset, sha256 of every raw file, target
resolution, decoder version), so changing any of them makes a new entry; a sidecar .json records
the entry's own sha256, which is checked when the entry is opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regspace.data.files import PreparedDataset, cache_root, sha256_file
from regspace.errors import RegspaceError

DECODER_VERSION = 1


@dataclass(frozen=True)
class CachedDataset(PreparedDataset):
    """A decoded dataset on disk; :meth:`arrays` loads it (uint8 images, int64 labels)."""

    layout: str = "memory"

    @property
    def resident_bytes(self) -> int:
        """What one worker holds in its own memory (or on its GPU): the whole dataset."""
        return os.path.getsize(self.path)

    def arrays(self, *, verify: bool = False) -> dict[str, np.ndarray]:
        if verify:
            _verify(self.path)
        with np.load(self.path) as z:
            return {k: z[k] for k in ("train_x", "train_y", "test_x", "test_y")}


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _verify(path: Path) -> None:

    meta = json.loads(_sidecar(path).read_text())
    if sha256_file(path) != meta["sha256"]:
        raise RegspaceError(f"dataset cache {path} is corrupt (checksum mismatch); delete it to rebuild")


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({**parts, "decoder": DECODER_VERSION}, sort_keys=True).encode()).hexdigest()[:16]


def open_cached(name: str, key: str) -> CachedDataset | None:
    path = cache_root() / "datasets" / f"{name.replace('/', '_')}-{key}.npz"
    side = _sidecar(path)
    if not (path.exists() and side.exists()):
        return None
    try:
        meta = json.loads(side.read_text())
        _verify(path)
    except (OSError, ValueError, KeyError, RegspaceError):
        return None  # a broken entry is rebuilt
    return CachedDataset(
        name, path, key, meta["num_classes"], meta["channels"], meta["resolution"], meta["n_train"], meta["n_test"]
    )


def write_cached(name: str, key: str, arrays: dict[str, np.ndarray], num_classes: int, extra: dict) -> CachedDataset:

    d = cache_root() / "datasets"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name.replace('/', '_')}-{key}.npz"
    tmp = d / f".{path.name}.{uuid.uuid4().hex[:6]}.tmp.npz"
    try:
        np.savez(tmp, **arrays)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    tx = arrays["train_x"]
    meta = {
        "sha256": digest,
        "num_classes": num_classes,
        "channels": int(tx.shape[1]),
        "resolution": int(tx.shape[2]),
        "n_train": int(len(tx)),
        "n_test": int(len(arrays["test_x"])),
        **extra,
    }
    side_tmp = d / f".{path.stem}.{uuid.uuid4().hex[:6]}.json.tmp"
    side_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(side_tmp, _sidecar(path))
    return CachedDataset(
        name, path, key, num_classes, meta["channels"], meta["resolution"], meta["n_train"], meta["n_test"]
    )
