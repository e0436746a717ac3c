"""The worker pool: training processes on their device slots, fed from a work source.

:class:`WorkerPool` owns the processes (started through a forkserver that has imported torch and
Lightning once, so a start or a recycle costs a fork, not a 4 s import), their device slots,
recycling, heartbeats and signals. It hands each model to an idle worker as a
:class:`~regspace.train.records.Task` and gives each :class:`~regspace.train.records.Result` back to
the work source the moment it arrives. A worker that dies while training has its model retried
(``max_retries`` times), then recorded ``failed``. Ctrl-C or SIGTERM stop it, losing only the models in
flight. The parent never imports torch.

What is not a model's doing never becomes its result (regspace.train.faults): a device whose worker
reports an environment error (its start-up check failed, a sticky CUDA error…) is excluded with one line
and its models in flight go back to the work source, while the other devices go on; only when every
device is excluded does the run stop, with one line. A model that runs out of CUDA memory beside other
workers is retried alone on its device (the device's other workers hold off), and recorded ``failed``
only if it does not fit alone. A worker with no room for its data beside the others is retired.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from regspace import defaults
from regspace.errors import RegspaceError
from regspace.train.faults import ENVIRONMENT, OUT_OF_MEMORY, busy_device, device_label
from regspace.train.records import Result, Task
from regspace.train.work import WAIT, WorkSource


@dataclass
class TrainSummary:
    recipe: object
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
    sweep: str | None = None  # set when the work came from a queue
    oom_retries: int = 0  # models that ran out of GPU memory beside other workers, and went again alone
    excluded: dict = field(default_factory=dict)  # device -> why it was excluded

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
        if self.oom_retries:
            skipped += f"; {self.oom_retries} retried alone after running out of GPU memory beside other workers"
        if self.excluded:
            skipped += f"; excluded: {', '.join(device_label(d) for d in self.excluded)}"
        return (
            f"trained {self.done}{of} models (ok {self.ok}, diverged {self.diverged}, failed {self.failed}"
            f"{skipped}) in {_fmt_time(self.seconds)}, {rate:.0f} models/hour, {self.workers} worker(s) × "
            f"{self.threads} thread(s){err}; recipe {self.recipe.name} {self.recipe.run_key}"
        )

    def outcome(self) -> str:
        """What `regspace train` prints at the end: nothing to do, interrupted, or the summary line."""
        if self.sweep is not None and self.done == 0 and not self.interrupted:
            return f"nothing to train: sweep {self.sweep!r} has no waiting model"
        if self.planned == 0:
            r = self.recipe
            return f"nothing to train: every selected model has a result for recipe {r.name} {r.run_key}"
        if self.interrupted:
            left = f", {self.planned - self.done} model(s) still pending" if self.planned else ""
            return f"interrupted: {self.done} result(s) saved{left}; rerun `regspace train` to finish them"
        return self.line()

    def count(self, result: Result) -> None:
        if result.status == "ok":
            self.ok += 1
            self.errors.append(result.error)
        elif result.status == "diverged":
            self.diverged += 1
        else:
            self.failed += 1


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@dataclass
class _Slot:
    """One worker's place: its device, its process and pipe, and the model it trains."""

    index: int
    device: str
    process: object = None
    conn: object = None
    ready: bool = False
    current: dict | None = None
    progress: dict = field(default_factory=dict)
    solo: bool = False  # its model runs alone on the device: the device's other workers hold off
    retired: bool = False  # no room for its data beside the others: not started again

    def clear(self) -> None:
        self.process, self.conn, self.current, self.ready, self.solo = None, None, None, False, False


