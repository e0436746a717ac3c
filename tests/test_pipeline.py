"""The batch pipeline: whole-batch augmentation and fused normalisation do what they say."""

import torch
import torch.nn.functional as F

from regspace.data.imagefolder import image_sums, stats_from_sums
from regspace.train.pipeline import Batches, adapt_channels, random_crop, random_flip


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 255, (64, 2, 6, 5), dtype=torch.uint8)
    out = random_crop(x, 2, g)
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        hits = [
            (oy, ox)
            for oy in range(5)
            for ox in range(5)
            if torch.equal(padded[i, :, oy : oy + 6, ox : ox + 5], out[i])
        ]
        assert hits, i
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets vary per image


def test_flip_flips_about_half():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 4).view(1, 2, 3, 4).repeat(400, 1, 1, 1)
    out = random_flip(x, g)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert (flipped | same).all() and 150 < int(flipped.sum()) < 250


def test_batches_normalise_and_cover_every_image_once():
    x = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    y = torch.arange(50)
    mean, std = (torch.from_numpy(v) for v in stats_from_sums(image_sums(x.numpy()), 64))
    ref = x.double().div(255).transpose(0, 1).reshape(1, -1)  # numpy-independent reference: torch's own
    assert torch.allclose(mean.double(), ref.mean(1), atol=1e-6) and torch.allclose(
        std.double(), ref.std(1, correction=0), atol=1e-6
    )
    b = Batches(x, y, batch_size=16, mean=mean, std=std, in_channels=3, shuffle=True, channels_last=True)
    seen = torch.cat([yb for _, yb in b])
    assert sorted(seen.tolist()) == list(range(50)) and len(b) == 4
    xb, _ = next(iter(b))
    assert xb.shape == (16, 3, 8, 8) and xb.is_contiguous(memory_format=torch.channels_last)
    all_x = torch.cat([xb for xb, _ in Batches(x, y, batch_size=50, mean=mean, std=std, in_channels=1)])
    assert abs(float(all_x.mean())) < 1e-4 and abs(float(all_x.std()) - 1) < 1e-2
    dropped = Batches(x, y, batch_size=16, mean=mean, std=std, in_channels=1, drop_last=True)
    assert len(dropped) == 3 and sum(len(yb) for _, yb in dropped) == 48


def test_adapt_channels():
    grey = torch.rand(2, 1, 4, 4)
    assert torch.equal(adapt_channels(grey, 3)[:, 2], grey[:, 0])
    colour = torch.rand(2, 3, 4, 4)
    assert torch.allclose(adapt_channels(colour, 1)[:, 0], colour.mean(1))


def test_cpu_augmentation_draws_the_numbers_it_always_drew():
    """Issue 23 fault 7 moved the flip/crop draws onto the images' device; on the CPU they still come from
    the one seeded generator, in the same order (the epoch's permutation, then per batch the crop's row and
    column offsets, then the flip coins), so CPU results are unchanged. The reference is written out here
    image by image from that order, for two epochs."""
    x = torch.randint(0, 256, (20, 1, 5, 6), dtype=torch.uint8)
    y = torch.arange(20)
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    b = Batches(x, y, batch_size=8, mean=mean, std=std, in_channels=1, shuffle=True, augment="flip+crop",
                drop_last=True, channels_last=False, seed=3)  # fmt: skip
    g = torch.Generator().manual_seed(3)
    padded = F.pad(x, (4, 4, 4, 4))
    for _epoch in range(2):
        order = torch.randperm(20, generator=g)
        got = list(b)
        assert len(got) == 2
        for i, (xb, yb) in enumerate(got):
            idx = order[8 * i : 8 * (i + 1)]
            oy, ox = torch.randint(0, 9, (8,), generator=g), torch.randint(0, 9, (8,), generator=g)
            coins = torch.rand(8, generator=g) < 0.5
            for k, j in enumerate(idx.tolist()):
                window = padded[j, :, oy[k] : oy[k] + 5, ox[k] : ox[k] + 6]
                want = (window.flip(2) if coins[k] else window).float() / 255 / 0.25 - 0.5 / 0.25
                assert torch.allclose(xb[k], want, atol=1e-5) and yb[k] == j


def test_augmentation_on_a_device_copies_nothing_from_the_host(monkeypatch):
    """Issue 23 fault 7: flip/crop values were drawn on the CPU and copied to the GPU every step (a blocking
    copy each). Images on another device (the meta device stands in for a GPU here, and a CPU generator
    for its generator, which the meta device lacks) are augmented with no host-to-device copy, from a
    generator made for that device with the recipe's seed."""
    import regspace.train.pipeline as pipeline

    made = []
    monkeypatch.setattr(pipeline, "device_generator", lambda device, seed: made.append((device.type, seed)) or
                        torch.Generator().manual_seed(seed))  # fmt: skip
    x = torch.empty((16, 3, 8, 8), dtype=torch.uint8, device="meta")
    b = Batches(x, torch.zeros(16, dtype=torch.long, device="meta"), batch_size=8, mean=torch.zeros(3),
                std=torch.ones(3), in_channels=3, augment="flip+crop", seed=5)  # fmt: skip
    assert made == [("meta", 5)]
    copies = []
    to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        out = to(self, *args, **kwargs)
        if self.device.type == "cpu" and out.device.type != "cpu":
            copies.append(tuple(self.shape))
        return out

    monkeypatch.setattr(torch.Tensor, "to", spy)
    out = b.transform(x[:8])
    assert out.device.type == "meta" and out.shape == (8, 3, 8, 8) and copies == []
