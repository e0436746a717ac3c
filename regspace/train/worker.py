"""A training worker process: checks its device, loads the data once, then trains the designs it is
sent, one at a time.

Talks to the parent over its own pipe (a worker killed mid-message cannot block the others).

Messages to the parent:

- ``("ready", info)``: the device passed its check (a tiny forward+backward in the recipe's precision,
  :func:`regspace.train.fit.preflight`) and the data is loaded;
- ``("progress", model_id, fields)``;
- ``("result", model_id, Result, last)``: the model's outcome; ``last`` when the worker retires after
  this model (recycling bounds memory);
- ``("oom", model_id, Result, last)``: the model ran out of CUDA memory; Result is the ``failed`` row it
  would be. The parent records it if the model trained alone on its device, else retries it alone;
- ``("fatal", cause, kind)``, then the process exits. ``cause`` is one line (``Type: message``);
  ``kind`` (regspace.train.faults) says whose fault it is: ``"environment"`` — the device cannot
  train (its check failed, or an environment error such as a sticky CUDA error, at start-up or during a
  model): the parent excludes the device and gives the model in flight back, unrecorded;
  ``"out of memory"`` — no room on the device to load the data (at start-up); ``"setup"`` — anything
  else at start-up (a missing data file…): the run cannot go on anywhere. A 2-tuple
  ``("fatal", cause)`` means ``"setup"``.

From the parent: a Task, or None to stop.
"""

from __future__ import annotations

import os
import signal

SETUP = "setup"


def worker_main(conn, config: dict) -> None:
    stage = {"name": SETUP}  # the stage reached: "check" while the device check runs
    try:
        _run(conn, config, stage)
    except Exception as e:  # noqa: BLE001 - report failures to the parent as one line, not a traceback
        from regspace.train.faults import ENVIRONMENT, MODEL, classify, first_line

        kind = classify(e)
        if stage["name"] == "check":
            kind = ENVIRONMENT  # the check touches nothing but the device and the precision
        elif kind == MODEL:
            kind = SETUP
        try:
            conn.send(("fatal", first_line(e), kind))
        except OSError:
            pass
        os._exit(1)


def _run(conn, config: dict, stage: dict) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what to do, workers just go on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    import torch

    torch.set_num_threads(config["threads"])
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from regspace.train.faults import ModelOutOfMemory
    from regspace.train.fit import fit_one, preflight, prepare_tensors, resolve_precision
    from regspace.train.recipe import Recipe

    device = torch.device(config["device"])
    recipe = Recipe(**config["recipe"])
    stage["name"] = "check"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    preflight(device, resolve_precision(recipe, device.type, device), channels_last=recipe.channels_last)
    stage["name"] = SETUP
    dataset = config["data"]  # a prepared dataset: in memory (loaded here) or mapped (read batch by batch)
    arrays = dataset.arrays()
    data = prepare_tensors(arrays, recipe, device, config["dataset"], dataset.num_classes)
    del arrays
    stage["name"] = "training"
    conn.send(("ready", {"pid": os.getpid(), "device": str(device), "threads": config["threads"]}))
    done = 0
    while True:
        try:
            task = conn.recv()  # a regspace.train.records.Task, or None: stop
        except EOFError:
            return
        if task is None:
            return

        def report(mid=task.model_id, **fields):
            conn.send(("progress", mid, fields))

        kind = "result"
        try:
            result = fit_one(task, recipe, data, device=device, report=report)
        except ModelOutOfMemory as e:
            kind, result = "oom", e.result
        if kind == "oom":  # the exception's traceback held the model until here: free it for the neighbours
            import gc

            gc.collect()
            torch.cuda.empty_cache()
        done += 1
        last = done >= config["recycle"]
        conn.send((kind, task.model_id, result, last))  # `last`: the parent sends no more work; this process ends
        if last:
            return
