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
) -> SampleResult:
    """Draw ``n`` models of ``space`` i.i.d. from its distribution conditioned on ``budget``.

    Candidates are taken from the seeded stream from position ``start`` on, and the first ``n`` that
    meet the space's constraints and the budget are the draws: nothing else is dropped, so a network
    drawn twice is returned once with multiplicity 2 (the reference sampler's population). The result
    is a function of (space, seed, start, budget, stem, context) alone. Raises RegspaceError, with the
    observed complexity range, when the budget is impossible or too rare to finish within max_candidates.
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
        raw = space.draw(batch_rng(space, seed, b), BATCH)
        batch, valid = space.derive(raw, stem)
        cx = batch.complexity(context)
        ok = valid & budget.contains(cx)
        ok[:skip] = False  # used by an earlier call
        if len(seen_flops) < 64:
            seen_flops.append(cx.flops[valid][:256])
        rows = np.flatnonzero(ok)[: n - got]
        if len(rows):
            sub = batch.take(rows)
            parts.append(_columns(space, raw, sub, cx, rows, sub.model_ids(context), b * BATCH))
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
    return SampleResult(space.name, _group_by_network(draws), pos - start, got, time.perf_counter() - t0, start)


def _group_by_network(draws: dict) -> dict:
    """One row per distinct network, in order of first draw, with its multiplicity and draw indices."""
    ids = draws["model_id"]
    first: dict[str, int] = {}
    members: dict[str, list[int]] = {}
    for i, mid in enumerate(ids):
        first.setdefault(mid, i)
        members.setdefault(mid, []).append(int(draws["draw_index"][i]))
    keep = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    cols = {k: v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep] for k, v in draws.items()}
    cols["multiplicity"] = np.array([len(members[m]) for m in first], dtype=np.int64)
    cols["draw_indices"] = [members[m] for m in first]
    return cols


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
    """Add ``n`` draws of ``space`` to ``store`` (a regspace.store.Store), resuming its seeded stream.

    The stream of (space, seed) continues after the last draw the store holds, so a rerun never
    redraws or re-counts earlier draws. A network the store already holds gets a new row with this
    call's draws (its multiplicity grows); it is never trained twice. The store lock serialises
    concurrent samplers: each continues after the others' draws, and none is lost.
    """
    import datetime

    from regspace import __version__

    stem = stem or preset.stem
    context = context or preset.context
    custom = stem != preset.stem or context != preset.context
    with store.lock():
        have = store.model_ids(space.name)
        result = sample(
            space,
            n,
            budget=budget,
            stem=stem,
            context=context,
            seed=seed,
            start=store.next_draw(space.name, seed),
            max_candidates=max_candidates,
        )
        cols = dict(result.columns)
        m = result.distinct
        result.new = sum(1 for mid in cols["model_id"] if mid not in have)
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


def sample_summary(r: SampleResult, budget: Budget, where) -> str:
    """The line `regspace sample` prints: draws, distinct networks, new ones, and the acceptance rate."""
    fl = r.columns["flops"]
    repeats = f", {r.n - r.distinct} repeat draw(s)" if r.n > r.distinct else ""
    new = f", {r.new} new to the store" if r.new is not None else ""
    return (
        f"sampled {r.n} {r.space} draws into {where}: {r.distinct} distinct network(s){repeats}{new} "
        f"(budget: {budget}; flops {format_quantity(fl.min())}–{format_quantity(fl.max())}); "
        f"{r.drawn:,} candidates, {100 * r.acceptance_rate:.3g}% met the space's constraints and the budget; "
        f"{r.seconds:.2f} s"
    )


def sample_command(
    store_path: str,
    space_name: str,
    n: int,
    *,
    total: int | None = None,
    flops: str | None = None,
    params: str | None = None,
    acts: str | None = None,
    seed: int = 0,
    preset: str = "cifar",
    stem: str | None = None,
    resolution: int | None = None,
    in_channels: int | None = None,
    classes: int | None = None,
    max_candidates: int = MAX_CANDIDATES,
    queue: str | None = None,
    sweep: str = "default",
) -> list[str]:
    """`regspace sample`: draw ``n`` models (or, with ``total``, until the space holds that many draws) into
    the store, and enqueue the new ones in the --queue sweep. Returns the lines to print."""
    from regspace.presets import resolve_context
    from regspace.spaces import get_space
    from regspace.store import Store

    space = get_space(space_name)
    preset_, stem_, context = resolve_context(preset, stem, resolution, in_channels, classes)
    budget = Budget.from_options(flops, params, acts, default=space.budget or preset_.budget)
    store = Store.create(store_path)
    if total is not None:
        have = store.draws(space.name)
        if have >= total:
            return [f"{space.name} already holds {have} draws in {store.path} (--total {total}); nothing sampled"]
        n = total - have
    r = sample_to_store(
        store,
        space,
        n,
        preset=preset_,
        budget=budget,
        stem=stem_,
        context=context,
        seed=seed,
        max_candidates=max_candidates,
    )
    lines = [sample_summary(r, budget, store.path)]
    if queue:
        from regspace.sweep.adapter import open_study
        from regspace.sweep.transfer import enqueue

        q = open_study(queue, sweep)
        lines.append(f"enqueued {enqueue(q, r.table.to_pylist())} model(s) in {q.where}")
    return lines
