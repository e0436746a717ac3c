"""A training worker process: loads the data once, then trains the designs it is sent, one at a time.

Talks to the parent over its own pipe (a worker killed mid-message cannot block the others).
Messages to the parent: ("ready", info), ("progress", model_id, fields),
("result", model_id, Result, last) — ``last`` when the worker retires after this model (recycling
bounds memory). From the parent: a Task, or None to stop.
"""

from __future__ import annotations

import os
import signal


def worker_main(conn, config: dict) -> None:
    try:
        _run(conn, config)
    except Exception as e:  # noqa: BLE001 - report set-up failures to the parent as one line, not a traceback
        first = (str(e).strip().splitlines() or [""])[0][:300]
        try:
            conn.send(("fatal", f"{type(e).__name__}: {first}"))
        except OSError:
            pass
        os._exit(1)


def _run(conn, config: dict) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what to do, workers just go on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    import torch

    torch.set_num_threads(config["threads"])
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from regspace.train.fit import fit_one, prepare_tensors
    from regspace.train.recipe import Recipe

    device = torch.device(config["device"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    recipe = Recipe(**config["recipe"])
    dataset = config["data"]  # a prepared dataset: in memory (loaded here) or mapped (read batch by batch)
    arrays = dataset.arrays()
    data = prepare_tensors(arrays, recipe, device, config["dataset"], dataset.num_classes)
    del arrays
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

        result = fit_one(task, recipe, data, device=device, report=report)
        done += 1
        last = done >= config["recycle"]
        conn.send(("result", task.model_id, result, last))  # `last`: the parent sends no more work; this process ends
        if last:
            return
