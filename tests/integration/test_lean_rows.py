"""Migration 0019: what a letter writes to PostgreSQL, cut without changing what is read.

The forwarded bytes come back byte for byte from every stored form (edits of the received bytes,
no edit, whole), read through SQL forwarded_bytes(); the console's search table is filled after
commit up to the audit chain's head, and the search finds a letter before and after that.
"""

import datetime as dt
import hashlib
import uuid

from gateway.audit.sealer import ChainSealer
from gateway.core.clock import SystemClock
from gateway.storage import messages, search
from gateway.storage.db import queries
from gateway.storage.messages import NewDelivery, NewMessage
from gateway.storage.search import LetterFilter

SENDER, RECIPIENT = "0100000000", "1550100000"


def letter(received: bytes, forwarded: bytes, *, subject: str = "เรื่องทดสอบ", number: str = "นร 0105/1") -> NewMessage:
    at = dt.datetime.now(dt.UTC)
    return NewMessage(
        sender=SENDER, message_id=str(uuid.uuid4()), message_type="letter", conversation_id=None,
        ref_to_message_id=None, letter_number=number, letter_date=at.date(), subject=subject, speed="normal",
        secrecy="normal", channel="native", received_sha256=hashlib.sha256(received).digest(), received=received,
        forwarded=forwarded, evidence=None, receipt=b"<Receipt/>", accepted_at=at,
        expires_at=at + dt.timedelta(days=1), deliveries=[NewDelivery(uuid.uuid4(), RECIPIENT, "pull", "inbox")],
        audit={"message_id": "x"})


RECEIVED = b"<E><Header><S>0100000000</S></Header><Body>" + b"b" * 4000 + b"</Body><Signatures><A/></Signatures></E>"
SEALED = RECEIVED.replace(b"<Header>", b'<Header Id="Header">').replace(
    b"<A/>", b'<A/><ds:Signature Id="GatewaySeal">' + b"s" * 1500 + b"</ds:Signature>")


async def test_every_stored_form_reads_back_byte_for_byte(pool):
    cases = {"sealed": (RECEIVED, SEALED), "unsealed": (RECEIVED, RECEIVED),
             "whole": (b"<E/>", b"<Other>" + b"o" * 300 + b"</Other>"), "empty": (b"", b"")}
    pks = {name: await messages.insert(pool, letter(r, f)) for name, (r, f) in cases.items()}
    stored = {r["pk"]: r for r in await pool.fetch(
        "SELECT pk, forwarded IS NULL AS as_edits, coalesce(length(forwarded_inserts), 0) AS inserted FROM messages")}
    assert stored[pks["sealed"]]["as_edits"] and stored[pks["sealed"]]["inserted"] == len(SEALED) - len(RECEIVED)
    assert stored[pks["unsealed"]]["as_edits"] and stored[pks["unsealed"]]["inserted"] == 0
    assert not stored[pks["whole"]]["as_edits"]
    for name, (_, forwarded) in cases.items():
        assert await messages.forwarded_bytes(pool, pks[name]) == forwarded, name
        # the readers of the delivery path: the pull inbox and the acknowledgement
        row = await pool.fetchrow("SELECT d.id FROM deliveries d WHERE d.message_pk = $1", pks[name])
        item = await pool.fetchrow(queries["inbox_item"], [RECIPIENT], row["id"])
        assert bytes(item["forwarded"]) == forwarded, name
        full = await search.message(pool, pks[name])  # the evidence bundle's read
        assert bytes(full["forwarded"]) == forwarded and bytes(full["received"]) == cases[name][0]


async def test_the_search_table_is_filled_after_commit_and_the_search_never_lags(pool):
    pk = await messages.insert(pool, letter(RECEIVED, SEALED, subject="ขออนุมัติงบประมาณโครงการ", number="นร 0105/ว 77"))
    await messages.insert(pool, letter(RECEIVED, SEALED, subject="เรื่องอื่น"))
    # accepting wrote nothing to the search table and no trigram index is left on messages
    assert await pool.fetchval("SELECT count(*) FROM message_search") == 0
    assert await pool.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = 'messages' "
                               "AND indexdef LIKE '%gin_trgm_ops%'") == 0

    async def found(**kw):
        return [r["pk"] for r in await search.letters(pool, LetterFilter(**kw), after=None, limit=10)]

    assert await found(subject="งบประมาณ") == [pk]  # before the filler: from the letters since its watermark
    assert await found(number="ว 77") == [pk]
    assert await search.fill(pool) == 0  # nothing is chained yet: nothing is final
    sealer = ChainSealer(pool, clock=SystemClock())
    while (await sealer.seal_once()).chained:
        pass
    head = await pool.fetchval("SELECT seq FROM audit_chain_head")
    assert head > 0 and await search.fill(pool) == head
    assert await pool.fetchval("SELECT count(*) FROM message_search") == 2
    assert await found(subject="งบประมาณ") == [pk]  # now through the table's trigram index, once
    assert await found(subject="งบประมาณ", number="ว 77") == [pk]
    assert await found(subject="ไม่มีเรื่องนี้") == []
    assert await search.fill(pool) == head  # a round with nothing new keeps the watermark


async def test_pages_run_across_the_search_table_and_the_letters_after_its_watermark(pool):
    sealer = ChainSealer(pool, clock=SystemClock())
    pks = [await messages.insert(pool, letter(RECEIVED, SEALED, subject=f"ประชุมสามัญ {i}")) for i in range(3)]
    while (await sealer.seal_once()).chained:
        pass
    await search.fill(pool)
    pks += [await messages.insert(pool, letter(RECEIVED, SEALED, subject=f"ประชุมสามัญ {i}")) for i in range(3, 5)]
    await messages.insert(pool, letter(RECEIVED, SEALED, subject="เรื่องอื่น"))
    seen, after = [], None
    while True:
        rows = await search.letters(pool, LetterFilter(subject="ประชุมสามัญ", agency=RECIPIENT), after=after, limit=2)
        seen += [r["pk"] for r in rows]
        if len(rows) < 2:
            break
        after = (rows[-1]["accepted_at"], rows[-1]["pk"])
    assert seen == sorted(pks, reverse=True)  # newest first (same accepted_at order as pk here), each once
