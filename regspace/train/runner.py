"""`regspace train`: which models, on how many workers of which devices, from a store or a queue.

The parent never imports torch. It lists the work — :class:`~regspace.train.work.LocalWork` (models of
a store without a result for the recipe) or :class:`~regspace.train.work.SweepWork` (a sweep) — plans
the worker slots (devices, workers per device, threads) and runs a
:class:`~regspace.train.pool.WorkerPool` over them. Interruption loses at most the models in flight:
finished results are already saved, and the next `regspace train` picks up exactly the models that
have none.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

from regspace import defaults
from regspace.errors import RegspaceError, UsageProblem
from regspace.schema import MODEL_COLUMNS
from regspace.store import Store
from regspace.train.pool import TrainSummary, WorkerPool, raise_interrupt
from regspace.train.recipe import Recipe, recipe_for_rows
from regspace.train.work import LocalWork, SweepWork, WorkSource


@dataclass(frozen=True)
class Parallelism:
    """How to spread the work: the --workers/--workers-per-device/--threads/--devices/--recycle options."""

    workers: int | None = None  # total workers (on GPUs: spread round-robin)
    workers_per_device: int | None = None  # GPUs only
    threads: int | None = None  # per worker
    devices: str | None = None  # auto | cpu | GPU indices
    recycle: int = defaults.RECYCLE


def balanced(models: list[dict], limit: int | None = None) -> list[dict]:
    """Models interleaved across spaces (one of each space in turn), so a --limit or a stop is balanced."""
    by_space: dict[str, deque] = {}
    for m in models:
        by_space.setdefault(m["space"], deque()).append(m)
    out = []
    while any(by_space.values()):
        for q in by_space.values():
            if q:
                out.append(q.popleft())
    return out[:limit] if limit else out


def default_workers(models: list[dict], *, cores: int, data_bytes: int, batch_size: int) -> int:
    """One single-threaded worker per core (measured faster than threads here), fewer if memory is short."""
    est = max(_estimate_memory(m, data_bytes, batch_size) for m in models) if models else 1 << 30
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 8 << 30
    by_memory = max(1, int(0.7 * available // est))
    n = sum(int(m.get("count", 1)) for m in models)  # queue sweeps give profiles: one row per kind, with a count
    return max(1, min(cores, by_memory, n if models else cores))


def _estimate_memory(m: dict, data_bytes: int, batch_size: int) -> int:
    activations = 4 * 3 * int(m["acts"]) * batch_size  # forward activations kept for backward, fp32 upper bound
    weights = 4 * 4 * int(m["params"])  # weights, gradients, momentum, a copy
    return data_bytes + activations + weights + (600 << 20)  # + the torch/lightning runtime


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def plan_slots(
    par: Parallelism,
    models: list[dict],
    *,
    data_bytes: int,
    batch_size: int,
    planned: int | None,
    measured: list[dict] | None = None,
    host_bytes: int | None = None,
) -> tuple[list[str], int]:
    """(one device per worker: "cpu" or "cuda:i", threads per worker). ``measured``: this recipe's earlier
    GPU results (:func:`gpu_measurements`); the measured/estimated ratio they show scales every pending
    model's estimate (devices.measured_scale), so a larger pending model is planned larger. ``host_bytes``:
    the host memory one GPU worker needs (devices.gpu_worker_host_bytes); fewer GPU workers, said in one
    line, when they would not fit in the available memory."""
    from regspace.console import say
    from regspace.train.devices import resolve_devices

    gpus = resolve_devices(par.devices, say=say)
    if gpus:  # by compute mode: Prohibited GPUs are excluded, Exclusive_Process ones take one worker
        from regspace.train.devices import check_compute_modes, one_worker_where_exclusive

        gpus, single = check_compute_modes(gpus, say=say)
    cores = cpu_count()
    if par.workers_per_device is not None and not gpus:
        raise RegspaceError("--workers-per-device applies to GPUs; on the CPU use --workers")
    if par.workers_per_device is not None and par.workers is not None:
        raise RegspaceError("give --workers (the total, spread over the GPUs) or --workers-per-device, not both")
    if gpus:
        from regspace.train.devices import gpu_free_bytes, gpu_model_bytes, measured_scale
        from regspace.train.devices import workers_per_device as per_device

        scale = measured_scale(measured or [], data_bytes, batch_size) or 1.0
        need = max(
            (gpu_model_bytes(int(m["acts"]), int(m["params"]), data_bytes, batch_size, scale) for m in models),
            default=gpu_model_bytes(0, 0, data_bytes, batch_size),
        )
        asked = par.workers_per_device if par.workers is None else -(-par.workers // len(gpus))
        per = per_device(need, gpu_free_bytes(gpus), cores=cores, asked=asked)  # refuses oversubscription
        n = par.workers or per * len(gpus)
        if host_bytes:
            from regspace.train.devices import available_host_bytes, fit_host_memory

            n = fit_host_memory(n, host_bytes, available_host_bytes(), say)
        devices = [f"cuda:{gpus[i % len(gpus)]}" for i in range(n)]  # round-robin over the GPUs
        devices = one_worker_where_exclusive(devices, single, say=say)
    else:
        n = par.workers or default_workers(models, cores=cores, data_bytes=data_bytes, batch_size=batch_size)
        devices = ["cpu"] * n
    if planned:
        devices = devices[: max(1, min(len(devices), planned))]
    threads = par.threads or max(1, cores // len(devices))
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a scheduler's (or the user's) cap wins
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    return devices, threads


def run_pool(
    work: WorkSource,
    recipe: Recipe,
    dataset,
    models: list[dict],
    par: Parallelism,
    *,
    progress: bool = False,
    measured: list[dict] | None = None,
    **pool_options,
) -> TrainSummary:
    """Plan the slots for these models and train the work source's models on a WorkerPool."""
    devices, threads = plan_slots(
        par,
        models,
        data_bytes=dataset.resident_bytes,
        batch_size=recipe.batch_size,
        planned=work.total,
        measured=measured,
        host_bytes=_host_bytes(dataset, recipe.batch_size),
    )
    config = {
        "threads": threads,
        "recipe": recipe.to_dict(),
        "data": dataset,
        "data_path": str(dataset.path),
        "dataset": recipe.dataset,
    }
    pool = WorkerPool(
        work, devices=devices, config=config, recipe=recipe, recycle=par.recycle, progress=progress, **pool_options
    )
    return pool.run()


