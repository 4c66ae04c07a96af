"""Two `gateway serve` processes on one database: a process killed mid-claim loses nothing.

Both processes run dispatchers that claim from the one queue with
``FOR UPDATE SKIP LOCKED`` and a lease. The offices hold every request at a
gate, so each process is caught holding claims; one process is SIGKILLed
there, the gate opens, and the surviving process must deliver the dead one's
claims once their lease has run out (not before: a live lease is respected),
under the same delivery ids, so every office ends with each letter exactly
once.

The single-process version (kill, then restart the same configuration) is in
``test_end_to_end.py``; the lease arithmetic with a fake clock is in
``tests/integration/test_dispatch.py``. This one proves the takeover by a
*different, already running* process.
"""

from __future__ import annotations

import asyncio

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

LEASE_S = 8.0  # longer than the request timeout (6 s), as the settings require
LETTERS = 24

DELIVERIES = """
SELECT d.id::text AS id, d.recipient, d.status::text AS status, d.leased_by, d.next_attempt_at, d.delivered_at,
       d.attempts, m.message_id
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE m.message_type = 'letter'
"""


class GatedOffice(Office):
    """An office that holds each request until ``gate`` opens (a slow office, released on cue)."""

    def __init__(self, name: str, gate: asyncio.Event) -> None:
        super().__init__(name=name)
        self.gate = gate
        self.parked = 0
        self.letter_ids: dict[str, set[str]] = {}  # message id -> delivery ids accepted for it

    async def handle(self, request):
        await request.read()  # aiohttp keeps the body for the base handler
        self.parked += 1
        await self.gate.wait()
        resp = await super().handle(request)
        if resp.status == 200:
            self.letter_ids.setdefault(request.headers["X-Saraban-Message-Id"], set()).add(
                request.headers["X-Saraban-Delivery-Id"])
        return resp


def auth():
    return {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}


@pytest.mark.slow
async def test_claims_of_a_killed_process_are_delivered_by_the_other_after_the_lease(database_url, workdir):
    gate = asyncio.Event()
    offices = {CMI: await GatedOffice("cmi", gate).start(), KKN: await GatedOffice("kkn", gate).start()}
    directory = write_directory(workdir / "directory.json",
                                {a: {"kind": "push", "url": o.url} for a, o in offices.items()})
    procs: dict[str, GatewayProcess] = {}
    for name in ("gw-a", "gw-b"):
        port = free_port()
        env = gateway_env(database_url=database_url, directory=directory, port=port, data_dir=workdir,
                          GATEWAY_NODE_NAME=name, GATEWAY_DISPATCH_LEASE_S=str(LEASE_S),
                          # small batches and a low in-flight cap, so both processes end up holding claims
                          GATEWAY_DISPATCH_BATCH_SIZE="4", GATEWAY_DISPATCH_CONCURRENCY="8",
                          GATEWAY_DISPATCH_REQUEST_TIMEOUT_S="6", GATEWAY_RATE_PER_AGENCY="0",
                          GATEWAY_RETRY_INITIAL_DELAY_S="0.2", GATEWAY_RETRY_JITTER="0")
        procs[name] = GatewayProcess(env=env, port=port, log_path=workdir / f"{name}.log").start()
    conn = await asyncpg.connect(database_url)
    try:
        await asyncio.gather(*(p.wait_ready() for p in procs.values()))
        urls = [p.url for p in procs.values()]
        async with aiohttp.ClientSession() as s:
            async def submit(i: int) -> None:  # through both processes, so both are woken
                async with s.post(f"{urls[i % 2]}/v1/messages", headers=auth(),
                                  data=letter_bytes(recipients=(CMI, KKN), message_id=f"scale-{i}")) as r:
                    assert r.status == 202, await r.text()

            await asyncio.gather(*(submit(i) for i in range(LETTERS)))

        async def both_hold_claims():
            rows = await conn.fetch("SELECT leased_by, count(*) AS n FROM deliveries WHERE status = 'sending' "
                                    "GROUP BY leased_by")
            held = {r["leased_by"]: r["n"] for r in rows}
            return held.get("gw-a", 0) > 0 and held.get("gw-b", 0) > 0 and sum(o.parked for o in offices.values())

        await wait_for(both_hold_claims, timeout=15, what="both processes holding claims at the gated offices")
        procs["gw-a"].kill()  # SIGKILL, mid-claim: its requests are parked at the offices
        # Whatever gw-a held when it died is now frozen in the database.
        held = await conn.fetch(DELIVERIES)
        orphans = {r["id"]: r for r in held if r["leased_by"] == "gw-a"}
        assert orphans and all(r["status"] == "sending" for r in orphans.values())
        # neither process hoards the queue: each holds at most its concurrency (8) in claims
        assert all(sum(r["leased_by"] == name for r in held) <= 8 for name in procs)
        gate.set()

        async def all_delivered():
            rows = await conn.fetch(DELIVERIES)
            return rows if rows and all(r["status"] == "delivered" for r in rows) else None

        rows = await wait_for(all_delivered, timeout=LEASE_S + 20, what="every delivery delivered by gw-b")
    finally:
        await conn.close()
        for p in procs.values():
            p.stop()
        for o in offices.values():
            await o.stop()

    assert len(rows) == 2 * LETTERS
    by_id = {r["id"]: r for r in rows}
    for delivery_id, before in orphans.items():
        after = by_id[delivery_id]
        # not taken over while gw-a's lease was still running, but taken over once it ran out
        assert after["delivered_at"] >= before["next_attempt_at"], delivery_id
        assert after["attempts"] > before["attempts"], delivery_id
    # exactly once for each receiver: every delivery id in the database arrived at its office, none other,
    # and no letter reached an office under two delivery ids
    for agency, office in offices.items():
        expected = {r["id"] for r in rows if r["recipient"] == agency}
        assert set(office.received) == expected
        assert set(office.seen) <= expected
        assert set(office.letter_ids) == {f"scale-{i}" for i in range(LETTERS)}
        assert all(len(ids) == 1 for ids in office.letter_ids.values())
