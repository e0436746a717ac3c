"""A store on a full disk: the command fails with one clear line and every earlier row stays readable.

The disk is a real 512 KiB tmpfs (mounting needs root, as CI has); where mounting is not allowed the
same test runs under a file-size limit (RLIMIT_FSIZE), which the file system enforces the same way.
"""

import os
import resource
import signal
import subprocess
import sys
import tempfile

import pandas as pd
import pytest


@pytest.fixture
def small_disk():
    d = tempfile.mkdtemp(prefix="regspace-full-")
    mounted = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", d], capture_output=True).returncode == 0
    )
    yield d, mounted
    if mounted:
        subprocess.run(["umount", d], capture_output=True)
    os.rmdir(d) if not os.listdir(d) else None


def regspace(*args, fsize=None):
    def limit():
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "regspace", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )


def fill(directory, leave=8 * 1024):
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(directory, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - leave))


@pytest.mark.slow
def test_full_disk_sample_and_train(small_disk):
    d, mounted = small_disk
    store = os.path.join(d, "s")
    p = regspace("sample", "--store", store, "--space", "X_c", "-n", 10, "--preset", "mnist", "--flops", "0.5M:1.5M")
    assert p.returncode == 0, p.stderr
    if mounted:
        fill(d)
        kw = {}
    else:
        kw = {"fsize": 4096}  # any file bigger than 4 KiB fails
    p = regspace("sample", "--store", store, "--space", "X_c", "-n", 2000, "--preset", "mnist", "--flops", ":", **kw)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert ("disk full" if mounted else "file too large") in p.stderr and "every earlier row is intact" in p.stderr
    assert len(pd.read_parquet(os.path.join(store, "models"))) == 10
    assert not [f for f in os.listdir(os.path.join(store, "models")) if f.startswith(".")]
    status = regspace("status", "--store", store)
    assert status.returncode == 0 and "X_c\t-\t10\t10" in status.stdout


@pytest.mark.slow
def test_file_size_limit_is_not_called_a_full_disk(tmp_path):
    """EFBIG (a file-size limit) is reported as what it is."""
    store = tmp_path / "s"
    p = regspace("sample", "--store", store, "--space", "X_c", "-n", 10, "--preset", "mnist", "--flops", "0.5M:1.5M")
    assert p.returncode == 0, p.stderr
    p = regspace(
        "sample", "--store", store, "--space", "X_c", "-n", 2000, "--preset", "mnist", "--flops", ":", fsize=4096
    )
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "file too large" in p.stderr and "disk full" not in p.stderr and "every earlier row is intact" in p.stderr
