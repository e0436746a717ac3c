"""Downloading a file with sha256 verification, a progress bar, and no half-written leftovers."""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from regspace.errors import RegspaceError

CHUNK = 1 << 16


def fetch(url: str, target: Path, *, sha256: str, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target``; the file appears only once its sha256 matched."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.part")
    h = hashlib.sha256()
    got = 0
    try:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise RegspaceError(
                f"could not download {url} ({reason})",
                hint="put the files in --data-dir or $REGSPACE_DATA, or set REGSPACE_DATA_URL to a mirror",
            ) from None
        with response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(target.name, total) if progress and sys.stderr.isatty() else None
            try:
                with open(tmp, "wb") as out:
                    while True:
                        try:
                            block = response.read(CHUNK)
                        except (OSError, urllib.error.URLError) as e:
                            raise RegspaceError(f"download of {url} broke off after {got:,} bytes ({e})") from None
                        if not block:
                            break
                        out.write(block)
                        h.update(block)
                        got += len(block)
                        if bar:
                            bar[0].update(bar[1], completed=got)
            finally:
                if bar:
                    bar[0].stop()
        if total is not None and got != total:
            raise RegspaceError(f"download of {url} is truncated: {got:,} of {total:,} bytes", hint="try again")
        digest = h.hexdigest()
        if digest != sha256:
            raise RegspaceError(
                f"checksum mismatch for {url}: expected sha256 {sha256[:16]}…, got {digest[:16]}…",
                hint="the download was corrupted or the mirror serves another file; nothing was kept",
            )
        os.replace(tmp, target)
        return target
    finally:
        if tmp.exists():
            tmp.unlink()


def _progress_bar(name: str, total: int | None):
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn(f"downloading {name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
    )
    task = bar.add_task("download", total=total)
    bar.start()
    return bar, task
