"""The group-commit insert: one array of a composite type against 28 positional arrays.

asyncpg has no named parameters. Until migration 0008 ``insert_messages`` took
28 parallel arrays (one per column, and six more for the deliveries); now it
takes one ``new_message[]`` and one ``new_delivery[]``. Both forms insert the
same batches into the same database here, alternating, so the cost of the
typed form is measured against the old one in one run: client CPU to encode a
batch, and wall time per batch (PostgreSQL's work included).

Usage: python bench/sql_forms.py [--quick] [--batches N] [--batch-size B]
Prints last: letters_per_s_arrays=... letters_per_s_composite=... ratio=... (composite / arrays)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database, figures  # noqa: E402
from gateway.storage import db  # noqa: E402
from gateway.storage.messages import NewDelivery, NewMessage, insert_many  # noqa: E402

#: The statement as it was before migration 0008 (queries.sql at 1a6f9e1), kept here to measure against.
ARRAYS_SQL = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bytea[],
                         $14::bytea[], $15::bytea[], $16::bytea[], $17::timestamptz[], $18::jsonb[],
                         $25::text[], $26::text[], $27::integer[], $28::text[])
        WITH ORDINALITY AS i (sender, message_id, message_type, conversation_id, ref_to_message_id,
                              letter_number, letter_date, subject, speed, secrecy, channel, received_sha256,
                              received, forwarded, evidence, receipt, accepted_at, audit, notifier_kind,
                              registry_number, parts, resend_guard, ord)
), r AS (
    SELECT * FROM unnest($19::bigint[], $20::uuid[], $21::text[], $22::text[], $23::text[], $24::timestamptz[])
        AS r (ord, id, recipient, route, status, expires_at)
), blocked AS (
    -- The e-CMS resend rule: the first recipient whose latest live letter from this sender with
    -- this number and date is another letter than the guard (neither it nor a resend, guard.r<n>).
    -- The letters are found by number first (OFFSET 0 keeps that subquery whole) and min() takes
    -- the first recipient: with ORDER BY ... LIMIT 1 the planner walked the recipient's deliveries
    -- newest first to stop early, through every letter that recipient ever had when none matched.
    SELECT i.ord, other.recipient FROM input i
    CROSS JOIN LATERAL (
        SELECT min(latest.recipient) AS recipient FROM (
            SELECT DISTINCT ON (d.recipient) d.recipient, pm.message_id
            FROM (SELECT pk, message_id, accepted_at FROM messages
                  WHERE message_type = 'letter' AND letter_number = i.letter_number
                    AND letter_date = i.letter_date AND sender = i.sender OFFSET 0) pm
            JOIN deliveries d ON d.message_pk = pm.pk
            WHERE d.status <> 'withdrawn' AND d.recipient IN (SELECT r.recipient FROM r WHERE r.ord = i.ord)
            ORDER BY d.recipient, pm.accepted_at DESC, pm.pk DESC
        ) latest
        WHERE split_part(latest.message_id, '.r', 1) <> i.resend_guard
    ) other
    WHERE i.resend_guard IS NOT NULL AND other.recipient IS NOT NULL
), m AS (
    INSERT INTO messages (sender, message_id, message_type, conversation_id, ref_to_message_id,
                          letter_number, letter_date, subject, speed, secrecy, channel,
                          received_sha256, received, forwarded, evidence, receipt, accepted_at, notifier_kind,
                          registry_number, parts)
    SELECT sender, message_id, message_type::message_type, conversation_id, ref_to_message_id, letter_number,
           letter_date, subject, speed, secrecy, channel, received_sha256, received, forwarded, evidence, receipt,
           accepted_at, notifier_kind, registry_number, parts
    FROM input WHERE ord NOT IN (SELECT ord FROM blocked) ORDER BY ord
    ON CONFLICT (sender, message_id) DO NOTHING
    RETURNING pk, sender, message_id
), mi AS (
    SELECT m.pk, i.ord, i.accepted_at, i.audit, i.sender FROM m
    JOIN input i ON i.sender = m.sender AND i.message_id = m.message_id
), d AS (
    INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at)
    SELECT r.id, mi.pk, r.recipient, r.route, r.status::delivery_status,
           greatest(mi.accepted_at, coalesce(dest.backoff_until, mi.accepted_at)), mi.accepted_at, r.expires_at
    FROM r JOIN mi ON mi.ord = r.ord
    LEFT JOIN destinations dest ON dest.agency = r.recipient
), a AS (
    -- (data-modifying CTEs always run to completion, read or not)
    INSERT INTO audit_events (at, actor, kind, message_pk, details)
    SELECT mi.accepted_at, mi.sender, 'message.accepted', mi.pk, mi.audit FROM mi ORDER BY mi.ord
)
SELECT ord, pk, NULL AS sent_otherwise FROM mi
UNION ALL
SELECT ord, NULL, recipient FROM blocked
"""