def _host_bytes(dataset, batch_size: int) -> int:
    from regspace.train.devices import gpu_worker_host_bytes

    mapped = dataset.layout == "mapped"
    image_bytes = dataset.channels * dataset.resolution**2
    return gpu_worker_host_bytes(dataset.resident_bytes, mapped=mapped, image_bytes=image_bytes, batch_size=batch_size)


def prepare_data(
    recipe: Recipe, models: list[dict], *, data_dir: str | None, progress: bool, map_above: float | None = None
):
    """The prepared dataset for these models (one input resolution per run), with sanity checks.
    ``map_above``: see :func:`regspace.data.prepare` (None: automatic)."""
    from regspace.data import prepare

    resolutions = sorted({int(m["resolution"]) for m in models})
    if recipe.resolution is None and len(resolutions) > 1:
        raise RegspaceError(
            f"the pending models take several input resolutions ({', '.join(map(str, resolutions))})",
            hint="train them separately with --space, or pass --resolution",
        )
    resolution = recipe.resolution or resolutions[0]
    dataset = prepare(recipe.dataset, resolution=resolution, data_dir=data_dir, progress=progress, map_above=map_above)
    too_few = [m for m in models if int(m["num_classes"]) < dataset.num_classes]
    if too_few:
        raise RegspaceError(
            f"{len(too_few)} model(s) have {too_few[0]['num_classes']} outputs but {recipe.dataset} has "
            f"{dataset.num_classes} classes",
            hint="sample them with --classes or another --preset",
        )
    from regspace.data import make_split

    make_split(dataset.n_train, val_size=recipe.val_size, train_size=recipe.train_size, seed=recipe.split_seed)
    return dataset


@dataclass
class Work:
    """What one training run trains: the work source, the recipe it trains with (a sweep's may differ
    from the one asked for), the rows the plan is made from (model rows, or a sweep's profiles: one row
    per kind of model, with a count), and what differs in the summary."""

    source: WorkSource | None  # None: nothing to train
    recipe: Recipe
    models: list[dict]
    measured: list[dict] | None = None  # the recipe's earlier GPU results (gpu_measurements; local stores only)
    sweep: str | None = None  # the sweep's name, when the work comes from one