class WorkerPool:
    """Train every model of ``work`` on worker processes, one per entry of ``devices`` ("cpu", "cuda:0", …).

    ``config`` is what each worker needs to load its data and recipe (regspace.train.worker); the
    pool adds its slot's device. ``target`` is the worker's entry point and ``preload`` what the
    forkserver imports once (tests pass fakes and nothing).
    """

    def __init__(
        self,
        work: WorkSource,
        *,
        devices: list[str],
        config: dict,
        recipe,
        recycle: int = defaults.RECYCLE,
        max_retries: int = 1,
        target=None,
        preload: tuple[str, ...] = ("regspace.train.fit",),
        progress: bool = False,
    ):
        from regspace.train.worker import worker_main

        self.work, self.recipe, self.max_retries = work, recipe, max_retries
        self.config = {**config, "recycle": recycle}
        self.target = target or worker_main
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(list(preload))
        self.slots = [_Slot(i, d) for i, d in enumerate(devices)]
        self.retiring: list = []  # recycled workers still ending (a CUDA context takes seconds to tear down)
        self.retries: dict[str, int] = {}
        self.excluded: dict[str, str] = {}  # device -> cause: no worker starts there again
        self.alone: dict[str, deque] = {}  # device -> models to train alone there (out of memory beside others)
        self.early_deaths = 0
        self.exhausted = False
        self.summary = TrainSummary(recipe, work.total, workers=len(devices), threads=config.get("threads", 1))
        # A live view on a terminal; elsewhere (a log file, a batch job) plain lines as models finish.
        self.display = _Display(work.total, self.slots, recipe) if progress else _ProgressLines(work.total)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> TrainSummary:
        t0 = time.perf_counter()
        previous_term = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, raise_interrupt)
        interrupted = False
        last_beat = time.monotonic()
        try:
            self.display.start()
            while not (
                self.exhausted
                and not any(s.current for s in self.slots if s.process is not None)
                and not any(self.alone.values())
            ):
                for s in self.slots:
                    if s.process is None and self._may_start(s):
                        self._start(s)
                for s in self.slots:  # idle workers that were told to wait or to hold off: ask again
                    if s.ready and s.current is None and s.conn is not None:
                        self._dispatch(s)
                self._poll(timeout=0.5)
                if time.monotonic() - last_beat > self.work.heartbeat_seconds:
                    self.work.heartbeat()
                    last_beat = time.monotonic()
                self.display.refresh()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            self._shutdown()
            self.work.close(interrupted)
            self.display.stop()
        self.summary.interrupted = interrupted
        self.summary.skipped = self.work.skipped
        self.summary.seconds = time.perf_counter() - t0
        return self.summary

    def _poll(self, timeout: float) -> None:
        self.retiring = [p for p in self.retiring if p.exitcode is None]  # reaped without waiting
        live = [s for s in self.slots if s.process is not None]
        waitables = {s.conn: s for s in live}
        waitables.update({s.process.sentinel: s for s in live})
        for obj in wait(list(waitables), timeout=timeout):
            slot = waitables[obj]
            if slot.process is None:
                continue
            if obj is slot.conn or slot.conn.poll():
                self._handle(slot)
            else:
                self._died(slot)

    # -- one slot ----------------------------------------------------------------------------
    def _may_start(self, slot: _Slot) -> bool:
        if slot.retired or slot.device in self.excluded:
            return False
        return not self.exhausted or bool(self.alone.get(slot.device))

    def _start(self, slot: _Slot) -> None:
        parent, child = self.ctx.Pipe()
        slot.process = self.ctx.Process(
            target=self.target, args=(child, {**self.config, "device": slot.device}), daemon=True
        )
        slot.process.start()
        child.close()
        slot.conn, slot.ready, slot.current, slot.progress = parent, False, None, {}

    def _dispatch(self, slot: _Slot) -> None:
        """Give an idle, ready worker its next model (or tell it to stop when the work is over). A model
        waiting to train alone on this device comes first, once the device's other workers are idle."""
        busy = [s for s in self.slots if s.device == slot.device and s is not slot and s.current is not None]
        if any(s.solo for s in busy):
            return  # a model trains alone on this device: hold off
        waiting = self.alone.get(slot.device)
        if waiting:
            if not busy:
                slot.current, slot.progress, slot.solo = waiting.popleft(), {}, True
                slot.conn.send(Task.from_row(slot.current))
            return  # else hold off until the device's other workers finish their models
        if self.exhausted:
            self._stop(slot)
            return
        m = self.work.next()
        if m is None:
            self.exhausted = True
            self._stop(slot)
            return
        if m is WAIT:
            return
        slot.current, slot.progress = m, {}
        slot.conn.send(Task.from_row(m))

    def _finish(self, model: dict, result: Result) -> None:
        self.work.done(model, result)
        self.summary.count(result)
        self.display.finished(result)

    def _handle(self, slot: _Slot) -> None:
        while slot.conn is not None:
            try:
                if not slot.conn.poll():
                    return
                msg = slot.conn.recv()
            except (EOFError, OSError):
                self._died(slot)
                return
            kind = msg[0]
            if kind == "fatal":
                self._fatal(slot, msg[1], msg[2] if len(msg) > 2 else "setup")
                return
            if kind == "ready":
                slot.ready = True
                self._dispatch(slot)
            elif kind == "progress":
                slot.progress.update(msg[2])
            elif kind in ("result", "oom"):
                m, slot.current = slot.current, None
                solo, slot.solo = slot.solo, False
                result = _with_neighbours(msg[2], sum(s.device == slot.device for s in self.slots))
                if kind == "oom" and not (solo or self._alone_on_device(slot)):
                    self._retry_alone(m, slot.device)
                else:
                    self._finish(m, result)
                if msg[3]:  # the worker retires (recycling): a fresh one takes its place now, not once it has ended
                    self.retiring.append(slot.process)
                    slot.clear()
                    return
                self._dispatch(slot)

    def _alone_on_device(self, slot: _Slot) -> bool:
        return not any(s.device == slot.device and s is not slot and not s.retired for s in self.slots)

    def _retry_alone(self, model: dict, device: str) -> None:
        """Out of memory beside other workers: train the model again, alone on a device."""
        self.summary.oom_retries += 1
        self.alone.setdefault(device, deque()).append(model)

    def _fatal(self, slot: _Slot, cause: str, kind: str) -> None:
        """A worker's last message: an environment error excludes its device; no room for the data, or a
        device busy with its other workers (EXCLUSIVE_PROCESS), retires this worker while the device has
        others (else excludes the device); anything else stops the run."""
        others = [s for s in self.slots if s.device == slot.device and s is not slot and not s.retired]
        busy = kind == ENVIRONMENT and busy_device(cause) and any(s.process is not None for s in others)
        if (kind == OUT_OF_MEMORY and others) or busy:
            m = slot.current
            self._end(slot)
            slot.retired = True
            if m is not None:
                self._give_back(m)
            why = "no room" if kind == OUT_OF_MEMORY else "the device refuses another process"
            self.display.say(
                f"{device_label(slot.device)}: a worker stopped, {why} beside {len(others)} other(s) ({cause}); "
                f"{len(others)} worker(s) go on there"
            )
            return
        if kind == OUT_OF_MEMORY:
            kind = ENVIRONMENT  # no room for the data on a device with no other worker of ours
        if kind != ENVIRONMENT:
            raise RegspaceError(f"training worker failed: {cause}")
        self._exclude(slot.device, cause)

    def _exclude(self, device: str, cause: str) -> None:
        """Stop the device's workers, give their models back to the work source unrecorded, and go on
        with the other devices; when none is left, stop with one line."""
        self.excluded[device] = self.summary.excluded[device] = cause
        for s in self.slots:
            if s.device == device and s.process is not None:
                m = s.current
                self._end(s)
                if m is not None:
                    self._give_back(m)
        left = {s.device for s in self.slots} - set(self.excluded)
        waiting = self.alone.pop(device, deque())
        if not left:
            raise RegspaceError(f"training worker failed on {device_label(device)}: {cause}; no device is left")
        self.display.say(f"{device_label(device)} excluded: {cause}")
        for m in waiting:  # they still need a device to themselves
            self.alone.setdefault(sorted(left)[0], deque()).append(m)

    def _give_back(self, model: dict) -> None:
        """A model whose training was cut short by its device, not by itself: it goes again, uncounted."""
        self.work.retry(model)
        self.exhausted = False

    def _end(self, slot: _Slot) -> None:
        """End the slot's worker now (it is exiting, or its device is being given up)."""
        if slot.process.is_alive():
            slot.process.terminate()
        slot.process.join(timeout=10)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)
        slot.clear()

    def _died(self, slot: _Slot) -> None:
        code = None
        if slot.process is not None:
            slot.process.join(timeout=5)
            code = slot.process.exitcode
        m = slot.current
        if not slot.ready:
            self.early_deaths += 1
            if self.early_deaths > 2 * len(self.slots):
                raise RegspaceError(
                    f"training workers keep dying before they start (exit code {code})",
                    hint="rerun with --workers 1 to see the error",
                )
        if m is not None:
            mid = m["model_id"]
            self.retries[mid] = self.retries.get(mid, 0) + 1
            if self.retries[mid] <= self.max_retries:
                self.work.retry(m)
                self.exhausted = False  # the source has work again, even if it said "no more" before
            else:
                reason = (
                    f"worker process died (exit code {code}) {self.retries[mid]} times while training this "
                    "model; out of memory?"
                )
                r = self.recipe
                self._finish(
                    m,
                    Result.failed(
                        mid, reason=reason, recipe_hash=r.hash, recipe=r.to_json(), dataset=r.dataset, seed=r.seed
                    ),
                )
        slot.clear()

    def _stop(self, slot: _Slot) -> None:
        try:
            slot.conn.send(None)
        except (OSError, ValueError):
            pass
        slot.process.join(timeout=10)
        slot.clear()

    def _shutdown(self) -> None:
        live = [s for s in self.slots if s.process is not None]
        for s in live:
            if s.process.is_alive():
                s.process.terminate()
        for s in live:
            s.process.join(timeout=10)
            if s.process.is_alive():
                s.process.kill()
                s.process.join(timeout=5)
            s.clear()
        for p in self.retiring:
            p.join(timeout=10)


