"""Small file helpers that the data modules share (below both sources.py and cache.py)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def cache_root() -> Path:
    """regspace's cache directory: $REGSPACE_CACHE, else $XDG_CACHE_HOME/regspace, else ~/.cache/regspace."""
    if os.environ.get("REGSPACE_CACHE"):
        return Path(os.environ["REGSPACE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "regspace"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PreparedDataset:
    """What both layouts of a prepared dataset share (regspace.data.cache.CachedDataset: in memory;
    regspace.data.mapped.MappedDataset: memory-mapped shards); each adds ``arrays()`` and ``resident_bytes``."""

    name: str
    path: Path
    key: str
    num_classes: int
    channels: int
    resolution: int
    n_train: int
    n_test: int
    layout: str

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "key": self.key,
            "layout": self.layout,
            "train": self.n_train,
            "test": self.n_test,
            "resolution": self.resolution,
            "channels": self.channels,
            "classes": self.num_classes,
            "path": str(self.path),
        }
