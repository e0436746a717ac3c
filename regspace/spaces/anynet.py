"""AnyNet design spaces (DDS §3.1): X_a → X_e, and the same ladder with Y blocks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regspace.design import DesignBatch, Stem
from regspace.spaces.base import Space
from regspace.spaces.distributions import Param

# Per-stage domains of AnyNetX (DDS §3.1), each drawn uniformly and independently.
ANYNET_D = Param("d", "uniform", 1, 16, 1)
ANYNET_W = Param("w", "uniform", 8, 1024, 8)
ANYNET_B = Param("b", "choice", values=(1, 2, 4))
ANYNET_G = Param("g", "choice", values=(1, 2, 4, 8, 16, 32))

STAGE_PARAMS = ("d", "w", "b", "g")


def draw_nondecreasing(rng: np.random.Generator, p: Param, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """n draws of k i.i.d. values of p, conditioned on x_1 <= ... <= x_k.

    Returns (values (n, k), mask): rows where mask is False are rejected candidates.
    When p is uniform over a finite set of m values, the conditioned law is uniform over
    non-decreasing k-tuples (multisets), which map one-to-one onto k-subsets of m + k - 1 items
    (stars and bars: c_i = x_i + i). A uniform k-subset is k i.i.d. draws conditioned on being
    distinct, then sorted; distinctness rejects few rows, unlike rejecting unordered tuples
    (which keeps about 1/k! of them). Sorting i.i.d. draws without that condition would NOT be
    equivalent when ties are possible. Other distributions fall back to plain rejection.
    """
    support = p.support()
    if support is None:
        x = p.draw(rng, (n, k))
        return x, np.all(np.diff(x, axis=1) >= 0, axis=1)
    m = len(support)
    c = rng.integers(0, m + k - 1, (n, k))
    c.sort(axis=1)
    mask = np.all(np.diff(c, axis=1) > 0, axis=1)
    idx = np.clip(c - np.arange(k), 0, m - 1)
    return support[idx], mask


@dataclass(frozen=True)
class AnyNetSpace(Space):
    """Per-stage d_i, w_i, b_i, g_i; optionally shared across stages or non-decreasing."""

    stages: int = 4
    d: Param = ANYNET_D
    w: Param = ANYNET_W
    b: Param = ANYNET_B
    g: Param = ANYNET_G
    shared: frozenset = frozenset()
    increasing: frozenset = frozenset()

    family = "anynet"

    def params(self) -> list[Param]:
        return [self.d, self.w, self.b, self.g]

    def draw(self, rng, n):
        k = self.stages
        raw, mask = {}, np.ones(n, dtype=bool)
        for p in self.params():
            if p.name in self.shared:
                x = np.repeat(p.draw(rng, (n, 1)), k, axis=1)
            elif p.name in self.increasing:
                x, ok = draw_nondecreasing(rng, p, n, k)
                mask &= ok
            else:
                x = p.draw(rng, (n, k))
            raw[p.name] = x
        raw["_valid"] = mask
        return self.draw_act(rng, raw, n)

    def derive(self, raw, stem: Stem):
        batch = DesignBatch.from_sampled(
            raw["w"],
            raw["d"],
            raw["b"],
            raw["g"],
            se_ratio=self.se_ratio,
            stem=stem,
            block=self.block,
            # a space that draws them (MBConv's k, e; strides): else its own or the defaults
            strides=raw["s"] if "s" in raw else self.stage_strides(len(raw["d"]), self.stages),
            kernels=raw.get("k"),
            expansions=raw.get("e"),
            head_width=self.head_width,
            activation=self.activations(raw),
        )
        return batch, raw["_valid"]

    def columns(self, raw):
        cols = {}
        for p in STAGE_PARAMS + tuple(p for p in ("k", "e") if p in raw):
            for i in range(self.stages):
                cols[f"{p}{i + 1}"] = raw[p][:, i]
            if p in self.shared:
                cols[p] = raw[p][:, 0]
        return cols

    def constraints(self) -> list[str]:
        names = [p.name for p in self.params()]
        out = [f"shared {p}" for p in names if p in self.shared]
        out += [f"{p}_i+1 >= {p}_i" for p in names if p in self.increasing]
        return out + (["strides " + ", ".join(map(str, self.strides))] if self.strides else [])

    def parameter_rows(self) -> list[tuple[str, str]]:
        rows = []
        for p in self.params():
            scope = "shared" if p.name in self.shared else f"per stage ({self.stages})"
            order = ", non-decreasing" if p.name in self.increasing else ""
            rows.append((p.name, f"{p.describe()} {scope}{order}"))
        return rows + self.act_rows()


def _ladder(block: str, se_ratio: float) -> list[AnyNetSpace]:
    """X_a → X_e (or Y_a → Y_e): each step adds one constraint to the previous one."""
    steps = [
        ("a", frozenset(), frozenset(), 16, "unconstrained per-stage d, w, b, g"),
        ("b", frozenset({"b"}), frozenset(), 13, "one shared bottleneck ratio b"),
        ("c", frozenset({"b", "g"}), frozenset(), 10, "shared b and shared group width g"),
        ("d", frozenset({"b", "g"}), frozenset({"w"}), 10, "X_c with non-decreasing widths"),
        ("e", frozenset({"b", "g"}), frozenset({"w", "d"}), 10, "X_d with non-decreasing depths"),
    ]
    out = []
    for letter, shared, increasing, dof, desc in steps:
        name = f"{block}_{letter}"
        out.append(
            AnyNetSpace(
                name=name,
                title=f"AnyNet{block}_{letter.upper()}",
                se_ratio=se_ratio,
                dof=dof,
                aliases=(f"AnyNet{block}_{letter.upper()}", f"AnyNet{block}{letter.upper()}"),
                description=desc.replace("X_", f"{block}_"),
                shared=shared,
                increasing=increasing,
            )
        )
    return out


ANYNET_SPACES = _ladder("X", 0.0) + _ladder("Y", 0.25)
