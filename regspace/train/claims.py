"""Claims: how several `regspace train` runs on one store share the work without duplicating it.

A run claims a model by creating ``STORE/claims/<recipe>/<model_id>.claim`` exclusively (O_EXCL).
Claims of a dead run are stale — its process is gone (same host), or its heartbeat (the file's
mtime, refreshed while the run lives) is older than the grace period — and may be taken over: the
stale file is renamed away first, which only one taker can do.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

GRACE_SECONDS = 600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Claims:
    def __init__(self, store_path: Path, recipe_hash: str, *, grace_seconds: float = GRACE_SECONDS):
        self.dir = Path(store_path) / "claims" / recipe_hash
        self.dir.mkdir(parents=True, exist_ok=True)
        self.grace = grace_seconds
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "run": uuid.uuid4().hex[:8]}
        self.held: set[str] = set()

    def _path(self, model_id: str) -> Path:
        return self.dir / f"{model_id}.claim"

    def try_claim(self, model_id: str) -> bool:
        for _ in range(2):
            try:
                fd = os.open(self._path(model_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._break_if_stale(model_id):
                    return False
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({**self.owner, "since": time.time()}, f)
            self.held.add(model_id)
            return True
        return False

    def is_stale(self, model_id: str) -> bool:
        p = self._path(model_id)
        try:
            age = time.time() - p.stat().st_mtime
            info = json.loads(p.read_text())
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            return False  # being written right now
        if info.get("host") == self.owner["host"] and not _pid_alive(int(info.get("pid", -1))):
            return True
        return age > self.grace

    def _break_if_stale(self, model_id: str) -> bool:
        if not self.is_stale(model_id):
            return False
        tomb = self.dir / f".{model_id}.stale-{uuid.uuid4().hex[:6]}"
        try:
            os.rename(self._path(model_id), tomb)  # only one taker wins this rename
        except FileNotFoundError:
            return True
        tomb.unlink(missing_ok=True)
        return True

    def heartbeat(self) -> None:
        now = time.time()
        for mid in list(self.held):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self._path(mid), (now, now))

    def release(self, model_id: str) -> None:
        self.held.discard(model_id)
        with contextlib.suppress(FileNotFoundError):
            self._path(model_id).unlink()

    def release_all(self) -> None:
        for mid in list(self.held):
            self.release(mid)
