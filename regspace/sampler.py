"""Rejection sampling of a design space under complexity constraints (vectorised, seeded)."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from regspace.design import Context, Stem
from regspace.errors import RegspaceError
from regspace.population import group_by_network
from regspace.presets import Budget
from regspace.schema import design_columns
from regspace.spaces import hparams as hp
from regspace.spaces.base import Space
from regspace.units import format_quantity

BATCH = 8192  # candidates per vectorised draw; part of the seeded stream, so never change it casually
MAX_CANDIDATES = 20_000_000
PROBE = 1_000_000  # after this many candidates, give up early if the rate cannot reach n in time


@dataclass
class SampleResult:
    """The accepted draws of one call, grouped by network: one row per distinct network (columns as
    numpy arrays / lists) with ``multiplicity`` (its draws) and ``draw_indices``; plus the cost."""

    space: str
    columns: dict
    drawn: int  # candidates consumed from the stream
    accepted: int  # candidates that met the space's constraints and the budget: the draws
    seconds: float
    start: int = 0  # the stream position this call started at
    table: object = None  # sample_to_store: the rows written, as a pyarrow Table with the store's schema
    new: int | None = None  # sample_to_store: distinct networks the store did not hold before

    @property
    def n(self) -> int:
        """Draws (repeats included): the population this call adds."""
        return int(np.sum(self.columns["multiplicity"])) if self.distinct else 0

    @property
    def distinct(self) -> int:
        return len(self.columns["model_id"])

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drawn if self.drawn else 0.0


def batch_rng(space: Space, seed: int, batch: int) -> np.random.Generator:
    """The generator of one batch of the (space, seed) stream: candidate k is entry k % BATCH of batch
    k // BATCH. Seeding every batch on its own lets sampling resume at any candidate in O(1); the
    streams of different spaces are independent for the same seed (a seed is shared by a whole sweep)."""
    key = [seed, zlib.crc32(space.name.encode()), batch]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def sample(
    space: Space,
    n: int,
    *,
    budget: Budget,
    stem: Stem,
    context: Context,
    seed: int = 0,
    start: int = 0,
    max_candidates: int = MAX_CANDIDATES,
    hparams: hp.Laws = (),
) -> SampleResult:
    """Draw ``n`` models of ``space`` i.i.d. from its distribution conditioned on ``budget``.

    Candidates are taken from the seeded stream from position ``start`` on, and the first ``n`` that
    meet the space's constraints and the budget are the draws: nothing else is dropped, so a network
    drawn twice is returned once with multiplicity 2 (the reference sampler's population). The result
    is a function of (space, seed, start, budget, stem, context) alone. Raises RegspaceError, with the
    observed complexity range, when the budget is impossible or too rare to finish within max_candidates.

    ``hparams``: laws of recipe fields drawn with each candidate (regspace.spaces.hparams), from the candidate's
    batch generator after the space's parameters; they are columns of the result and salt its model ids.
    """
    if n < 1:
        raise RegspaceError(f"the number of models to sample must be at least 1, got {n}")
    t0 = time.perf_counter()
    parts: list[dict] = []
    got = 0
    pos = start
    seen_flops: list[np.ndarray] = []
    while got < n:
        b, skip = divmod(pos, BATCH)
        rng = batch_rng(space, seed, b)
        raw = space.draw(rng, BATCH)
        drawn_hp = hp.draw(hparams, rng, BATCH)  # after the design: a space without laws draws as before
        batch, valid = space.derive(raw, stem)
        cx = batch.complexity(context)
        ok = valid & budget.contains(cx)
        ok[:skip] = False  # used by an earlier call
        if len(seen_flops) < 64:
            seen_flops.append(cx.flops[valid][:256])
        rows = np.flatnonzero(ok)[: n - got]
        if len(rows):
            sub = batch.take(rows)
            values = {k: v[rows] for k, v in drawn_hp.items()}
            ids = hp.salted_ids(sub.model_ids(context), values)
            parts.append(_columns(space, raw, sub, cx, rows, ids, b * BATCH))
            if hparams:
                parts[-1].update(values, hparams=[hp.to_json(hparams)] * len(rows))
            got += len(rows)
        pos = b * BATCH + (int(rows[-1]) + 1 if got == n else BATCH)
        if got < n and (
            pos - start >= max_candidates or (pos - start >= PROBE and _hopeless(got, n, pos - start, max_candidates))
        ):
            raise RegspaceError(_impossible_message(space, n, got, pos - start, got, budget, seen_flops))
    draws = {
        k: np.concatenate([p[k] for p in parts])
        if isinstance(parts[0][k], np.ndarray)
        else sum((p[k] for p in parts), [])
        for k in parts[0]
    }
    return SampleResult(space.name, group_by_network(draws), pos - start, got, time.perf_counter() - t0, start)


def _hopeless(got: int, n: int, drawn: int, max_candidates: int) -> bool:
    rate = got / drawn
    return rate == 0 or (n - got) / rate > (max_candidates - drawn)


def _columns(space: Space, raw: dict, sub, cx, rows: np.ndarray, ids: list[str], offset: int) -> dict:
    cols = {
        "model_id": np.asarray(ids, dtype=object),
        "draw_index": (rows + offset).astype(np.int64),
        "flops": cx.flops[rows].astype(np.int64),
        "params": cx.params[rows].astype(np.int64),
        "acts": cx.acts[rows].astype(np.int64),
        **design_columns(sub),
    }
    for name, values in space.columns(raw).items():
        cols[name] = np.asarray(values)[rows]
    return cols


def _impossible_message(space, n, got, drawn, accepted, budget, seen_flops) -> str:
    flops = np.concatenate(seen_flops) if seen_flops else np.array([])
    where = ""
    if len(flops):
        lo, med, hi = np.percentile(flops, [5, 50, 95])
        where = (
            f"; {space.name} models here have flops {format_quantity(lo)} (5%) / {format_quantity(med)} (median)"
            f" / {format_quantity(hi)} (95%)"
        )
    if accepted == 0:
        return (
            f"no {space.name} model met the budget ({budget}) in {drawn:,} candidates{where}; "
            "widen the range (e.g. --flops) or choose another --preset"
        )
    return (
        f"budget too narrow: found only {got} of {n} {space.name} models in {drawn:,} candidates "
        f"(acceptance {accepted / drawn:.2e}){where}; widen the range or ask for fewer models"
    )
