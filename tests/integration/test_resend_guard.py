"""The e-CMS resend rule inside the group-commit insert (``NewMessage.resend_guard``): which
letters of one batch are stored and which come back as :class:`SentOtherwise`, in batch order."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import asyncpg

from gateway.storage import messages
from gateway.storage.messages import NewDelivery, NewMessage, SentOtherwise
from tests.support import CMI, KKN, OPM

AT = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
DATE = dt.date(2026, 11, 22)


def new(message_id: str, *, number: str = "นร 0105/ว 123", recipients=(CMI,), guard: str | None = None,
        sender: str = OPM) -> NewMessage:
    return NewMessage(
        sender=sender, message_id=message_id, message_type="letter", conversation_id=message_id,
        ref_to_message_id=None, letter_number=number, letter_date=DATE, subject="ขอเชิญประชุม", speed="normal",
        secrecy="normal", channel="ecms" if guard else "native",
        received_sha256=hashlib.sha256(message_id.encode()).digest(), received=b"<Envelope/>",
        forwarded=b"<Envelope/>", evidence=None, receipt=b"<Receipt/>", accepted_at=AT,
        expires_at=AT + dt.timedelta(days=7),
        deliveries=[NewDelivery(uuid.uuid4(), r, "pull", "inbox") for r in recipients],
        audit={"message_id": message_id}, resend_guard=guard)


async def test_one_batch_stores_what_the_rule_allows_and_names_the_receiver_of_the_rest(pool):
    (first,) = await messages.insert_many(pool, [new("ecms.a", recipients=(CMI, KKN), guard="ecms.a")])
    assert isinstance(first, int)
    out = await messages.insert_many(pool, [
        new("ecms.b", guard="ecms.b"),                         # another letter, same number, to CMI
        new("native-1"),                                       # no guard: the native API does not apply the rule
        new("ecms.c", number="นร 0105/ว 124", guard="ecms.c"),  # a new number
        new("ecms.a.r1", recipients=(CMI, KKN), guard="ecms.a"),  # a resend of the same letter
        new("ecms.d", recipients=(KKN,), guard="ecms.d"),      # the rule holds per receiver
        new("ecms.e", sender=KKN, guard="ecms.e"),             # another sender's numbers are its own
    ])
    assert out[0] == SentOtherwise(CMI) and out[4] == SentOtherwise(KKN)
    assert all(isinstance(pk, int) for i, pk in enumerate(out) if i not in (0, 4))
    stored = {r["message_id"] for r in await pool.fetch("SELECT message_id FROM messages")}
    assert stored == {"ecms.a", "native-1", "ecms.c", "ecms.a.r1", "ecms.e"}
    # nothing of a refused letter is half-stored: no deliveries, no audit event
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 2 + 1 + 1 + 2 + 1
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE kind = 'message.accepted'") == 5


async def test_a_withdrawn_letter_no_longer_blocks_its_number(pool):
    (pk,) = await messages.insert_many(pool, [new("ecms.a", guard="ecms.a")])
    assert await messages.insert(pool, new("ecms.b", guard="ecms.b")) == SentOtherwise(CMI)
    await pool.execute("UPDATE deliveries SET status = 'withdrawn' WHERE message_pk = $1", pk)
    assert isinstance(await messages.insert(pool, new("ecms.b", guard="ecms.b")), int)
    # a repeated (sender, id) is still a duplicate, answered by the caller with the first receipt
    assert await messages.insert(pool, new("ecms.b", guard="ecms.b")) is None


async def test_the_guard_reads_letters_by_number_not_the_senders_history(database_url):
    """The insert is planned once per connection, maybe on an empty table: its resend guard must
    find the letters by number and date whatever the plan, not walk every letter the sender ever
    sent (index messages_sender_accepted) once per recipient, which grew with the sender's history."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        assert isinstance(await messages.insert(pool, new("ecms.first", guard="ecms.first")), int)  # planned here
        await messages.insert_many(pool, [new(f"native-{i}", number=f"นร 0105/{i}") for i in range(300)])

        async def sender_index_reads() -> int:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_stat_force_next_flush()")
            async with pool.acquire() as conn:  # the flush happens when the backend goes idle
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                return await conn.fetchval("SELECT idx_tup_read FROM pg_stat_user_indexes "
                                           "WHERE indexrelname = 'messages_sender_accepted'")

        before = await sender_index_reads()
        out = await messages.insert_many(pool, [new(f"ecms.g{i}", number=f"นร 0105/ว {900 + i}",
                                                    recipients=(CMI, KKN), guard=f"ecms.g{i}") for i in range(4)])
        assert all(isinstance(pk, int) for pk in out)
        assert await sender_index_reads() - before < 50
    finally:
        await pool.close()
