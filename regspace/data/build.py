"""Building prepared datasets: decoding in parallel chunks, with a progress bar and resume.

Both layouts decode the same way (:func:`regspace.data.imagefolder.decode_chunk`, one chunk per
task in a process pool); the mapped layout writes each chunk as a shard as soon as it is decoded,
the in-memory layout concatenates them into one .npz.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from regspace.data.mapped import (
    PLAN,
    SPLITS,
    MappedDataset,
    ShardJob,
    check_disk,
    clean_leftovers,
    completed_shards,
    open_mapped,
    write_manifest,
    write_shard,
)
from regspace.data.mapped import (
    shard_images as default_shard_images,
)
from regspace.errors import Interrupted, RegspaceError

DECODE_CHUNK = 1024  # images per task for the in-memory layout


def _child_init() -> None:
    # Ctrl-C reaches the whole process group: a decoding process just ends (its half-written shard is
    # a dot-file that the next run deletes); the parent reports the interruption once.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_jobs(fn, jobs: list, *, workers: int | None, on_done) -> None:
    """Call ``fn(job)`` for every job, in a process pool when there is more than one; ``on_done(job,
    result)`` in the parent as each finishes."""
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if workers <= 1:
        for job in jobs:
            on_done(job, fn(job))
        return
    ctx = multiprocessing.get_context("forkserver")
    ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_child_init)
    try:
        futures = {ex.submit(fn, job): job for job in jobs}
        for f in as_completed(futures):
            on_done(futures[f], f.result())
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown()


class _Progress:
    """A rich progress bar over images on a terminal; nothing otherwise (the caller prints a summary)."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.bar = None
        if enabled and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("images"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def advance(self, n: int) -> None:
        if self.bar:
            self.bar.update(self.task, advance=n)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def _interactive(progress: bool) -> bool:
    from regspace.console import stderr_is_terminal

    return progress and stderr_is_terminal()


def decode_in_memory(listing, resolution: int, *, workers, progress, say) -> tuple[dict, list]:
    """Every image of an image folder decoded into arrays (the in-memory layout)."""
    from regspace.data.imagefolder import report_skipped

    jobs = [
        (split, lo, listing.splits[split][lo : lo + DECODE_CHUNK])
        for split in SPLITS
        for lo in range(0, listing.count(split), DECODE_CHUNK)
    ]
    parts: dict = {}
    bar = _Progress(
        f"decoding {listing.root.name} at {resolution}×{resolution}",
        sum(len(j[2]) for j in jobs),
        _interactive(progress),
    )

    def done(job, result):
        parts[job[:2]] = result
        bar.advance(len(job[2]))

    try:
        run_jobs(functools.partial(_decode_job, str(listing.root), resolution), jobs, workers=workers, on_done=done)
    finally:
        bar.close()
    arrays, skipped = {}, []
    for split in SPLITS:
        chunks = [parts[k] for k in sorted(k for k in parts if k[0] == split)]
        arrays[f"{split}_x"] = (
            np.concatenate([c[0] for c in chunks]) if chunks else np.zeros((0, 3, resolution, resolution), np.uint8)
        )
        arrays[f"{split}_y"] = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int64)
        skipped += [s for c in chunks for s in c[3]]
    report_skipped(skipped, say)
    if not len(arrays["train_x"]):
        raise RegspaceError(f"no readable images in {listing.root}")
    return arrays, skipped


def _decode_job(root: str, resolution: int, job):
    from regspace.data.imagefolder import decode_chunk

    return decode_chunk(root, list(job[2]), resolution)


