"""The input pipeline: whole batches gathered from uint8 images, augmented on the device.

No per-sample Python and no DataLoader: each step gathers a batch of indices, augments the whole
batch at once (flip, 4-pixel pad-and-crop) and normalises it in one fused multiply-add.

Images come from one of two sources that play one role (``len``, ``gather``, ``slice``, ``device``):
:class:`DeviceImages`, a split held whole on the device, and :class:`MappedImages`, a split read
from memory-mapped shards batch by batch (datasets larger than memory). Both return the same
images in the same order, so a model trains identically from either.
"""

from __future__ import annotations

import numpy as np
import torch


class DeviceImages:
    """A split's uint8 images, all resident on one device."""

    def __init__(self, x: torch.Tensor):
        self.x = x
        self.device = x.device

    def __len__(self) -> int:
        return len(self.x)

    @property
    def channels(self) -> int:
        return self.x.shape[1]

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x.index_select(0, idx.to(self.device, non_blocking=True))

    def slice(self, lo: int, hi: int) -> torch.Tensor:
        return self.x[lo:hi]


class MappedImages:
    """A split's images read from a memory-mapped :class:`~regspace.data.mapped.ShardedArray`.

    ``rows`` are the split's row numbers in the map. Each batch is gathered on the host into a reused
    buffer (pinned when the device is a GPU) and copied with ``non_blocking``; two buffers alternate,
    and a buffer is refilled only after the copy out of it has finished."""

    def __init__(self, array, rows: np.ndarray, device: torch.device, batch_size: int):
        self.array, self.rows, self.device = array, np.asarray(rows, dtype=np.int64), device
        shape = (batch_size, *array.shape[1:])
        cuda = device.type == "cuda"
        self._buffers = [torch.empty(shape, dtype=torch.uint8, pin_memory=cuda) for _ in range(2 if cuda else 1)]
        self._events = [torch.cuda.Event() if cuda else None for _ in self._buffers]
        self._next = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def channels(self) -> int:
        return self.array.shape[1]

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        k = self._next
        self._next = (k + 1) % len(self._buffers)
        if len(rows) > len(self._buffers[k]):  # evaluation batches may be larger than training ones
            self._buffers[k] = torch.empty(
                (len(rows), *self.array.shape[1:]), dtype=torch.uint8, pin_memory=self.device.type == "cuda"
            )
        if self._events[k] is not None:
            self._events[k].synchronize()
        buf = self._buffers[k][: len(rows)]
        self.array.take(rows, out=buf.numpy())
        if self.device.type == "cpu":
            return buf
        out = buf.to(self.device, non_blocking=True)
        self._events[k].record()
        return out

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        return self._read(self.rows[idx.numpy()])

    def slice(self, lo: int, hi: int) -> torch.Tensor:
        return self._read(self.rows[lo:hi])


class Batches:
    """An iterable of (x, y) batches that Lightning (or a hand-written loop) can consume.

    ``x`` is :class:`DeviceImages` or :class:`MappedImages` (uint8 (N, C, H, W)); ``y`` int64 (N,),
    on the target device.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        in_channels: int,
        shuffle: bool = False,
        augment: str = "none",
        drop_last: bool = False,
        channels_last: bool = True,
        seed: int = 0,
    ):
        self.x = DeviceImages(x) if isinstance(x, torch.Tensor) else x
        self.y = y
        x = self.x
        self.batch_size = batch_size
        self.shuffle, self.drop_last, self.channels_last = shuffle, drop_last, channels_last
        self.flip = "flip" in augment
        self.crop = "crop" in augment
        c = x.channels
        # Normalise as x * scale + shift, per channel, on the float batch: one fused op.
        self.scale = (1.0 / (255.0 * std)).view(1, c, 1, 1).to(x.device)
        self.shift = (-mean / std).view(1, c, 1, 1).to(x.device)
        self.in_channels = in_channels
        self.generator = torch.Generator(device="cpu").manual_seed(seed)  # the order: indices stay on the host
        # Flip and crop draws are made where the images are: no host→device copy each step. On the CPU that
        # is the same generator as the order's, so CPU runs draw exactly the numbers they always drew.
        self.augment_generator = self.generator if x.device.type == "cpu" else device_generator(x.device, seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min(n, (i + 1) * self.batch_size)
            if order is not None:
                idx = order[lo:hi]
                xb, yb = self.x.gather(idx), self.y.index_select(0, idx.to(self.y.device, non_blocking=True))
            else:
                xb, yb = self.x.slice(lo, hi), self.y[lo:hi]
            yield self.transform(xb), yb  # transform makes a new tensor: a MappedImages buffer is free again

    def transform(self, xb: torch.Tensor) -> torch.Tensor:
        if self.crop:
            xb = random_crop(xb, 4, self.augment_generator)
        if self.flip:
            xb = random_flip(xb, self.augment_generator)
        x = torch.addcmul(self.shift, xb.float(), self.scale)
        x = adapt_channels(x, self.in_channels)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def device_generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded random generator on ``device`` (a GPU's own: its draws need no copy to the GPU)."""
    return torch.Generator(device=device).manual_seed(seed)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 1/2; the draws are made on ``x``'s device."""
    flip = (torch.rand(len(x), generator=generator, device=x.device) < 0.5).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels and take one random crop per image, for the whole batch at once; the
    offsets are drawn on ``x``'s device."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (ox[:, None] + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(b, c, h, w)
    return out.gather(3, cols)


def adapt_channels(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Grey images for a 3-channel model are repeated; colour images for a 1-channel model are averaged."""
    c = x.shape[1]
    if c == in_channels:
        return x
    if c == 1:
        return x.expand(-1, in_channels, -1, -1)
    if in_channels == 1:
        return x.mean(1, keepdim=True)
    raise ValueError(f"cannot feed {c}-channel images to a {in_channels}-channel model")
