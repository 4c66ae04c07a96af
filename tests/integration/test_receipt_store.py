"""Migration 0023: a delivery receipt's signed bytes are stored once, the office's acknowledgement once.

Before 0023 a delivered letter's receipt was written three times (the receipt message's forwarded bytes and
receipt, the letter's receipts row) and the acknowledgement twice (the message's evidence, the receipts
row's ack). Every reader must return the same bytes from rows written either way: the dispatcher's claim
and the pull inbox (what is sent), the console's and the evidence bundle's reads, the duplicate-submission
answer, the time-stamping job and the Evidence Records' data objects. Rows written before 0023 are not
rewritten by it: the old-way rows here are written by migration 0022's own function, then 0023 runs.
"""

import datetime as dt
import io
import uuid
import zipfile

import asyncpg
import pytest

from gateway.audit import stamping
from gateway.audit.evidence import build_bundle
from gateway.audit.sealer import ChainSealer
from gateway.core.clock import SystemClock
from gateway.core.directory import Directory
from gateway.core.signing import PkiSealer
from gateway.storage import db, deliveries, messages, receipts, search, transitions
from gateway.storage.db import queries
from gateway.storage.messages import NewDelivery, NewMessage, delivery_rows, message_row
from gateway.storage.receipts import Delivered, ReceiptFactory
from gateway.storage.transitions import Transition
from tests.support import CMI, KKN, OPM, directory_dict

ACK = b'<?xml version="1.0"?><Ack><Signed>' + b"a" * 900 + b"</Signed></Ack>"
LEASE = dt.timedelta(seconds=60)
# every bytea column a receipt's bytes can sit in
BYTES = """SELECT coalesce(octet_length(m.received), 0) + coalesce(octet_length(m.forwarded), 0)
                  + coalesce(octet_length(m.receipt), 0) + coalesce(octet_length(m.evidence), 0)
                  + coalesce(octet_length(m.forwarded_inserts), 0)
                  + (SELECT coalesce(octet_length(r.receipt), 0) + coalesce(octet_length(r.ack), 0)
                     FROM receipts r WHERE r.delivery_id = $2)
           FROM messages m WHERE m.message_id = $1"""
SNAPSHOT = """SELECT 'm' || pk, md5(received), md5(forwarded), md5(receipt), md5(evidence), md5(forwarded_inserts)
              FROM messages
              UNION ALL SELECT 'r' || pk, md5(receipt), md5(ack), NULL, NULL, NULL FROM receipts ORDER BY 1"""


def letter(i: int) -> NewMessage:
    at = dt.datetime.now(dt.UTC)
    body = b"<E><Body>" + b"x" * 500 + b"</Body></E>"
    return NewMessage(
        sender=OPM, message_id=f"letter-{i}-{uuid.uuid4()}", message_type="letter", conversation_id=None,
        ref_to_message_id=None, letter_number=f"นร 0100/{i}", letter_date=at.date(), subject="เรื่อง",
        speed="normal", secrecy="normal", channel="native", received_sha256=b"\x01" * 32, received=body,
        forwarded=body, evidence=None, receipt=b"<SubmissionReceipt/>", accepted_at=at,
        expires_at=at + dt.timedelta(days=1), deliveries=[NewDelivery(uuid.uuid4(), CMI, "push", "queued"),
                                                          NewDelivery(uuid.uuid4(), KKN, "push", "queued")],
        audit={"message_id": f"letter-{i}"})


def factory(dev_pki) -> ReceiptFactory:
    return ReceiptFactory(sealer=PkiSealer(dev_pki.seal_signer()), directory=Directory.from_dict(directory_dict()),
                          adapters={}, ttl_s=3600)


