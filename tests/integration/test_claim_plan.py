"""The claim finds the rows it claimed by their key, in the plan PostgreSQL keeps for it.

After five executions a prepared statement may run a generic plan, made without the parameters' values.
For claim_due that plan could not know how many rows ``LIMIT $2`` lets through, and joined the claimed
rows to deliveries by a Seq Scan and a Hash Join: every claim read every delivery ever stored (12 ms for
64 claims among 2,000 deliveries here, growing with the table). The claimed rows are now looked up by
their primary key whatever the plan.
"""

import datetime as dt
import hashlib
import uuid

from gateway.storage import messages
from gateway.storage.db import queries
from gateway.storage.messages import NewDelivery, NewMessage


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
