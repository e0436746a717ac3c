"""Output files replaced whole: a reader sees the old file or the new one, never a part.

The one atomic-file helper for what regspace writes outside a store (reports, comparisons, figures);
the store's own files go through :class:`regspace.store.Store` (``write_json`` for side files).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from regspace.errors import RegspaceError


@contextlib.contextmanager
def replacing(path: str | Path, *, durable: bool = False):
    """Yield a temporary path beside ``path`` (a dot-name, which store readers ignore); when the block
    ends without error it replaces ``path``. ``durable``: fsync'ed before the rename, so the new file
    survives a crash once the block has ended. Creates the parent directory; an OSError becomes a
    RegspaceError naming ``path``. The temporary never outlives the block."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise RegspaceError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_file(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; raises RegspaceError when it cannot be written.
    Not fsync'ed: these are outputs a rerun rewrites."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
