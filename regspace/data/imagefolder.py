"""Image folders: one sub-folder per class, listed and checked once, decoded in parallel chunks.

With train/ and test/ (or val/) sub-folders those are the splits; otherwise every image is training
data and there is no test set. Classes are the training split's sub-folders, sorted by name.
An image that cannot be decoded is skipped, named and counted, never fatal; a folder that cannot
make a classification dataset (no class, one class, an empty class) is one error line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regspace.errors import RegspaceError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
CHANNELS = 3  # images are converted to RGB


@dataclass(frozen=True)
class Listing:
    """Every image of a folder, in a fixed order: (path, label) per split, and the class names."""

    root: Path
    classes: tuple[str, ...]
    splits: dict  # "train" | "test" -> tuple of (relative path, label)

    def digest(self) -> str:
        """Identity of the folder's contents: names, sizes and modification times of every image."""
        h = hashlib.sha256()
        for split in sorted(self.splits):
            for rel, y in self.splits[split]:
                st = (self.root / rel).stat()
                h.update(f"{split}|{rel}|{y}|{st.st_size}|{st.st_mtime_ns};".encode())
        return h.hexdigest()[:16]

    def count(self, split: str) -> int:
        return len(self.splits.get(split, ()))


def list_folder(root: Path) -> Listing:
    """Walk an image folder; one error line for anything that is not a usable dataset."""
    if not root.is_dir():
        raise RegspaceError(f"image folder {root} does not exist")
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    dirs = {"train": root / "train", "test": test_dir} if (root / "train").is_dir() else {"train": root}
    classes = sorted(p.name for p in dirs["train"].iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise RegspaceError(f"image folder {dirs['train']} has no class sub-folders", hint="use one folder per class")
    if len(classes) == 1:
        raise RegspaceError(
            f"image folder {dirs['train']} has one class ({classes[0]}); classification needs at least two"
        )
    splits = {}
    for split, d in dirs.items():
        files = []
        if d.is_dir():
            for label, cls in enumerate(classes):
                cdir = d / cls
                found = [p for p in sorted(cdir.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
                if split == "train" and not found:
                    raise RegspaceError(f"class folder {cdir} has no images", hint="remove it or add its images")
                files += [(str(p.relative_to(root)), label) for p in found]
        splits[split] = tuple(files)
    return Listing(root, tuple(classes), splits)


def decode_chunk(root: str, files: list, resolution: int):
    """Decode and resize a chunk of (relative path, label): (images (n, 3, r, r) uint8, labels int64,
    per-image channel sums (n, 2, 3) int64, skipped [(path, reason)]). Runs in a worker process."""
    from PIL import Image, UnidentifiedImageError

    x = np.empty((len(files), CHANNELS, resolution, resolution), dtype=np.uint8)
    labels, skipped, n = [], [], 0
    for rel, y in files:
        try:
            with Image.open(Path(root) / rel) as img:
                x[n] = resize_one(img.convert("RGB"), resolution).transpose(2, 0, 1)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            skipped.append((rel, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"))
            continue
        labels.append(y)
        n += 1
    x = x[:n]
    return x, np.asarray(labels, dtype=np.int64), image_sums(x), skipped


def image_sums(x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per image and channel, the sum of pixel values and of their squares: (N, 2, C) int64, exact.

    Integer sums make the dataset's mean and std independent of summation order, so the in-memory
    and the memory-mapped paths normalise identically (:func:`stats_from_sums`)."""
    n, c = x.shape[:2]
    out = np.empty((n, 2, c), dtype=np.int64)
    for lo in range(0, n, chunk):
        part = x[lo : lo + chunk].reshape(-1, c, x.shape[2] * x.shape[3]).astype(np.int64)
        out[lo : lo + chunk, 0] = part.sum(2)
        out[lo : lo + chunk, 1] = (part * part).sum(2)
    return out


def stats_from_sums(sums: np.ndarray, pixels_per_image: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in [0, 1] units from :func:`image_sums` rows (exact integer totals)."""
    total = [int(v) for v in sums[:, 0].sum(0, dtype=np.int64)]
    total_sq = [int(v) for v in sums[:, 1].sum(0, dtype=np.int64)]
    count = len(sums) * pixels_per_image
    mean = np.array([t / (255.0 * count) for t in total])
    var = np.array([q / (255.0**2 * count) for q in total_sq]) - mean * mean
    return mean.astype(np.float32), np.sqrt(np.maximum(var, 1e-12)).astype(np.float32)


def report_skipped(skipped: list, say) -> None:
    if skipped:
        first = skipped[0]
        say(
            f"skipped {len(skipped)} unreadable image(s); first: {first[0]} ({first[1]}); "
            "all are recorded with the prepared dataset"
        )


def resize(x: np.ndarray, resolution: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, r, r): shorter side to r (bilinear, antialiased), centre crop."""
    from PIL import Image

    n, c, h, w = x.shape
    out = np.empty((n, c, resolution, resolution), dtype=np.uint8)
    for i in range(n):  # once, when the cache entry is built; never in the training loop
        for ch in range(c):
            out[i, ch] = resize_one(Image.fromarray(x[i, ch]), resolution)
    return out


def resize_one(img, r: int) -> np.ndarray:
    from PIL import Image

    w, h = img.size
    scale = r / min(w, h)
    nw, nh = max(r, round(w * scale)), max(r, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - r) // 2, (nh - r) // 2
    return np.asarray(img.crop((left, top, left + r, top + r)))
