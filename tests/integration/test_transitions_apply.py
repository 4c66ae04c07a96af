"""A batch of decided delivery outcomes is applied in one round trip, whichever the outcomes."""

import datetime as dt
import random
import uuid

from adapters.base import Delivered, Permanent, Retry
from gateway.delivery.retry import RetryPolicy
from gateway.delivery.transitions import Attempt, decide
from gateway.storage import deliveries, transitions
from gateway.storage.messages import NewDelivery, NewMessage, insert_many
from gateway.storage.transitions import Transition

NOW = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
OFFICES = ["1100000001", "1100000002", "1100000003", "1100000004"]


def letter(i: int, recipient: str) -> NewMessage:
    return NewMessage(
        sender="0100000000", message_id=f"m-{i}", message_type="letter", conversation_id=f"m-{i}",
        ref_to_message_id=None, letter_number=f"นร 0100/{i}", letter_date=NOW.date(), subject="เรื่อง",
        speed="normal", secrecy="normal", channel="native", received_sha256=bytes([i]) * 32, received=b"<E/>",
        forwarded=b"<E/>", evidence=None, receipt=b"<R/>", accepted_at=NOW, expires_at=NOW + dt.timedelta(days=1),
        deliveries=[NewDelivery(uuid.uuid4(), recipient, "push", "queued")], audit={"message_id": f"m-{i}"})


def receipt_for(i: int, recipient: str) -> NewMessage:
    m = letter(100 + i, "0100000000")
    return NewMessage(**{**m.__dict__, "sender": recipient, "message_id": f"receipt-{i}", "message_type": "receipt",
                         "letter_number": None, "letter_date": None})


async def test_delivered_retry_dead_and_a_lost_claim_in_one_statement(pool):
    await insert_many(pool, [letter(i, office) for i, office in enumerate(OFFICES, start=1)])
    claimed = await deliveries.claim_due(pool, now=NOW, limit=10, lease=dt.timedelta(seconds=60), worker="w1")
    by_office = {c.recipient: c for c in claimed}
    policy = RetryPolicy(initial_delay_s=30, jitter=0, max_attempts=5, rng=random.Random(1))
    at = Attempt("w1", NOW, NOW + dt.timedelta(seconds=1))
    batch = [
        decide(Delivered(ack=b"<Ack/>"), by_office[OFFICES[0]], policy, at, breaker_threshold=3, receipt=b"<DR/>",
               receipt_message=receipt_for(1, OFFICES[0])),
        decide(Retry("HTTP 503"), by_office[OFFICES[1]], policy, at, breaker_threshold=3),
        decide(Permanent("HTTP 400"), by_office[OFFICES[2]], policy, at, breaker_threshold=3),
        # another worker's transition: its claim is not this one's, so it does not apply
        Transition(**{**decide(Delivered(), by_office[OFFICES[3]], policy, Attempt("w2", NOW, NOW),
                                breaker_threshold=3).__dict__, "receipt_message": receipt_for(4, OFFICES[3])}),
    ]
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM audit_events")
        assert await transitions.apply(conn, batch) == [True, True, True, False]
        states = {r["recipient"]: (r["status"], r["last_error"]) for r in await conn.fetch(
            "SELECT recipient, status::text AS status, last_error FROM deliveries WHERE recipient = ANY($1)",
            OFFICES)}
        events = [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM audit_events ORDER BY seq OFFSET $1", before)]
        attempts = {r["outcome"] for r in await conn.fetch("SELECT outcome FROM delivery_attempts")}
        receipts = await conn.fetch("SELECT message_id, sender FROM messages WHERE message_type = 'receipt'")
        failing = await conn.fetchval("SELECT consecutive_failures FROM destinations WHERE agency = $1", OFFICES[1])
        stored = await conn.fetchrow("SELECT receipt, ack FROM receipts")
    assert states == {OFFICES[0]: ("delivered", None), OFFICES[1]: ("retry_wait", "HTTP 503"),
                      OFFICES[2]: ("dead", "HTTP 400"), OFFICES[3]: ("sending", None)}
    assert events == ["delivery.delivered", "delivery.retry", "delivery.dead", "message.accepted"]
    assert attempts == {"delivered", "failed", "refused"}
    assert [(r["message_id"], r["sender"]) for r in receipts] == [("receipt-1", OFFICES[0])]
    assert failing == 1 and (stored["receipt"], stored["ack"]) == (b"<DR/>", b"<Ack/>")


async def test_failures_past_the_threshold_open_the_destination_and_hold_its_queue(pool):
    office = OFFICES[0]
    await insert_many(pool, [letter(i, office) for i in range(1, 4)])
    claimed = await deliveries.claim_due(pool, now=NOW, limit=1, lease=dt.timedelta(seconds=60), worker="w1")
    policy = RetryPolicy(initial_delay_s=30, jitter=0, max_attempts=5)
    c = claimed[0]
    c = type(c)(**{**{f: getattr(c, f) for f in c.__dataclass_fields__}, "destination_failures": 2})
    await pool.execute("INSERT INTO destinations (agency, consecutive_failures, updated_at) VALUES ($1, 2, $2)",
                       office, NOW)
    t = decide(Retry("timeout"), c, policy, Attempt("w1", NOW, NOW), breaker_threshold=3)
    assert await transitions.apply(pool, [t]) == [True]
    until = await pool.fetchval("SELECT backoff_until FROM destinations WHERE agency = $1", office)
    assert until == NOW + dt.timedelta(seconds=policy.delay(1))
    waiting = await pool.fetch("SELECT next_attempt_at FROM deliveries WHERE recipient = $1 AND id <> $2",
                               office, c.id)
    assert all(r["next_attempt_at"] >= until for r in waiting) and len(waiting) == 2
    assert await pool.fetchval("SELECT next_attempt_at FROM deliveries WHERE id = $1", c.id) >= until


async def test_a_delivery_receipt_crosses_the_wire_once_and_is_stored_whole(pool):
    """The receipt message's forwarded bytes and receipt, the transition's signed receipt, go empty on
    the wire and are filled by the function (0022) and stored once (0023); bytes of their own are kept as sent."""
    await insert_many(pool, [letter(i, office) for i, office in enumerate(OFFICES[:3], start=1)])
    claimed = await deliveries.claim_due(pool, now=NOW, limit=10, lease=dt.timedelta(seconds=60), worker="w1")
    by_office = {c.recipient: c for c in claimed}
    policy = RetryPolicy(initial_delay_s=30, jitter=0, max_attempts=5, rng=random.Random(1))
    at = Attempt("w1", NOW, NOW + dt.timedelta(seconds=1))
    # signed bytes that are no edit of the unsigned ones (more than RECEIPT_MOST inserted): sent empty, filled
    whole = b"<Signed>" + b"s" * 200 + b"</Signed>"
    unedited = NewMessage(**{**receipt_for(3, OFFICES[2]).__dict__, "forwarded": whole, "receipt": whole,
                             "evidence": b"<Ack/>"})
    same = NewMessage(**{**receipt_for(1, OFFICES[0]).__dict__, "forwarded": b"<DR1/>", "receipt": b"<DR1/>",
                         "evidence": b"<Ack/>"})
    own = NewMessage(**{**receipt_for(2, OFFICES[1]).__dict__, "forwarded": b"<Other/>", "receipt": b"<DR2/>"})
    batch = [decide(Delivered(ack=b"<Ack/>"), by_office[OFFICES[0]], policy, at, breaker_threshold=3,
                    receipt=b"<DR1/>", receipt_message=same),
             decide(Delivered(ack=b"<Ack/>"), by_office[OFFICES[1]], policy, at, breaker_threshold=3,
                    receipt=b"<DR2/>", receipt_message=own),
             decide(Delivered(ack=b"<Ack/>"), by_office[OFFICES[2]], policy, at, breaker_threshold=3,
                    receipt=whole, receipt_message=unedited)]
    assert await transitions.apply(pool, batch) == [True, True, True]
    rows = {r["message_id"]: (r["forwarded"], r["receipt"], r["evidence"], r["received"]) for r in await pool.fetch(
        "SELECT message_id, forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) AS forwarded, "
        "message_receipt(receipt, received, forwarded, forwarded_edits, "
        "forwarded_inserts) AS receipt, evidence, received FROM messages WHERE message_type = 'receipt'")}
    assert rows == {"receipt-1": (b"<DR1/>", b"<DR1/>", b"<Ack/>", b"<E/>"),
                    "receipt-2": (b"<Other/>", b"<DR2/>", None, b"<E/>"),
                    "receipt-3": (whole, whole, b"<Ack/>", b"<E/>")}
    assert await pool.fetchval("SELECT forwarded IS NOT NULL AND receipt IS NULL FROM messages "
                               "WHERE message_id = 'receipt-3'")
    # (0023) the message that holds the signed receipt and the ack is what the letter's receipts row names;
    # the other keeps its own copies
    kept = {r["recipient"]: (r["receipt"], r["ack"], r["linked"], r["stored"]) for r in await pool.fetch(
        "SELECT d.recipient, f.receipt, f.ack, f.receipt_message_pk IS NOT NULL AS linked, "
        "r.receipt IS NOT NULL OR r.ack IS NOT NULL AS stored "
        "FROM receipts_full f JOIN receipts r ON r.pk = f.pk JOIN deliveries d ON d.id = f.delivery_id")}
    assert kept == {OFFICES[0]: (b"<DR1/>", b"<Ack/>", True, False), OFFICES[1]: (b"<DR2/>", b"<Ack/>", False, True),
                    OFFICES[2]: (whole, b"<Ack/>", True, False)}


async def test_a_receipt_sent_as_its_message_edits_is_filled_in_every_row_that_holds_it(pool):
    """(0024) A signed receipt whose message carries it as edits of the unsigned receipt crosses the wire
    once (the transition's goes NULL): the function takes it from the message's forwarded bytes for the
    message and for the letter's receipts row, also where that row holds its own copy (the message keeps
    other evidence, or a message of that id was stored already and this one is not)."""
    await insert_many(pool, [letter(i, office) for i, office in enumerate(OFFICES[:3], start=1)])
    claimed = await deliveries.claim_due(pool, now=NOW, limit=10, lease=dt.timedelta(seconds=60), worker="w1")
    by_office = {c.recipient: c for c in claimed}
    policy = RetryPolicy(initial_delay_s=30, jitter=0, max_attempts=5, rng=random.Random(1))
    at = Attempt("w1", NOW, NOW + dt.timedelta(seconds=1))
    unsigned = b"<E><H>" + b"h" * 300 + b"</H><Signatures/></E>"

    def signed(i: int) -> bytes:
        return unsigned.replace(b"<Signatures/>", b"<Signatures><Sig>" + bytes([48 + i]) * 200 + b"</Sig></Signatures>")

    def message(i: int, evidence: bytes) -> NewMessage:
        return NewMessage(**{**receipt_for(i, OFFICES[i - 1]).__dict__, "received": unsigned, "forwarded": signed(i),
                             "receipt": signed(i), "evidence": evidence})

    # a message of receipt-3's id stored before: the transition's message is not stored, its receipts row holds it
    await insert_many(pool, [NewMessage(**{**message(3, b"<Ack/>").__dict__, "deliveries": []})])
    batch = [decide(Delivered(ack=b"<Ack/>"), by_office[OFFICES[i - 1]], policy, at, breaker_threshold=3,
                    receipt=signed(i), receipt_message=message(i, b"<Ack/>" if i != 2 else b"<Other/>"))
             for i in (1, 2, 3)]
    assert await transitions.apply(pool, batch) == [True, True, True]
    kept = {r["recipient"]: (r["receipt"], r["ack"], r["linked"]) for r in await pool.fetch(
        "SELECT d.recipient, f.receipt, f.ack, f.receipt_message_pk IS NOT NULL AS linked "
        "FROM receipts_full f JOIN deliveries d ON d.id = f.delivery_id")}
    assert kept == {OFFICES[0]: (signed(1), b"<Ack/>", True), OFFICES[1]: (signed(2), b"<Ack/>", False),
                    OFFICES[2]: (signed(3), b"<Ack/>", False)}
    rows = {r["message_id"]: (r["forwarded"], r["receipt"], r["evidence"], r["edited"]) for r in await pool.fetch(
        "SELECT message_id, forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) AS forwarded, "
        "message_receipt(receipt, received, forwarded, forwarded_edits, forwarded_inserts) AS receipt, evidence, "
        "forwarded IS NULL AS edited FROM messages WHERE message_type = 'receipt'")}
    assert rows == {"receipt-1": (signed(1), signed(1), b"<Ack/>", True),
                    "receipt-2": (signed(2), signed(2), b"<Other/>", True),
                    "receipt-3": (signed(3), signed(3), b"<Ack/>", True)}
