"""`regspace train`: trains models in parallel worker processes, from a local store or a queue.

The parent never imports torch. It takes work from a *work source* — :class:`LocalWork` (models of
a store without a result for the recipe, claimed one at a time) or a queue (regspace.queue) — hands
each model to a free worker, and gives each result back to the source the moment it arrives (for a
store: one atomic part file). Workers are started through a forkserver that has imported torch and
lightning once, so starting or recycling a worker costs a fork, not a 4 s import.

Interruption loses at most the models in flight: finished results are already saved, and the next
`regspace train` picks up exactly the models that have none.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import signal
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from regspace import defaults
from regspace.errors import RegspaceError
from regspace.store import Store
from regspace.train.claims import Claims
from regspace.train.recipe import Recipe

WAIT = "wait"  # a work source's answer when nothing is available now but more may come


@dataclass
class TrainSummary:
    recipe: Recipe
    planned: int | None
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    skipped: int = 0  # taken by another run, or already done when we got to it
    interrupted: bool = False
    seconds: float = 0.0
    errors: list = field(default_factory=list)
    workers: int = 0
    threads: int = 0

    @property
    def done(self) -> int:
        return self.ok + self.diverged + self.failed

    def line(self) -> str:
        rate = self.done / self.seconds * 3600 if self.seconds > 0 else 0.0
        err = ""
        if self.errors:
            err = f"; validation error median {statistics.median(self.errors):.2f}% (best {min(self.errors):.2f}%)"
        skipped = f", {self.skipped} left to other runs" if self.skipped else ""
        if self.planned and self.planned - self.done - self.skipped > 0:
            skipped += f", {self.planned - self.done - self.skipped} still pending (rerun `regspace train`)"
        of = f" of {self.planned}" if self.planned is not None else ""
        return (
            f"trained {self.done}{of} models (ok {self.ok}, diverged {self.diverged}, failed {self.failed}"
            f"{skipped}) in {_fmt_time(self.seconds)}, {rate:.0f} models/hour, {self.workers} worker(s) × "
            f"{self.threads} thread(s){err}; recipe {self.recipe.name} {self.recipe.hash}"
        )

    def count(self, row: dict) -> None:
        st = row["status"]
        if st == "ok":
            self.ok += 1
            self.errors.append(row["error"])
        elif st == "diverged":
            self.diverged += 1
        else:
            self.failed += 1


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


MODEL_COLUMNS = [
    "model_id",
    "space",
    "stage_widths",
    "stage_depths",
    "stage_bottleneck_ratios",
    "stage_group_widths",
    "se_ratio",
    "stem",
    "resolution",
    "in_channels",
    "num_classes",
    "flops",
    "params",
    "acts",
]


def pending_models(
    store: Store,
    recipe_hash: str,
    *,
    spaces: list[str] | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
) -> list[dict]:
    """Models without a result for this recipe, interleaved across spaces (so a --limit is balanced)."""
    models = store.read_arrow("models", MODEL_COLUMNS).to_pylist()
    if spaces:
        known = {m["space"] for m in models}
        unknown = [s for s in spaces if s not in known]
        if unknown:
            raise RegspaceError(
                f"the store has no models of space(s) {', '.join(unknown)}",
                hint=f"it holds {', '.join(sorted(known)) or 'none'}",
            )
        models = [m for m in models if m["space"] in spaces]
    done = done_ids(store, recipe_hash, retry_failed=retry_failed)
    by_space: dict[str, deque] = {}
    seen: set[str] = set()
    for m in models:
        if m["model_id"] in done or m["model_id"] in seen:
            continue  # a model sampled in two spaces is trained once
        seen.add(m["model_id"])
        by_space.setdefault(m["space"], deque()).append(m)
    out = []
    while any(by_space.values()):
        for q in by_space.values():
            if q:
                out.append(q.popleft())
    return out[:limit] if limit else out


def done_ids(store: Store, recipe_hash: str, *, retry_failed: bool = False) -> set[str]:
    r = store.read_arrow("results", ["model_id", "recipe_hash", "status"]).to_pylist()
    return {
        x["model_id"] for x in r if x["recipe_hash"] == recipe_hash and (x["status"] != "failed" or not retry_failed)
    }


class LocalWork:
    """Pending models of a local store; claims keep concurrent runs from training the same model."""

    def __init__(self, store: Store, recipe: Recipe, models: list[dict]):
        self.store, self.recipe = store, recipe
        self.queue = deque(models)
        self.total = len(models)
        self.claims = Claims(store.path, recipe.hash)
        self.watcher = _ResultWatcher(store, recipe.hash)
        self.skipped = 0

    def next(self):
        while self.queue:
            m = self.queue.popleft()
            mid = m["model_id"]
            if mid not in self.claims.held and not self.claims.try_claim(mid):
                self.skipped += 1
                continue
            if self.watcher.has_result(mid):  # finished by another run between our listing and our claim
                self.claims.release(mid)
                self.skipped += 1
                continue
            return m
        return None

    def retry(self, model: dict) -> None:
        self.queue.appendleft(model)

    def done(self, model: dict, row: dict) -> None:
        self.store.append_rows("results", [row])
        self.claims.release(model["model_id"])

    def heartbeat(self) -> None:
        self.claims.heartbeat()

    def close(self, interrupted: bool) -> None:
        self.claims.release_all()
        if not interrupted:
            self.store.compact("results")


def default_workers(models: list[dict], *, cores: int, data_bytes: int, batch_size: int) -> int:
    """One single-threaded worker per core (measured faster than threads here), fewer if memory is short."""
    est = max(_estimate_memory(m, data_bytes, batch_size) for m in models) if models else 1 << 30
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 8 << 30
    by_memory = max(1, int(0.7 * available // est))
    return max(1, min(cores, by_memory, len(models) if models else cores))


def _estimate_memory(m: dict, data_bytes: int, batch_size: int) -> int:
    activations = 4 * 3 * int(m["acts"]) * batch_size  # forward activations kept for backward, fp32 upper bound
    weights = 4 * 4 * int(m["params"])  # weights, gradients, momentum, a copy
    return data_bytes + activations + weights + (600 << 20)  # + the torch/lightning runtime


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def prepare_data(recipe: Recipe, models: list[dict], *, data_dir: str | None, progress: bool):
    """The dataset cache entry for these models (one input resolution per run), with sanity checks."""
    from regspace.data import prepare

    resolutions = sorted({int(m["resolution"]) for m in models})
    if recipe.resolution is None and len(resolutions) > 1:
        raise RegspaceError(
            f"the pending models take several input resolutions ({', '.join(map(str, resolutions))})",
            hint="train them separately with --space, or pass --resolution",
        )
    resolution = recipe.resolution or resolutions[0]
    dataset = prepare(recipe.dataset, resolution=resolution, data_dir=data_dir, progress=progress)
    too_few = [m for m in models if int(m["num_classes"]) < dataset.num_classes]
    if too_few:
        raise RegspaceError(
            f"{len(too_few)} model(s) have {too_few[0]['num_classes']} outputs but {recipe.dataset} has "
            f"{dataset.num_classes} classes",
            hint="sample them with --classes or another --preset",
        )
    if recipe.val_size >= dataset.n_train:
        raise RegspaceError(f"validation size {recipe.val_size} leaves no training images ({dataset.n_train} in total)")
    return dataset


def train(
    store: Store,
    recipe: Recipe,
    *,
    spaces: list[str] | None = None,
    limit: int | None = None,
    workers: int | None = None,
    workers_per_device: int | None = None,
    threads: int | None = None,
    devices: str | None = None,
    data_dir: str | None = None,
    retry_failed: bool = False,
    recycle: int = defaults.RECYCLE,
    show_progress: bool | None = None,
) -> TrainSummary:
    """Train every pending model of ``store`` with ``recipe``; returns counts and timing."""
    from regspace.console import stderr_is_terminal
    from regspace.train.devices import parse_devices

    parse_devices(devices)  # a malformed --devices fails before any data is prepared
    pending = pending_models(store, recipe.hash, spaces=spaces, limit=limit, retry_failed=retry_failed)
    if not pending:
        return TrainSummary(recipe, 0)
    progress = stderr_is_terminal() if show_progress is None else show_progress
    dataset = prepare_data(recipe, pending, data_dir=data_dir, progress=progress)
    work = LocalWork(store, recipe, pending)
    summary = run_workers(
        work,
        recipe,
        dataset,
        sizing_models=pending,
        workers=workers,
        workers_per_device=workers_per_device,
        threads=threads,
        devices=devices,
        recycle=recycle,
        progress=progress,
    )
    summary.skipped = work.skipped
    return summary


@dataclass
class _Slot:
    index: int
    device: str
    process: object = None
    conn: object = None
    ready: bool = False
    current: dict | None = None
    progress: dict = field(default_factory=dict)


def run_workers(
    work,
    recipe: Recipe,
    dataset,
    *,
    sizing_models: list[dict],
    workers: int | None,
    devices: str | None,
    threads: int | None = None,
    recycle: int = defaults.RECYCLE,
    max_retries: int = 1,
    progress: bool = False,
    worker_target=None,
    workers_per_device: int | None = None,
) -> TrainSummary:
    """Drive worker processes until ``work`` is exhausted (or Ctrl-C / SIGTERM).

    ``worker_target`` replaces the worker's entry point (tests drive the parent with fake workers)."""
    t_start = time.perf_counter()
    summary = TrainSummary(recipe, getattr(work, "total", None))
    from regspace.console import say
    from regspace.train.devices import resolve_devices

    gpus = resolve_devices(devices, say=say)
    cores = cpu_count()
    data_bytes = os.path.getsize(dataset.path)
    if workers_per_device is not None and not gpus:
        raise RegspaceError("--workers-per-device applies to GPUs; on the CPU use --workers")
    if workers_per_device is not None and workers is not None:
        raise RegspaceError("give --workers (the total, spread over the GPUs) or --workers-per-device, not both")
    if gpus:
        from regspace.train.devices import gpu_free_bytes, gpu_model_bytes
        from regspace.train.devices import workers_per_device as per_device

        need = max(
            (gpu_model_bytes(int(m["acts"]), int(m["params"]), data_bytes, recipe.batch_size) for m in sizing_models),
            default=gpu_model_bytes(0, 0, data_bytes, recipe.batch_size),
        )
        asked = workers_per_device if workers is None else -(-workers // len(gpus))  # --workers: the total
        per = per_device(need, gpu_free_bytes(gpus), cores=cores, asked=asked)  # refuses oversubscription
        n_workers = workers or per * len(gpus)
        slot_devices = [f"cuda:{gpus[i % len(gpus)]}" for i in range(n_workers)]  # round-robin over the GPUs
    else:
        n_workers = workers or default_workers(
            sizing_models, cores=cores, data_bytes=data_bytes, batch_size=recipe.batch_size
        )
        slot_devices = ["cpu"] * n_workers
    if summary.planned:
        n_workers = min(n_workers, summary.planned)
    threads = threads or max(1, cores // n_workers)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a scheduler's (or the user's) cap wins
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    summary.workers, summary.threads = n_workers, threads

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["regspace.train.fit"])
    config = {
        "threads": threads,
        "recipe": recipe.to_dict(),
        "data_path": str(dataset.path),
        "dataset": recipe.dataset,
        "num_classes": dataset.num_classes,
        "recycle": recycle,
    }
    slots = [_Slot(i, slot_devices[i]) for i in range(n_workers)]
    retries: dict[str, int] = {}
    display = _Display(summary.planned, slots, recipe) if progress else None
    state = {"exhausted": False, "early_deaths": 0, "last_beat": time.monotonic()}

    def start(slot: _Slot):
        from regspace.train.worker import worker_main

        parent, child = ctx.Pipe()
        slot.process = ctx.Process(
            target=worker_target or worker_main, args=(child, {**config, "device": slot.device}), daemon=True
        )
        slot.process.start()
        child.close()
        slot.conn, slot.ready, slot.current, slot.progress = parent, False, None, {}

    def finish(model: dict, row: dict):
        row.setdefault("model_id", model["model_id"])
        row.setdefault("finished_at", datetime.datetime.now(datetime.timezone.utc))
        work.done(model, row)
        summary.count(row)
        if display:
            display.finished(row)

    def dispatch(slot: _Slot):
        """Give an idle, ready worker its next model (or tell it to stop when the work is over)."""
        if state["exhausted"]:
            _stop(slot)
            return
        m = work.next()
        if m is None:
            state["exhausted"] = True
            _stop(slot)
            return
        if m == WAIT:
            return
        slot.current, slot.progress = m, {}
        slot.conn.send(_task(m))

    def died(slot: _Slot):
        code = None
        if slot.process is not None:
            slot.process.join(timeout=5)
            code = slot.process.exitcode
        m = slot.current
        if not slot.ready:
            state["early_deaths"] += 1
            if state["early_deaths"] > 2 * n_workers:
                raise RegspaceError(
                    f"training workers keep dying before they start (exit code {code})",
                    hint="rerun with --workers 1 to see the error",
                )
        if m is not None:
            mid = m["model_id"]
            retries[mid] = retries.get(mid, 0) + 1
            if retries[mid] <= max_retries:
                work.retry(m)
            else:
                finish(
                    m,
                    {
                        "recipe_hash": recipe.hash,
                        "recipe": recipe.to_json(),
                        "status": "failed",
                        "reason": f"worker process died (exit code {code}) {retries[mid]} times while training "
                        "this model; out of memory?",
                        "epochs": 0,
                        "dataset": recipe.dataset,
                        "seed": recipe.seed,
                    },
                )
        slot.process, slot.conn, slot.current, slot.ready = None, None, None, False

    def handle(slot: _Slot):
        while slot.conn is not None:
            try:
                if not slot.conn.poll():
                    return
                msg = slot.conn.recv()
            except (EOFError, OSError):
                died(slot)
                return
            kind = msg[0]
            if kind == "fatal":
                raise RegspaceError(f"training worker failed: {msg[1]}")
            if kind == "ready":
                slot.ready = True
                dispatch(slot)
            elif kind == "progress":
                slot.progress.update(msg[2])
            elif kind == "result":
                m, slot.current = slot.current, None
                finish(m, msg[2])
                if msg[3]:  # the worker retires (recycling): a fresh one takes its place
                    slot.process.join(timeout=10)
                    slot.process, slot.conn, slot.ready = None, None, False
                    return
                dispatch(slot)

    previous_term = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        if display:
            display.start()
        while True:
            live = [s for s in slots if s.process is not None]
            if state["exhausted"] and not any(s.current for s in live):
                break
            if not state["exhausted"]:
                for s in slots:
                    if s.process is None:
                        start(s)
                for s in slots:  # idle workers that were told to wait: ask again
                    if s.ready and s.current is None and s.conn is not None:
                        dispatch(s)
            live = [s for s in slots if s.process is not None]
            waitables = {s.conn: s for s in live}
            waitables.update({s.process.sentinel: s for s in live})
            for obj in wait(list(waitables), timeout=0.5):
                slot = waitables[obj]
                if slot.process is None:
                    continue
                if obj is slot.conn or slot.conn.poll():
                    handle(slot)
                else:
                    died(slot)
            if time.monotonic() - state["last_beat"] > getattr(work, "heartbeat_seconds", defaults.HEARTBEAT_SECONDS):
                work.heartbeat()
                state["last_beat"] = time.monotonic()
            if display:
                display.refresh()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        _shutdown(slots)
        work.close(interrupted)
        if display:
            display.stop()
    summary.interrupted = interrupted
    summary.seconds = time.perf_counter() - t_start
    return summary


def _task(m: dict) -> dict:
    return {
        "model_id": m["model_id"],
        "design": {
            "widths": list(m["stage_widths"]),
            "depths": list(m["stage_depths"]),
            "bottleneck_ratios": list(m["stage_bottleneck_ratios"]),
            "group_widths": list(m["stage_group_widths"]),
            "se_ratio": m["se_ratio"],
            "stem": m["stem"],
        },
        "context": {
            "resolution": int(m["resolution"]),
            "in_channels": int(m["in_channels"]),
            "num_classes": int(m["num_classes"]),
        },
    }


def _stop(slot: _Slot) -> None:
    try:
        slot.conn.send(None)
    except (OSError, ValueError):
        pass
    slot.process.join(timeout=10)
    slot.process, slot.conn, slot.ready = None, None, False


def _shutdown(slots) -> None:
    for s in slots:
        if s.process is not None and s.process.is_alive():
            s.process.terminate()
    for s in slots:
        if s.process is not None:
            s.process.join(timeout=10)
            if s.process.is_alive():
                s.process.kill()
                s.process.join(timeout=5)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class _ResultWatcher:
    """Reads only result part files it has not seen, to re-check a model right after claiming it."""

    def __init__(self, store: Store, recipe_hash: str):
        self.store, self.recipe_hash = store, recipe_hash
        self.seen_parts: set[str] = set()
        self.done: set[str] = set()

    def has_result(self, model_id: str) -> bool:
        if model_id in self.done:
            return True
        for p in self.store.parts("results"):
            if p.name in self.seen_parts:
                continue
            t = self.store.read_part(p, ["model_id", "recipe_hash", "status"])
            self.seen_parts.add(p.name)
            if t is not None:
                for r in t.to_pylist():
                    if r["recipe_hash"] == self.recipe_hash and r["status"] != "failed":
                        self.done.add(r["model_id"])
        return model_id in self.done


class _Display:
    """A live view on a terminal: overall progress and what each worker is doing."""

    def __init__(self, total: int | None, slots, recipe: Recipe):
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.slots, self.recipe = slots, recipe
        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task("train", total=total, counts="")
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        from regspace.units import format_quantity

        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
        for c in ("worker", "model", "space", "flops", "epoch", "img/s", "val err %"):
            table.add_column(c, justify="right" if c in ("flops", "img/s", "val err %") else "left")
        for s in self.slots:
            p, m = s.progress, s.current or {}
            epoch = f"{p.get('epoch', '-')}/{self.recipe.epochs}" if m else "-"
            if m and p.get("step"):
                epoch += f" ({100 * p['step'] // max(1, p['steps'])}%)"
            ips = f"{p['images_per_second']:.0f}" if p.get("images_per_second") else "-"
            err = f"{p['val_error']:.2f}" if p.get("val_error") is not None else "-"
            state = m.get("model_id") or ("starting" if s.process and not s.ready else "idle")
            table.add_row(
                f"{s.index} {s.device}",
                state,
                m.get("space", ""),
                format_quantity(m["flops"]) if m.get("flops") else "",
                epoch,
                ips,
                err,
            )
        return Group(self.bar, table)

    def start(self):
        self.live.start()

    def refresh(self):
        self.bar.update(
            self.task,
            counts=f"ok {self.counts['ok']} · diverged {self.counts['diverged']} · failed {self.counts['failed']}",
        )
        self.live.update(self._render())

    def finished(self, row: dict):
        self.counts[row["status"] if row["status"] in self.counts else "failed"] += 1
        self.bar.advance(self.task)
        self.refresh()

    def stop(self):
        self.refresh()
        self.live.stop()