def delivered(f: ReceiptFactory, c: deliveries.ClaimedDelivery, worker: str) -> Transition:
    """The dispatcher's delivered transition for ``c`` with the production receipt (ReceiptFactory.make)."""
    at = dt.datetime.now(dt.UTC)
    signed, message = f.make(Delivered(
        delivery_id=c.id, message_pk=c.message_pk, message_id=c.message_id, conversation_id=c.conversation_id,
        message_type=c.message_type, sender=c.sender, recipient=c.recipient,
        forwarded_sha256=b"\x02" * 32), at=at, ack=ACK)
    assert message is not None and signed
    return Transition(delivery_id=c.id, outcome="delivered", at=at, message_pk=c.message_pk, recipient=c.recipient,
                      actor="gateway", details={"recipient": c.recipient}, worker=worker, attempt=c.attempts,
                      started_at=at, reset_destination=True, receipt=signed, ack=ACK, receipt_message=message)


async def claim(conn, worker: str) -> list[deliveries.ClaimedDelivery]:
    """The letters' due deliveries (the receipts' own are claimed too, and left)."""
    return [c for c in await deliveries.claim_due(conn, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
                                                  limit=50, lease=LEASE, worker=worker)
            if c.message_type == "letter"]


async def old_way(conn, batch: list[Transition]) -> None:
    """Apply ``batch`` as the gateway did before 0023 (0022's function; every field sent whole)."""
    rows = [(i, t.delivery_id, t.worker, t.outcome, t.permanent, t.attempt, t.started_at, t.at, t.reason,
             t.due_at, t.message_pk, t.recipient, t.actor, db.encode_json(dict(t.details)), t.receipt, t.ack,
             t.reset_destination, t.breaker_threshold, t.backoff_s) for i, t in enumerate(batch, start=1)]
    ms = [t.receipt_message for t in batch]
    applied = await conn.fetch(queries["apply_delivery_transitions"], rows,
                               [message_row(m, i) for i, m in enumerate(ms, start=1) if m is not None],
                               [d for i, m in enumerate(ms, start=1) if m is not None for d in delivery_rows(m, i)])
    assert all(r["applied"] for r in applied)


