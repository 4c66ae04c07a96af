"""A claim and an outcome find their rows through indexes, in the plans a connection keeps (migration 0025).

A connection plans the claim and the statements of apply_delivery_transitions once and keeps the plans. Made
on a new database's nearly empty tables they read deliveries and messages whole (Seq Scan, Hash Join), and
kept doing so as the tables grew: every claim and every outcome read every row stored since. The claim's
generic plan did so on any table, since it cannot know how many rows ``LIMIT $2`` lets through (12 ms for
64 claims among 2,000 deliveries). Both now plan on indexes whatever the tables' size.
"""

import datetime as dt
import hashlib
import uuid

from gateway.storage import deliveries, messages, transitions
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


def delivered(c: deliveries.ClaimedDelivery) -> Transition:
    now = dt.datetime.now(dt.UTC)
    return Transition(delivery_id=c.id, outcome="delivered", at=now, message_pk=c.message_pk, recipient=c.recipient,
                      actor="gateway", details={"recipient": c.recipient}, worker="w", attempt=c.attempts,
                      started_at=now, reset_destination=True, ack=b"<ack/>")


async def test_claims_and_outcomes_planned_on_empty_tables_read_no_table_whole(pool):
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
    assert scans == {"deliveries": 0, "messages": 0}