def local_work(
    store: Store,
    recipe: Recipe,
    *,
    spaces: list[str] | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    only: set[str] | None = None,
    order=None,
) -> Work:
    """The models of ``store`` without a result for ``recipe``. ``only``: just these model ids. ``order``: a
    function giving the training order of the pending model rows (default :func:`balanced`: one of each
    space in turn)."""
    columns = MODEL_COLUMNS if order is None else [*MODEL_COLUMNS, "seed", "draw_indices"]
    pending = store.pending(recipe.hash, columns, seed=recipe.seed, spaces=spaces, retry_failed=retry_failed)
    drawn = recipe_for_rows(recipe, pending)  # models drawn with recipe fields (regspace.spaces.hparams)
    if drawn.hash != recipe.hash:
        recipe = drawn
        pending = store.pending(recipe.hash, columns, seed=recipe.seed, spaces=spaces, retry_failed=retry_failed)
    if only is not None:
        pending = [m for m in pending if m["model_id"] in only]
    pending = (order or balanced)(pending)[:limit] if limit else (order or balanced)(pending)
    if not pending:
        return Work(None, recipe, [])
    return Work(LocalWork(store, recipe, pending), recipe, pending, measured=gpu_measurements(store, recipe.hash))


def sweep_work(
    url: str,
    sweep: str,
    recipe: Recipe,
    *,
    explicit_recipe: bool,
    workers: int | None = None,
    heartbeat: int = defaults.HEARTBEAT_SECONDS,
    grace: int = defaults.GRACE_SECONDS,
) -> Work:
    """The waiting models of a sweep, trained with the sweep's recipe (see agree_recipe)."""
    from regspace.console import say
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import profiles
    from regspace.train.recipe import agree_recipe

    q = open_study(url, sweep, heartbeat=heartbeat, grace=grace, create=False)
    q.check_workers(workers or 1)
    state = q.summary()
    waiting, running = sum(r["waiting"] for r in state), sum(r["running"] for r in state)
    say(f"{q.where}: {waiting} model(s) waiting, {running} running")
    recipe = agree_recipe(q, recipe, explicit=explicit_recipe)
    models = profiles(q)
    return Work(SweepWork(q) if models else None, recipe, models, sweep=sweep)


def open_work(
    recipe: Recipe,
    *,
    store: str,
    queue: str | None,
    sweep: str = "default",
    explicit_recipe: bool,
    spaces: str | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    workers: int | None = None,
    heartbeat: int = defaults.HEARTBEAT_SECONDS,
    grace: int = defaults.GRACE_SECONDS,
    skip_unreadable: bool = False,
) -> Work:
    """`regspace train`'s work: the --queue sweep's when a queue URL is given, else the local store's
    pending models. The one place training decides between a local store and a sweep. The store is read
    strictly: a damaged part file is one error line, unless ``skip_unreadable``."""
    if queue:
        if spaces or limit or retry_failed:
            raise UsageProblem("--space, --limit and --retry-failed apply to a local store, not a --queue")
        return sweep_work(
            queue, sweep, recipe, explicit_recipe=explicit_recipe, workers=workers, heartbeat=heartbeat, grace=grace
        )
    from regspace.spaces import resolve_names

    return local_work(Store.open(store, strict=not skip_unreadable), recipe, spaces=resolve_names(spaces), limit=limit,
                      retry_failed=retry_failed)  # fmt: skip


def run_work(
    work: Work,
    *,
    parallelism: Parallelism = Parallelism(),
    data_dir: str | None = None,
    map_above: float | None = None,
    show_progress: bool | None = None,
) -> TrainSummary:
    """Prepare the data for the work's models and train them on a WorkerPool; returns counts and timing."""
    from regspace.console import stderr_is_terminal

    if work.source is None:
        return TrainSummary(work.recipe, 0, sweep=work.sweep)
    progress = stderr_is_terminal() if show_progress is None else show_progress
    dataset = prepare_data(work.recipe, work.models, data_dir=data_dir, progress=progress, map_above=map_above)
    summary = run_pool(
        work.source, work.recipe, dataset, work.models, parallelism, progress=progress, measured=work.measured
    )
    if work.sweep is not None:
        summary.planned = None  # a sweep's other workers train some of its models
        summary.sweep = work.sweep
    return summary


