"""Child processes that never outlive the pipeline: own session, killed with their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int):
    def in_child() -> None:  # runs in the child between fork and exec
        os.setsid()  # Ctrl-C in the terminal reaches the supervisor only; it stops children in order
        if sys.platform.startswith("linux"):
            try:
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
            except OSError:
                pass
    return in_child


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None,
          pass_fds: tuple[int, ...] = (), die_signal: int = signal.SIGTERM) -> subprocess.Popen:
    """Start ``args`` with output to ``log_path``; it gets ``die_signal`` if this process dies
    (the kernel sends it, even after ``kill -9``; it must be spawned from a thread that lives as
    long as the process). Of this process's open descriptors it inherits only ``pass_fds``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - owned by the child from here on
    try:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, preexec_fn=_die_with_parent(die_signal), close_fds=True,
                                pass_fds=pass_fds)
    finally:
        log.close()


def stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM every process, wait up to ``timeout`` seconds in all, then SIGKILL what is left."""
    import time

    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