async def check_readers(pool, letter_pk: int, expected: dict[uuid.UUID, tuple[Transition, int]]) -> None:
    """Every reader of a delivery receipt gives the signed bytes (and the ack) of each delivery in ``expected``
    (delivery id -> its transition and its receipt message's pk)."""
    # the letter's receipts rows: the evidence bundle's receipts/NNN-delivery.xml and -ack.xml
    got = {r["delivery_id"]: (bytes(r["receipt"]), bytes(r["ack"])) for r in await receipts.for_message(pool, letter_pk)}
    assert got == {d: (t.receipt, ACK) for d, (t, _) in expected.items()}
    bundle = zipfile.ZipFile(io.BytesIO(await build_bundle(pool, letter_pk, certificate=None)))
    names = sorted(n for n in bundle.namelist() if n.startswith("receipts/"))
    assert len(names) == 2 * len(expected)
    assert {bundle.read(n) for n in names if not n.endswith("-ack.xml")} == {t.receipt for t, _ in expected.values()}
    assert {bundle.read(n) for n in names if n.endswith("-ack.xml")} == {ACK}
    for t, pk in expected.values():
        m = t.receipt_message
        assert m is not None
        # the receipt message: console / its own evidence bundle, the duplicate answer, the push and the pull
        full = await search.message(pool, pk)
        assert full is not None
        assert (bytes(full["forwarded"]), bytes(full["receipt"]), bytes(full["evidence"]), bytes(full["received"])) \
            == (t.receipt, t.receipt, ACK, m.received)
        rec = await messages.get(pool, m.sender, m.message_id)
        assert rec is not None and rec.receipt == t.receipt
        by_pk = await messages.get_by_pk(pool, pk)
        assert by_pk is not None and by_pk.receipt == t.receipt
        assert await messages.forwarded_bytes(pool, pk) == t.receipt
        own = zipfile.ZipFile(io.BytesIO(await build_bundle(pool, pk, certificate=None)))
        assert (own.read("forwarded.xml"), own.read("submission-receipt.xml")) == (t.receipt, t.receipt)
        did = await pool.fetchval("SELECT id FROM deliveries WHERE message_pk = $1", pk)
        item = await pool.fetchrow(queries["inbox_item"], [OPM], did)
        assert bytes(item["forwarded"]) == t.receipt
        async with pool.acquire() as conn, conn.transaction():
            ack_row = await conn.fetchrow(queries["delivery_for_ack"], did)
        assert bytes(ack_row["forwarded"]) == t.receipt
    # the time-stamping job: what the chain's events name (seal, receipt, delivery receipt), byte for byte
    sealer = ChainSealer(pool, clock=SystemClock())
    while (await sealer.seal_once()).chained:
        pass
    head = await pool.fetchval("SELECT seq FROM audit_chain_head")
    objects = {(o[0], o[1], o[2]): o[3] for o in stamping._objects(await pool.fetch(queries["er_unstamped"], 0, head,
                                                                                     10_000))}
    receipt_pks = {r["delivery_id"]: r["pk"] for r in await pool.fetch("SELECT pk, delivery_id FROM receipts")}
    for d, (t, pk) in expected.items():
        assert objects[(letter_pk, "delivery-receipt", receipt_pks[d])] == t.receipt
        assert objects[(pk, "seal", None)] == t.receipt and objects[(pk, "receipt", None)] == t.receipt
        # the Evidence Records' data objects (er_items, as the job stores them)
        await pool.execute("INSERT INTO er_items (message_pk, kind, receipt_pk, alg) VALUES ($1, 'delivery-receipt', "
                           "$2, 'sha256'), ($3, 'seal', NULL, 'sha256'), ($3, 'receipt', NULL, 'sha256') "
                           "ON CONFLICT DO NOTHING", letter_pk, receipt_pks[d], pk)
    letter_row = await pool.fetchrow("SELECT sender, message_id FROM messages WHERE pk = $1", letter_pk)
    items = await pool.fetch(queries["er_items_of_message"], letter_row["message_id"], letter_row["sender"])
    by_id = await pool.fetch(queries["er_items_of_message_id"], letter_row["message_id"])
    rehash = {r["id"]: bytes(r["data"]) for r in await pool.fetch(queries["er_items_to_rehash"], ["sha256"], 0, 10_000)}
    want = {receipt_pks[d]: t.receipt for d, (t, _) in expected.items()}
    for rows in (items, by_id):
        got_items = {r["receipt_pk"]: bytes(r["data"]) for r in rows if r["kind"] == "delivery-receipt"}
        assert got_items == want
    for r in items:
        if r["kind"] == "delivery-receipt":
            assert rehash[r["id"]] == want[r["receipt_pk"]]
    for t, _ in expected.values():
        m = t.receipt_message
        assert m is not None
        own_items = await pool.fetch(queries["er_items_of_message"], m.message_id, m.sender)
        assert {r["kind"]: bytes(r["data"]) for r in own_items} == {"seal": t.receipt, "receipt": t.receipt}
        assert all(rehash[r["id"]] == t.receipt for r in own_items)


async def test_a_delivery_receipt_is_stored_once_and_its_ack_once(pool, dev_pki):
    f = factory(dev_pki)
    await messages.insert(pool, letter(1))
    batch = [delivered(f, c, "w") for c in await claim(pool, "w")]
    assert len(batch) == 2 and await transitions.apply(pool, batch) == [True, True]
    for t in batch:
        m = t.receipt_message
        assert m is not None
        stored = await pool.fetchval(BYTES, m.message_id, t.delivery_id)
        # the signed receipt once (the unsigned one, the message's received bytes, and the signature inserted
        # in it), the ack once
        assert stored <= len(t.receipt) + len(ACK), (stored, len(t.receipt))
    # a receipts row holds its receipt or names the message that does (checked for new rows; NOT VALID only
    # spares the migration a scan of the old ones)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("INSERT INTO receipts (message_pk, kind, created_at) VALUES ($1, 'delivery', now())",
                           batch[0].message_pk)