def train(
    store: Store,
    recipe: Recipe,
    *,
    spaces: list[str] | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    parallelism: Parallelism = Parallelism(),
    data_dir: str | None = None,
    map_above: float | None = None,
    show_progress: bool | None = None,
    only: set[str] | None = None,
    order=None,
) -> TrainSummary:
    """Train every pending model of ``store`` with ``recipe``; returns counts and timing.
    ``only`` and ``order``: see :func:`local_work`."""
    from regspace.train.devices import parse_devices

    parse_devices(parallelism.devices)  # a malformed --devices fails before any data is prepared
    work = local_work(store, recipe, spaces=spaces, limit=limit, retry_failed=retry_failed, only=only, order=order)
    return run_work(work, parallelism=parallelism, data_dir=data_dir, map_above=map_above, show_progress=show_progress)


def gpu_measurements(store: Store, recipe_hash: str) -> list[dict]:
    """This recipe's GPU results that recorded a memory peak, each with its model's acts and params: rows of
    model_id, acts, params, peak_memory_mb, peak_reserved_mb (null before schema 6)."""
    columns = ["model_id", "device_kind", "peak_memory_mb", "peak_reserved_mb"]
    rows = [
        r
        for r in store.results_for(recipe_hash, columns).to_pylist()
        if r["device_kind"] == "cuda" and (r["peak_memory_mb"] or r["peak_reserved_mb"])
    ]
    if not rows:
        return []
    cost = {m["model_id"]: m for m in store.read_arrow("models", ["model_id", "acts", "params"]).to_pylist()}
    return [{**r, **cost[r["model_id"]]} for r in rows if r["model_id"] in cost and cost[r["model_id"]]["acts"]]


def train_from_queue(
    url: str,
    sweep: str,
    recipe: Recipe,
    *,
    explicit_recipe: bool,
    parallelism: Parallelism = Parallelism(),
    data_dir: str | None = None,
    map_above: float | None = None,
    heartbeat: int = defaults.HEARTBEAT_SECONDS,
    grace: int = defaults.GRACE_SECONDS,
    show_progress: bool | None = None,
) -> TrainSummary:
    """`regspace train --queue`: train models from the sweep until none is waiting or running."""
    from regspace.train.devices import parse_devices

    parse_devices(parallelism.devices)
    work = sweep_work(url, sweep, recipe, explicit_recipe=explicit_recipe, workers=parallelism.workers,
                      heartbeat=heartbeat, grace=grace)  # fmt: skip
    return run_work(work, parallelism=parallelism, data_dir=data_dir, map_above=map_above, show_progress=show_progress)


def run_seeds(store: str, recipe: Recipe, seeds: list[int], **options) -> list[TrainSummary]:
    """`regspace train --seeds`: :func:`run_training` once per training seed, one seed after another (each
    seed's results are its own: schema.RESULT_KEY); stops after an interrupted one. A sweep trains one
    seed (its recipe's): more than one seed with ``queue`` is refused (UsageProblem)."""
    if options.get("queue") and len(seeds) > 1:
        raise UsageProblem("a sweep trains one seed: --seeds with --queue takes one seed",
                           hint="give each seed its own --sweep, with --seed")  # fmt: skip
    out = []
    for seed in seeds:
        out.append(run_training(store, recipe.replace(seed=seed), **options))
        if out[-1].interrupted:
            break
    return out


def run_training(
    store: str,
    recipe: Recipe,
    *,
    explicit_recipe: bool,
    queue: str | None = None,
    sweep: str = "default",
    spaces: str | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    parallelism: Parallelism = Parallelism(),
    data_dir: str | None = None,
    map_above: float | None = None,
    heartbeat: int = defaults.HEARTBEAT_SECONDS,
    grace: int = defaults.GRACE_SECONDS,
    skip_unreadable: bool = False,
) -> TrainSummary:
    """`regspace train`: the local store's pending models, or the --queue sweep's. Ctrl-C or SIGTERM
    before the workers start (while the sweep or the data loads) stops it with one line and exit 130;
    from then on the pool stops the workers and gives models in flight back."""
    import signal

    from regspace.errors import Interrupted
    from regspace.train.devices import parse_devices

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        parse_devices(parallelism.devices)  # a malformed --devices fails before any data is prepared
        work = open_work(
            recipe, store=store, queue=queue, sweep=sweep, explicit_recipe=explicit_recipe, spaces=spaces,
            limit=limit, retry_failed=retry_failed, workers=parallelism.workers, heartbeat=heartbeat, grace=grace,
            skip_unreadable=skip_unreadable,
        )  # fmt: skip
        return run_work(work, parallelism=parallelism, data_dir=data_dir, map_above=map_above)
    except KeyboardInterrupt:
        raise Interrupted("interrupted before training began; no model was taken") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
