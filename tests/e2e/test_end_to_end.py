"""End to end on loopback: a sending agency, real `gateway serve` processes, two offices.

The gateway is a separate process (stopped by pid); the offices are aiohttp
servers in this process; the sender is an HTTP client. Waiting is always for a
condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import time

import aiohttp
import asyncpg
import pytest

from tests.support import (
    CMI,
    KKN,
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


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


@pytest.fixture
async def world(database_url, workdir):
    """Two push offices and a factory for gateway processes on the test database."""
    cmi = await Office(name="cmi").start()
    kkn = await Office(name="kkn").start()
    directory = write_directory(workdir / "directory.json", {CMI: {"kind": "push", "url": cmi.url},
                                                             KKN: {"kind": "push", "url": kkn.url}})
    procs: list[GatewayProcess] = []

    def gateway(**extra) -> GatewayProcess:
        port = free_port()
        env = gateway_env(database_url=database_url, directory=directory, port=port, data_dir=workdir, **extra)
        p = GatewayProcess(env=env, port=port, log_path=workdir / f"gateway-{port}.log")
        procs.append(p)
        return p

    yield {"cmi": cmi, "kkn": kkn, "gateway": gateway, "workdir": workdir}
    for p in procs:
        p.stop()
    await cmi.stop()
    await kkn.stop()


async def submit(session, url, data, agency=OPM):
    async with session.post(f"{url}/v1/messages", data=data, headers=auth(agency)) as r:
        return r.status, await r.read()


async def inbox(session, url, agency):
    async with session.get(f"{url}/v1/inbox?limit=500", headers=auth(agency)) as r:
        return (await r.json())["items"]


async def test_letters_reach_both_offices_and_receipts_come_back(world):
    kkn: Office = world["kkn"]
    cmi: Office = world["cmi"]
    kkn.fail_first = 3  # Khon Kaen is down for its first three attempts, then recovers
    times: dict[str, float] = {}
    cmi.on_receive = lambda d: times.setdefault(d, time.monotonic())
    gw = world["gateway"](GATEWAY_RETRY_INITIAL_DELAY_S="0.2", GATEWAY_RETRY_JITTER="0",
                          GATEWAY_DISPATCH_BREAKER_THRESHOLD="10").start()
    await gw.wait_ready()
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        results = [await submit(s, gw.url, letter_bytes(recipients=(CMI, KKN), message_id=f"e2e-{i}"))
                   for i in range(2)]
        assert [st for st, _ in results] == [202, 202]
        await wait_for(lambda: len(cmi.received) == 2 and len(kkn.received) == 2, timeout=30,
                       what="both letters at both offices")
        # the healthy office was not held up by the failing one
        assert max(times.values()) - t0 < 2.0
        assert kkn.attempts >= 5
        # two delivery receipts per letter wait in the sender's inbox
        items = await wait_for(lambda: _receipts(s, gw.url), timeout=20, what="4 delivery receipts")
        assert len(items) == 4
        status = await (await s.get(f"{gw.url}/v1/messages/e2e-0", headers=auth())).json()
        by = {r["recipient"]: r for r in status["recipients"]}
        assert by[CMI]["status"] == "delivered" and by[KKN]["status"] == "delivered"
        assert by[KKN]["attempts"] >= 2


async def _receipts(s, url):
    items = [i for i in await inbox(s, url, OPM) if i["type"] == "receipt"]
    return items if len(items) == 4 else None


@pytest.mark.slow
async def test_sigkill_during_deliveries_loses_nothing_and_duplicates_nothing(world, database_url):
    """Kill the gateway while it delivers; after a restart every accepted letter arrives once."""
    cmi: Office = world["cmi"]
    kkn: Office = world["kkn"]
    cmi.delay_s = kkn.delay_s = 0.02  # slow enough that the kill lands mid-delivery
    extra = dict(GATEWAY_DISPATCH_LEASE_S="2", GATEWAY_DISPATCH_REQUEST_TIMEOUT_S="1",
                 GATEWAY_RETRY_INITIAL_DELAY_S="0.2", GATEWAY_RETRY_JITTER="0",
                 GATEWAY_DISPATCH_CONCURRENCY="16", GATEWAY_DISPATCH_BATCH_SIZE="8")
    gw = world["gateway"](**extra).start()
    await gw.wait_ready()
    accepted: list[str] = []
    n = 120
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            status, _ = await submit(s, gw.url, letter_bytes(recipients=(CMI, KKN), message_id=f"crash-{i}"))
            assert status == 202
            accepted.append(f"crash-{i}")
        await wait_for(lambda: len(cmi.received) + len(kkn.received) >= 20, timeout=30, what="deliveries under way")
        gw.kill()
        delivered_at_kill = len(cmi.received) + len(kkn.received)
        assert delivered_at_kill < 2 * n, "the kill must land while deliveries are still pending"
        gw2 = world["gateway"](**extra).start()
        await gw2.wait_ready()
        await wait_for(lambda: len(cmi.received) == n and len(kkn.received) == n, timeout=60,
                       what="every accepted letter at both offices")
    # exactly once as the receiver sees it (deduplicating on delivery id): one delivery id per letter

    conn = await asyncpg.connect(database_url)
    try:
        sql = ("SELECT d.id::text, d.recipient, d.status::text, m.message_id FROM deliveries d "
               "JOIN messages m ON m.pk = d.message_pk WHERE m.message_type = 'letter'")

        async def all_recorded():
            rows = await conn.fetch(sql)
            return rows if {r["status"] for r in rows} == {"delivered"} else None

        rows = await wait_for(all_recorded, timeout=30, what="every delivery recorded as delivered")
    finally:
        await conn.close()
    assert len(rows) == 2 * n and {r["status"] for r in rows} == {"delivered"}
    expected = {(r["id"], r["recipient"]) for r in rows}
    got = {(d, CMI) for d in cmi.received} | {(d, KKN) for d in kkn.received}
    assert got == expected
    # the wire may repeat a delivery after a kill (at-least-once), but never with another id
    assert set(cmi.seen) | set(kkn.seen) == {r["id"] for r in rows}
    assert {r["message_id"] for r in rows} == set(accepted)
