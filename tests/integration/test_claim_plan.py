"""A claim and an outcome find their deliveries by key, in the plans a connection keeps (migration 0025).

The claim's generic plan (a prepared statement's plan after five executions, made without the parameters'
values) could not know how many rows ``LIMIT $2`` lets through and joined the claimed rows to deliveries by a
Seq Scan and a Hash Join: every claim read every delivery stored (12 ms for 64 claims among 2,000 deliveries
here). And a connection plans apply_delivery_transitions' statements once and keeps the plans: made on a new
database's nearly empty tables, the outcome's UPDATE read deliveries whole on every later call. Both now
find the deliveries by their key, whatever the tables' size when they were planned. The claim's join to
messages, planned on nearly empty tables, read messages whole (Seq Scan, Hash Join) until an ANALYZE made the
connection plan again: a prepared statement cannot plan with enable_seqscan off, and the claim must stay one
statement that runs on a database of any migration. Each claimed row's message is now looked up by its key in
a subquery of its own, which a new table's assumed ten pages make an index scan.
"""

import datetime as dt
import hashlib
import uuid

from gateway.storage import deliveries, messages, transitions
from gateway.storage.db import queries
from gateway.storage.messages import NewDelivery, NewMessage
from gateway.storage.transitions import Transition

LEASE = dt.timedelta(seconds=60)


def letter(i: int) -> NewMessage:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    body = b"<E>%d</E>" % i
    return NewMessage(
        sender="0100000000", message_id=str(uuid.uuid4()), message_type="letter", conversation_id=None,
        ref_to_message_id=None, letter_number=f"นร 0105/{i}", letter_date=at.date(), subject="เรื่อง", speed="normal",
        secrecy="normal", channel="native", received_sha256=hashlib.sha256(body).digest(), received=body,
        forwarded=body, evidence=None, receipt=b"<Receipt/>", accepted_at=at, expires_at=at + dt.timedelta(days=1),
        deliveries=[NewDelivery(uuid.uuid4(), r, "push", "queued") for r in ("5000000001", "4000000001")],
        audit={"message_id": "x"})


async def test_the_generic_plan_of_a_claim_reads_the_claimed_rows_by_their_key(pool):
    for start in range(0, 1000, 100):
        await messages.insert_many(pool, [letter(i) for i in range(start, start + 100)])
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE deliveries")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE claim (timestamptz, integer, interval, text) AS " + queries["claim_due"])
        async with conn.transaction():
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN (COSTS OFF) EXECUTE claim (now(), 64, interval '60 s', 'w')"))
            rows = await conn.fetch("EXECUTE claim (now(), 64, interval '60 s', 'w')")
            assert len(rows) == 64
        await conn.execute("DEALLOCATE claim; RESET plan_cache_mode")
    assert "Seq Scan on deliveries" not in plan, plan
    assert "deliveries_pkey" in plan, plan


def delivered(c: deliveries.ClaimedDelivery) -> Transition:
    now = dt.datetime.now(dt.UTC)
    return Transition(delivery_id=c.id, outcome="delivered", at=now, message_pk=c.message_pk, recipient=c.recipient,
                      actor="gateway", details={"recipient": c.recipient}, worker="w", attempt=c.attempts,
                      started_at=now, reset_destination=True, ack=b"<ack/>")


async def seq_scans_of_one_claim(conn, relname: str) -> int:
    """Claim 64 deliveries in a transaction of their own; how many sequential scans of ``relname`` it took."""
    async with conn.transaction():
        claimed = await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC), limit=64, lease=LEASE, worker="w")
        assert len(claimed) == 64
        return await conn.fetchval("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = $1", relname)


async def test_claims_and_outcomes_planned_on_empty_tables_read_no_delivery_but_their_own(pool):
    async with pool.acquire() as conn:
        # the connection's plans are made while the tables hold one letter (as at a new installation)
        await messages.insert_many(conn, [letter(0)])
        for _ in range(7):  # past a prepared statement's five custom plans
            claimed = await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC), limit=64, lease=LEASE, worker="w")
            assert all(await transitions.apply(conn, [delivered(c) for c in claimed]))
        for start in range(1, 1001, 100):
            await messages.insert_many(pool, [letter(i) for i in range(start, start + 100)])
        async with conn.transaction():
            claimed = await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC), limit=64, lease=LEASE, worker="w")
            assert len(claimed) == 64
            assert all(await transitions.apply(conn, [delivered(c) for c in claimed]))
            scans = {r["relname"]: r["seq_scan"] for r in await conn.fetch(
                "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE relname IN ('deliveries', 'messages')")}
    assert scans["deliveries"] == 0


async def test_a_claim_planned_on_empty_tables_reads_its_messages_by_key(pool):
    async with pool.acquire() as conn:
        # the connection's plan is made while messages holds one letter (as at a new installation)
        await messages.insert_many(conn, [letter(0)])
        for _ in range(7):  # past a prepared statement's five custom plans
            await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC), limit=64, lease=LEASE, worker="w")
        for start in range(1, 1001, 100):
            await messages.insert_many(pool, [letter(i) for i in range(start, start + 100)])
        assert await seq_scans_of_one_claim(conn, "messages") == 0


async def test_a_claim_planned_on_some_hundred_unanalyzed_deliveries_reads_no_other_delivery(pool):
    for start in range(0, 500, 100):  # 1,000 deliveries, no statistics (no ANALYZE yet: a new installation)
        await messages.insert_many(pool, [letter(i) for i in range(start, start + 100)])
    async with pool.acquire() as conn:
        for _ in range(7):  # past a prepared statement's five custom plans
            assert len(await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC), limit=1, lease=LEASE,
                                                  worker="w")) == 1
        assert await seq_scans_of_one_claim(conn, "deliveries") == 0