def build_mapped(
    directory: Path,
    header: dict,
    *,
    num_classes: int,
    listing=None,
    arrays: dict | None = None,
    resolution: int | None = None,
    shard_images: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    say,
    stats: dict | None = None,
) -> MappedDataset:
    """Prepare (or finish preparing) a mapped dataset in ``directory`` from an image-folder
    ``listing`` or from decoded ``arrays``; returns it once its manifest is written."""
    from regspace.data.imagefolder import CHANNELS, report_skipped

    channels = CHANNELS if listing is not None else int(arrays["train_x"].shape[1])
    resolution = resolution if listing is not None else int(arrays["train_x"].shape[2])
    image_bytes = channels * resolution * resolution
    plan = {**header, "num_classes": num_classes, "channels": channels, "resolution": resolution}
    found = open_mapped(directory)
    if found is not None and _same_plan(found.manifest(), plan):
        return found
    directory.mkdir(parents=True, exist_ok=True)
    plan = _start_or_resume(directory, plan, shard_images or default_shard_images(image_bytes), say)
    per_shard = plan["shard_images"]
    jobs = []
    for split in SPLITS:
        n = listing.count(split) if listing is not None else len(arrays[f"{split}_x"])
        for i, lo in enumerate(range(0, n, per_shard)):
            if listing is not None:
                source = ("files", str(listing.root), listing.splits[split][lo : lo + per_shard])
            else:
                part = slice(lo, lo + per_shard)
                source = ("arrays", arrays[f"{split}_x"][part], arrays[f"{split}_y"][part])
            jobs.append(ShardJob(split, i, source))
    done = completed_shards(directory)
    todo = [j for j in jobs if j.stem not in done]
    if done and todo:
        say(f"resuming: {len([j for j in jobs if j.stem in done])} of {len(jobs)} shards already complete")
    todo_images = sum(_job_images(j) for j in todo)
    check_disk(directory, int(todo_images * image_bytes * 1.02) + (1 << 20) * len(todo))
    bar = _Progress(f"preparing {header['name']} at {resolution}×{resolution}", todo_images, _interactive(progress))

    def on_done(job, record):
        done[job.stem] = record
        bar.advance(_job_images(job))

    fn = functools.partial(_write_job, str(directory), resolution)
    try:
        # Decoded arrays are already in this process: slicing them needs no pool.
        run_jobs(fn, todo, workers=workers if listing is not None else 1, on_done=on_done)
    except KeyboardInterrupt:
        # Counted on disk, as a resume counts them: a shard written just before the interrupt may not have
        # reached on_done (found by the suite on a loaded machine: "1 of 210" with 2 on disk).
        kept = completed_shards(directory)
        raise Interrupted(
            f"interrupted: {len([j for j in jobs if j.stem in kept])} of {len(jobs)} shards of {header['name']} "
            "are complete and kept",
            hint="run the same command again to finish the rest",
        ) from None
    finally:
        bar.close()
    manifest = write_manifest(directory, plan, jobs, done)
    report_skipped(manifest["skipped"], say)
    if manifest["splits"]["train"]["count"] == 0:
        raise RegspaceError(f"no readable images for {header['name']}")
    result = open_mapped(directory)
    if result is None:  # pragma: no cover - the manifest was just written
        raise RegspaceError(f"prepared dataset {directory} cannot be opened")
    if stats is not None:
        stats.update(images=todo_images, shards=len(todo), resumed=len(jobs) - len(todo))
    return result


def _write_job(directory: str, resolution: int, job: ShardJob) -> dict:
    return write_shard(directory, job, resolution)


def _job_images(job: ShardJob) -> int:
    return len(job.source[2]) if job.source[0] == "files" else len(job.source[1])


def _same_plan(old: dict, new: dict) -> bool:
    """Same source and geometry (the shard size does not change what a complete dataset holds)."""
    return all(old.get(k) == new[k] for k in set(new) - {"name", "shard_images"})


def _start_or_resume(directory: Path, plan: dict, shard_images: int, say) -> dict:
    """Record what is being built, or resume what was begun: a run that resumes keeps the begun
    shard size, so each shard still covers the same images. A directory begun with another plan (the
    image folder changed) is emptied first, so that no shard of the old plan is ever reused."""
    path = directory / PLAN
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    if old is not None and not _same_plan(old, plan):
        say(f"{plan['name']} changed since it was last prepared; preparing it again")
        shutil.rmtree(directory)
        directory.mkdir(parents=True)
        old = None
    clean_leftovers(directory)
    if old is not None:
        return old
    plan = {**plan, "shard_images": shard_images}
    path.write_text(json.dumps(plan, indent=1))
    return plan