def _arrays_args(batch: Sequence[NewMessage]) -> list[Any]:
    """The 28 positional arrays of the old form, as storage.messages built them."""
    cols = ("sender", "message_id", "message_type", "conversation_id", "ref_to_message_id", "letter_number",
            "letter_date", "subject", "speed", "secrecy", "channel", "received_sha256", "received", "forwarded",
            "evidence", "receipt", "accepted_at")
    args: list[Any] = [[getattr(m, c) for m in batch] for c in cols]
    args.append([m.audit for m in batch])
    d_ord, d_id, d_rec, d_route, d_status, d_exp = [], [], [], [], [], []
    for i, m in enumerate(batch, start=1):
        for d in m.deliveries:
            d_ord.append(i)
            d_id.append(d.id)
            d_rec.append(d.recipient)
            d_route.append(d.route)
            d_status.append(d.status)
            d_exp.append(m.expires_at)
    return [*args, d_ord, d_id, d_rec, d_route, d_status, d_exp, [m.notifier_kind for m in batch],
            [m.registry_number for m in batch], [m.parts for m in batch], [m.resend_guard for m in batch]]


def make_batch(tag: str, size: int, body: bytes) -> list[NewMessage]:
    now = dt.datetime.now(dt.UTC)
    out = []
    for i in range(size):
        mid = f"{tag}-{i}"
        out.append(NewMessage(
            sender="0100000000", message_id=mid, message_type="letter", conversation_id=mid, ref_to_message_id=None,
            letter_number=f"นร 0100/{tag}{i}", letter_date=now.date(), subject="ขอเชิญประชุม", speed="normal",
            secrecy="normal", channel="native", received_sha256=hashlib.sha256(body + mid.encode()).digest(),
            received=body, forwarded=body, evidence=None, receipt=b"<Receipt/>", accepted_at=now,
            expires_at=now + dt.timedelta(days=3),
            deliveries=[NewDelivery(uuid.uuid4(), "1550100000", "pull", "inbox"),
                        NewDelivery(uuid.uuid4(), "4000000000", "push", "queued")],
            audit={"message_id": mid, "type": "letter", "channel": "native", "recipients": ["1550100000"]}))
    return out


async def run(dsn: str, batches: int, size: int) -> dict[str, float]:
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    body = os.urandom(2500).hex().encode()  # a 5 kB envelope
    wall = {"arrays": 0.0, "composite": 0.0}
    encode = {"arrays": 0.0, "composite": 0.0}
    try:
        async with pool.acquire() as conn:
            for n in range(batches + 1):  # the first round warms both statements up and is not counted
                for form in (("arrays", "composite") if n % 2 else ("composite", "arrays")):
                    batch = make_batch(f"{form}{n}", size, body)
                    t0, c0 = time.perf_counter(), time.process_time()
                    if form == "arrays":
                        rows = await conn.fetch(ARRAYS_SQL, *_arrays_args(batch))
                        assert all(r["pk"] is not None for r in rows), "the old form inserted nothing"
                    else:
                        assert all(isinstance(pk, int) for pk in await insert_many(conn, batch))
                    if n:
                        wall[form] += time.perf_counter() - t0
                        encode[form] += time.process_time() - c0
            stored = await conn.fetchval("SELECT count(*) FROM messages")
            assert stored == 2 * (batches + 1) * size, stored
    finally:
        await pool.close()
    letters = batches * size
    return {"letters_per_s_arrays": letters / wall["arrays"], "letters_per_s_composite": letters / wall["composite"],
            "client_cpu_us_per_letter_arrays": encode["arrays"] / letters * 1e6,
            "client_cpu_us_per_letter_composite": encode["composite"] / letters * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (20 batches)")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    a = ap.parse_args()
    batches = 20 if a.quick else a.batches
    with database("sqlforms") as (_admin, dsn):
        r = asyncio.run(run(dsn, batches, a.batch_size))
    print(figures(batches=batches, batch_size=a.batch_size, **r,
                  ratio=r["letters_per_s_composite"] / r["letters_per_s_arrays"]), flush=True)


if __name__ == "__main__":
    main()