def _with_neighbours(result: Result, workers: int) -> Result:
    """The result with ``device_workers``: how many workers the run placed on its device (itself included),
    which its images_per_second depends on."""
    import dataclasses

    return result if result.device_workers is not None else dataclasses.replace(result, device_workers=workers)


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class _Display:
    """A live view on a terminal: overall progress and what each worker is doing."""

    def __init__(self, total: int | None, slots, recipe):
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

    def say(self, line: str):
        self.console.print(line, markup=False, highlight=False)

    def refresh(self):
        self.bar.update(
            self.task,
            counts=f"ok {self.counts['ok']} · diverged {self.counts['diverged']} · failed {self.counts['failed']}",
        )
        self.live.update(self._render())

    def finished(self, result: Result):
        self.counts[result.status] += 1
        self.bar.advance(self.task)
        self.refresh()

    def stop(self):
        self.refresh()
        self.live.stop()


class _ProgressLines:
    """Progress for a log, not a terminal: one plain line on stderr when a model finishes, at most every
    ``every`` seconds (and for the first and the last model): done / total, outcomes, rate and ETA, as
    training logs on clusters read. The same role as :class:`_Display` (start, refresh, finished, stop)."""

    def __init__(self, total: int | None, *, every: float = defaults.PROGRESS_LINE_SECONDS, clock=time.monotonic):
        self.total, self.every, self.clock = total, every, clock
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.t0 = self.last = None

    def start(self):
        self.t0 = self.clock()

    def say(self, line: str):
        print(line, file=sys.stderr, flush=True)

    def refresh(self):
        pass

    def finished(self, result: Result):
        self.counts[result.status] += 1
        done, now = sum(self.counts.values()), self.clock()
        if self.last is not None and now - self.last < self.every and done != self.total:
            return
        self.last = now
        print(self.line(done, now - self.t0), file=sys.stderr, flush=True)

    def line(self, done: int, seconds: float) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        rate = done / seconds * 3600 if seconds > 0 else 0.0
        eta = ""
        if self.total is not None and done < self.total and done:
            eta = f", ETA {_fmt_time((self.total - done) * seconds / done)}"
        c = self.counts
        return (
            f"training: {done}{of} models done (ok {c['ok']}, diverged {c['diverged']}, failed {c['failed']}) "
            f"in {_fmt_time(seconds)}, {rate:.0f} models/hour{eta}"
        )

    def stop(self):
        pass
