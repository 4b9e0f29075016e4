"""Folders one run owns: a ``lock`` file in each, held (flock) while the run uses it.

Two runs on one folder would overwrite each other's run file, take each other's part files, or
corrupt an append-only file; the second one is refused before it starts anything, with one line
that names the first. The lock is the kernel's: it goes with the process that held it, even
after ``kill -9``, so a stale lock file never blocks a new run.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class FolderInUse(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """The lock of ``folder`` (its file ``name``). ``what`` and ``hint`` make the refusal's words."""

    def __init__(self, folder: str | os.PathLike[str], what: str, hint: str, name: str = "lock"):
        self.folder = Path(folder).resolve()
        self.what = what
        self.hint = hint
        self.path = self.folder / name
        self.fd: int | None = None

    def acquire(self, holder: str = "") -> FolderLock:
        """Take the lock, writing ``holder`` (who has it) into the file; :class:`FolderInUse` if taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held_by = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FolderInUse(f"{self.what} in {self.folder} is in use by {held_by}: {self.hint}") from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.pwrite(fd, (holder or f"process {os.getpid()} (since {stamp})").encode() + b"\n", 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
