"""A small filesystem of the test's own, to fill: a tmpfs mounted for the test (as root)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on a new directory under /tmp; skips the test, saying why,
    where this process may not mount one."""
    path = Path(tempfile.mkdtemp(prefix="accdisk", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        path.rmdir()
        why = mounted.stderr.strip() or f"mount exited with {mounted.returncode}"
        pytest.skip(f"a full disk needs a small filesystem to fill, and mounting one failed: {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            path.rmdir()


def fill(disk: Path, *, leave: int = 0) -> Path:
    """Fill the filesystem up to `leave` bytes free (roughly: tmpfs counts whole pages)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    # Unbuffered: a buffer left holding what did not fit would fail again on close.
    with filler.open("wb", buffering=0) as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            if not leave:
                while True:
                    f.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler
