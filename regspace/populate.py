"""Populating a store: sample draws of a space into it, resuming its seeded stream, and enqueue the new
networks in a sweep (`regspace sample`). Sampling itself (regspace.sampler) never touches a store."""

from __future__ import annotations

import numpy as np

from regspace.design import Context, Stem
from regspace.presets import Budget
from regspace.sampler import MAX_CANDIDATES, SampleResult, sample
from regspace.schema import MODELS_SCHEMA, conform
from regspace.spaces.base import Space
from regspace.units import format_quantity


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
    regime: str | None = None,
    hparams=None,
) -> SampleResult:
    """Add ``n`` draws of ``space`` to ``store`` (a regspace.store.Store), resuming its seeded stream.

    The stream of (space, seed) continues after the last draw the store holds, so a rerun never
    redraws or re-counts earlier draws. A network the store already holds gets a new row with this
    call's draws (its multiplicity grows); it is never trained twice. The store lock serialises
    concurrent samplers: each continues after the others' draws, and none is lost. ``regime``: the
    study regime the rows belong to (a budget string, written in the ``regime`` column). ``hparams``: the laws
    of recipe fields drawn with each model (regspace.spaces.hparams; None: the space's own, ``space.hparams``).
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
            hparams=space.hparams if hparams is None else tuple(hparams),
        )
        cols = dict(result.columns)
        m = result.distinct
        result.new = sum(1 for mid in cols["model_id"] if mid not in have)
        cols.update(
            space=[space.name] * m,
            depth=[sum(d) for d in cols["stage_depths"]],
            resolution=np.full(m, context.resolution),
            in_channels=np.full(m, context.in_channels),
            num_classes=np.full(m, context.num_classes),
            preset=[preset.name + ("+custom" if custom else "")] * m,
            seed=np.full(m, seed),
            sampled_at=[datetime.datetime.now(datetime.timezone.utc)] * m,
            regspace_version=[__version__] * m,
            regime=[regime] * m,
        )
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