async def test_every_reader_gives_the_same_bytes_from_old_and_new_rows(empty_database_url, dev_pki):
    f = factory(dev_pki)
    conn = await asyncpg.connect(empty_database_url)
    try:  # the database as it stood before 0023
        async with conn.transaction():
            await conn.execute("CREATE TABLE gateway_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                               "applied_at timestamptz NOT NULL DEFAULT now())")
            for m in db.migrations():
                if m.version <= 22:
                    await conn.execute(m.sql)
                    await conn.execute("INSERT INTO gateway_migrations (version, name) VALUES ($1, $2)",
                                       m.version, m.name)
    finally:
        await conn.close()
    pool = await db.create_pool(empty_database_url, min_size=1, max_size=4)
    try:
        old_pk = await messages.insert(pool, letter(1))
        old = [delivered(f, c, "w") for c in await claim(pool, "w")]
        async with pool.acquire() as conn:
            await old_way(conn, old)
            before = await conn.fetch(SNAPSHOT)
            assert await db.migrate(conn) == [m.version for m in db.migrations() if m.version > 22]
            assert await conn.fetch(SNAPSHOT) == before  # 0023 rewrote no stored byte
        new_pk = await messages.insert(pool, letter(2))
        new = [delivered(f, c, "w2") for c in await claim(pool, "w2")]
        assert await transitions.apply(pool, new) == [True, True]
        for pk, batch in ((old_pk, old), (new_pk, new)):
            assert isinstance(pk, int)
            await check_readers(pool, pk, await expected_of(pool, batch))
    finally:
        await pool.close()


async def expected_of(pool, batch) -> dict[uuid.UUID, tuple[Transition, int]]:
    """What :func:`check_readers` expects of each delivery of ``batch``: its transition and the pk of the
    receipt message it stored."""
    expected = {}
    for t in batch:
        m = t.receipt_message
        assert m is not None
        expected[t.delivery_id] = (t, await pool.fetchval(
            "SELECT pk FROM messages WHERE sender = $1 AND message_id = $2", m.sender, m.message_id))
    return expected


def _bytes_in(value) -> list[bytes]:
    """Every bytes value in a statement's arguments (composites and arrays of them included)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return [bytes(value)]
    if isinstance(value, list | tuple):
        return [b for v in value for b in _bytes_in(v)]
    return []


async def test_a_signed_delivery_receipt_crosses_the_wire_once(pool, dev_pki):
    """(0024) The signed receipt's signature goes to PostgreSQL once per delivery: as the inserted bytes of
    the receipt message's forwarded edits, not again whole as the transition's receipt; the function fills
    the transition's from those. Every reader still gives the same bytes."""
    f = factory(dev_pki)
    letter_pk = await messages.insert(pool, letter(1))
    assert isinstance(letter_pk, int)
    batch = [delivered(f, c, "w") for c in await claim(pool, "w")]
    sent: list[tuple[str, tuple]] = []
    async with pool.acquire() as conn:
        def log(q) -> None:
            sent.append((q.query, q.args))
        conn.add_query_logger(log)
        assert await transitions.apply(conn, batch) == [True, True]
        conn.remove_query_logger(log)
    [(_, args)] = [(q, a) for q, a in sent if "apply_delivery_transitions" in q]
    wire = _bytes_in(args)
    for t in batch:
        signature = t.receipt[t.receipt.index(b"<ds:SignatureValue"):t.receipt.index(b"</ds:SignatureValue>")]
        assert sum(b.count(signature) for b in wire) == 1, "the signed receipt crossed the wire more than once"
    await check_readers(pool, letter_pk, await expected_of(pool, batch))
