"""A claim sends each message's forwarded bytes once per batch, and every delivery gets its own message's bytes.

A letter to two offices was read, rebuilt from its edits, sent and decoded once per delivery claimed. The claim
now sends the bytes with the first of a message's deliveries in the batch and none with the others;
``deliveries.claim_due`` gives every :class:`ClaimedDelivery` its message's bytes. The bytes must stay exactly
the message's sealed bytes: letters whose bytes differ in one byte, stored whole and as edits, claimed in batches
that split a message's deliveries and by two workers side by side.
"""

import asyncio
import datetime as dt
import hashlib
import uuid

from gateway.storage import deliveries, forwarded, messages
from gateway.storage.db import queries
from gateway.storage.messages import NewDelivery, NewMessage

LEASE = dt.timedelta(seconds=60)
OFFICES = ("5000000001", "4000000001", "3000000001", "2000000001")


def letter(i: int, recipients: int) -> NewMessage:
    """A letter whose received bytes differ from every other's and whose forwarded bytes are received with a seal
    added (stored as edits), or, for every third, other bytes (stored whole)."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    body = b"<E><H>%06d</H><Body>" % i + bytes([65 + i % 26]) * (3000 + 7 * i) + b"</Body></E>"
    sealed = (body.replace(b"<H>", b'<H Id="Header">', 1).replace(b"</E>", b"<Seal>%d</Seal></E>" % i)
              if i % 3 else b"<Other>%d</Other>" % i)
    return NewMessage(
        sender="0100000000", message_id=f"once-{i}-{uuid.uuid4()}", message_type="letter", conversation_id=None,
        ref_to_message_id=None, letter_number=None, letter_date=None, subject="เรื่อง", speed="normal",
        secrecy="normal", channel="native", received_sha256=hashlib.sha256(body).digest(), received=body,
        forwarded=sealed, evidence=None, receipt=b"<Receipt/>", accepted_at=at, expires_at=at + dt.timedelta(days=1),
        deliveries=[NewDelivery(uuid.uuid4(), r, "push", "queued") for r in OFFICES[:recipients]],
        audit={"message_id": str(i)})


async def store(pool, count: int) -> dict[int, bytes]:
    """``count`` letters of one to four deliveries each; their pks -> forwarded bytes."""
    batch = [letter(i, 1 + i % 4) for i in range(count)]
    assert any(forwarded.edits(m.received, m.forwarded) is None for m in batch)
    assert any(forwarded.edits(m.received, m.forwarded) is not None for m in batch)
    pks = await messages.insert_many(pool, batch)
    out = {pk: m.forwarded for pk, m in zip(pks, batch, strict=True) if isinstance(pk, int)}
    assert len(out) == count
    return out


def check(claimed: list[deliveries.ClaimedDelivery], sent: dict[int, bytes]) -> None:
    for c in claimed:
        assert c.forwarded == sent[c.message_pk], (c.message_pk, c.recipient)
        assert c.forwarded_sha256 == hashlib.sha256(sent[c.message_pk]).digest()


async def test_each_delivery_gets_its_own_messages_bytes_in_batches_that_split_messages(pool):
    sent = await store(pool, 40)
    claimed: list[deliveries.ClaimedDelivery] = []
    for limit in (7, 1, 13, 64, 64):  # odd sizes: a message's deliveries fall in two batches
        batch = await deliveries.claim_due(pool, now=dt.datetime.now(dt.UTC), limit=limit, lease=LEASE, worker="w")
        check(batch, sent)
        claimed += batch
    assert len(claimed) == len({c.id for c in claimed}) == sum(1 + i % 4 for i in range(40))


async def test_two_workers_claiming_side_by_side_each_get_the_bytes(pool):
    sent = await store(pool, 40)
    claimed: list[deliveries.ClaimedDelivery] = []

    async def worker(name: str) -> None:
        async with pool.acquire() as conn:
            while batch := await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC), limit=9, lease=LEASE,
                                                      worker=name):
                check(batch, sent)
                claimed.extend(batch)

    await asyncio.gather(worker("a"), worker("b"))
    assert len(claimed) == len({c.id for c in claimed}) == sum(1 + i % 4 for i in range(40))


async def test_a_message_s_bytes_cross_the_wire_once_per_claim(pool):
    sent = await store(pool, 12)
    rows = await pool.fetch(queries["claim_due"], dt.datetime.now(dt.UTC), 64, LEASE, "w")
    assert len(rows) == sum(1 + i % 4 for i in range(12))
    with_bytes = [r["message_pk"] for r in rows if r["forwarded"] is not None]
    assert sorted(with_bytes) == sorted(sent)
    assert {r["message_pk"]: bytes(r["forwarded"]) for r in rows if r["forwarded"] is not None} == sent
