"""The input pipeline: whole batches sliced from device-resident uint8 tensors.

No per-sample Python and no DataLoader: each step gathers a batch of indices, augments the whole
batch at once (flip, 4-pixel pad-and-crop) and normalises it in one fused multiply-add.
"""

from __future__ import annotations

import torch


class Batches:
    """An iterable of (x, y) batches that Lightning (or a hand-written loop) can consume.

    ``x`` is uint8 (N, C, H, W) and ``y`` int64 (N,), both already on the target device.
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
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.drop_last, self.channels_last = shuffle, drop_last, channels_last
        self.flip = "flip" in augment
        self.crop = "crop" in augment
        c = x.shape[1]
        # Normalise as x * scale + shift, per channel, on the float batch: one fused op.
        self.scale = (1.0 / (255.0 * std)).view(1, c, 1, 1).to(x.device)
        self.shift = (-mean / std).view(1, c, 1, 1).to(x.device)
        self.in_channels = in_channels
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min(n, (i + 1) * self.batch_size)
            if order is not None:
                idx = order[lo:hi].to(self.x.device, non_blocking=True)
                xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
            else:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            yield self.transform(xb), yb

    def transform(self, xb: torch.Tensor) -> torch.Tensor:
        if self.crop:
            xb = random_crop(xb, 4, self.generator)
        if self.flip:
            xb = random_flip(xb, self.generator)
        x = torch.addcmul(self.shift, xb.float(), self.scale)
        x = adapt_channels(x, self.in_channels)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels and take one random crop per image, for the whole batch at once."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
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


def channel_stats(x_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (in [0, 1] units) of a uint8 image tensor, computed in chunks."""
    c = x_u8.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for chunk in x_u8.split(4096):
        f = chunk.to(torch.float64) / 255.0
        total += f.sum((0, 2, 3)).cpu()
        total_sq += (f * f).sum((0, 2, 3)).cpu()
        count += f.numel() // c
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()
