"""Rejection sampling of a design space under complexity constraints (vectorised, seeded)."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from regspace.design import Context, Stem
from regspace.errors import RegspaceError
from regspace.presets import Budget
from regspace.spaces.base import Space
from regspace.units import format_quantity

BATCH = 8192  # candidates per vectorised draw; part of the seeded stream, so never change it casually
MAX_CANDIDATES = 20_000_000
PROBE = 1_000_000  # after this many candidates, give up early if the rate cannot reach n in time


@dataclass
class SampleResult:
    """Accepted models as columns (numpy arrays / lists), plus how hard they were to find."""

    space: str
    columns: dict
    drawn: int
    accepted: int
    seconds: float
    table: object = None  # sample_to_store: the rows written, as a pyarrow Table with the store's schema

    @property
    def n(self) -> int:
        return len(self.columns["model_id"])

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drawn if self.drawn else 0.0


def space_rng(space: Space, seed: int) -> np.random.Generator:
    """Independent streams per space for the same seed (a seed is shared by a whole sweep)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(space.name.encode())])))


def sample(
    space: Space,
    n: int,
    *,
    budget: Budget,
    stem: Stem,
    context: Context,
    seed: int = 0,
    exclude: set[str] | frozenset = frozenset(),
    max_candidates: int = MAX_CANDIDATES,
) -> SampleResult:
    """Draw ``n`` distinct models of ``space`` that meet ``budget``, skipping ids in ``exclude``.

    Candidates are drawn from the seeded stream in batches of BATCH, so the result is a function
    of (space, seed, budget, stem, context, exclude) alone. Raises RegspaceError, with the observed
    complexity range, when the budget is impossible or too rare to finish within max_candidates.
    """
    if n < 1:
        raise RegspaceError(f"the number of models to sample must be at least 1, got {n}")
    t0 = time.perf_counter()
    rng = space_rng(space, seed)
    taken: set[str] = set(exclude)
    parts: list[dict] = []
    got = drawn = accepted = 0
    seen_flops: list[np.ndarray] = []
    while got < n:
        raw = space.draw(rng, BATCH)
        batch, valid = space.derive(raw, stem)
        cx = batch.complexity(context)
        ok = valid & budget.contains(cx)
        if len(seen_flops) < 64:
            seen_flops.append(cx.flops[valid][:256])
        idx = np.flatnonzero(ok)
        accepted += len(idx)
        if len(idx):
            sub = batch.take(idx)
            ids = sub.model_ids(context)
            keep = []
            for k, mid in enumerate(ids):
                if mid not in taken:
                    taken.add(mid)
                    keep.append(k)
                    if got + len(keep) == n:
                        break
            if keep:
                rows = idx[keep]
                parts.append(_columns(space, raw, sub.take(keep), cx, rows, [ids[k] for k in keep], drawn))
                got += len(keep)
                if got == n:
                    drawn += int(rows[-1]) + 1
                    accepted -= int(np.count_nonzero(idx > rows[-1]))
                    break
        drawn += BATCH
        if drawn >= max_candidates or (drawn >= PROBE and _hopeless(got, n, accepted, drawn, max_candidates)):
            raise RegspaceError(_impossible_message(space, n, got, drawn, accepted, budget, seen_flops))
    cols = {k: np.concatenate([p[k] for p in parts]) if isinstance(parts[0][k], np.ndarray) else sum((p[k] for p in parts), [])
            for k in parts[0]}
    return SampleResult(space.name, cols, drawn, accepted, time.perf_counter() - t0)


def _hopeless(got: int, n: int, accepted: int, drawn: int, max_candidates: int) -> bool:
    rate = accepted / drawn
    return rate == 0 or (n - got) / rate > (max_candidates - drawn)


def _columns(space: Space, raw: dict, sub, cx, rows: np.ndarray, ids: list[str], offset: int) -> dict:
    cols = {
        "model_id": np.asarray(ids, dtype=object),
        "draw_index": (rows + offset).astype(np.int64),
        "flops": cx.flops[rows].astype(np.int64),
        "params": cx.params[rows].astype(np.int64),
        "acts": cx.acts[rows].astype(np.int64),
        "stage_widths": sub.widths.tolist(),
        "stage_depths": sub.depths.tolist(),
        "stage_group_widths": sub.group_widths.tolist(),
        "stage_bottleneck_ratios": sub.bottleneck_ratios.tolist(),
    }
    for name, values in space.columns(raw).items():
        cols[name] = np.asarray(values)[rows]
    return cols


def _impossible_message(space, n, got, drawn, accepted, budget, seen_flops) -> str:
    flops = np.concatenate(seen_flops) if seen_flops else np.array([])
    where = ""
    if len(flops):
        lo, med, hi = np.percentile(flops, [5, 50, 95])
        where = (f"; {space.name} models here have flops {format_quantity(lo)} (5%) / {format_quantity(med)} (median)"
                 f" / {format_quantity(hi)} (95%)")
    if accepted == 0:
        return (f"no {space.name} model met the budget ({budget}) in {drawn:,} candidates{where}; "
                "widen the range (e.g. --flops) or choose another --preset")
    return (f"budget too narrow: found only {got} of {n} {space.name} models in {drawn:,} candidates "
            f"(acceptance {accepted / drawn:.2e}){where}; widen the range or ask for fewer models")


def sample_to_store(
    store,
    space: Space,
    n: int,
    *,
    preset,
    budget: Budget,
    stem: Stem | None = None,
    context: Context | None = None,
    seed: int = 0,
    max_candidates: int = MAX_CANDIDATES,
) -> SampleResult:
    """Sample ``n`` new models of ``space`` into ``store`` (a regspace.store.Store).

    Models already in the store for this space are skipped, so repeated calls add new models and
    never duplicate old ones. The store lock serialises concurrent samplers: each sees the others'
    models, and none is lost.
    """
    import datetime

    from regspace import __version__

    stem = stem or preset.stem
    context = context or preset.context
    custom = stem != preset.stem or context != preset.context
    with store.lock():
        exclude = store.model_ids(space.name)
        result = sample(space, n, budget=budget, stem=stem, context=context, seed=seed, exclude=exclude,
                        max_candidates=max_candidates)
        cols = dict(result.columns)
        m = result.n
        cols.update(
            space=[space.name] * m,
            block=[space.block] * m,
            depth=[sum(d) for d in cols["stage_depths"]],
            se_ratio=np.full(m, space.se_ratio),
            stem=[stem.name] * m,
            resolution=np.full(m, context.resolution),
            in_channels=np.full(m, context.in_channels),
            num_classes=np.full(m, context.num_classes),
            preset=[preset.name + ("+custom" if custom else "")] * m,
            seed=np.full(m, seed),
            sampled_at=[datetime.datetime.now(datetime.timezone.utc)] * m,
            regspace_version=[__version__] * m,
        )
        from regspace.store import MODELS_SCHEMA, conform

        table = conform(cols, MODELS_SCHEMA)
        store.append("models", table)
    result.table = table
    return result
