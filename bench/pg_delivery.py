"""What delivering one letter costs PostgreSQL: claims and outcomes only, against a real embedded server.

Stores N letters first (outside the measurement: two push deliveries each, as bench/pg_letter.py stores
them), then drives the delivery side the way the dispatcher does, with no network and no signing in
the way: two workers each claim up to 64 due deliveries at a time (``claim_due``, lease 60 s), and every
claimed delivery is recorded delivered by ``transitions.apply`` in group commits of ``--batch``
(``--in-flight`` at a time per worker: the dispatcher's recorder writes one at a time). A letter's
delivery makes a delivery receipt back to the sender (a message with one push delivery, the same
signed bytes the gateway makes, signed once here the way it signs them);
those receipt deliveries are claimed and delivered in turn. So each letter costs four claims, four
outcomes and two receipt messages, as in bench/e2e.py. Durability as shipped (fsync, synchronous commit).

Per letter: PostgreSQL CPU (every postgres process), the client's CPU (this process), WAL bytes
(``pg_current_wal_lsn()`` before and after), delivery row updates and how many were HOT
(``pg_stat_user_tables``), and the growth of the relations that grew most.

Each ``apply_delivery_transitions`` call costs PostgreSQL a fixed share (its statements, the commit)
besides its rows: ``--batch 4`` against ``--batch 32`` shows it. ``--no-receipts`` leaves the delivery
receipts out (the letter's own two deliveries alone).

    python bench/pg_delivery.py [--quick] [--letters N] [--batch B] [--in-flight K] [--no-receipts] [--sql DDL]
                                [--statements N] [--own-pool]

Prints its figures last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures, postgres_cpu  # noqa: E402
from bench.pg_letter import letters  # noqa: E402
from gateway.core.receipts import delivery_receipt_envelope  # noqa: E402
from gateway.core.signing import PkiSealer  # noqa: E402
from gateway.delivery.dispatcher import share_digests  # noqa: E402
from gateway.storage import deliveries, messages, transitions  # noqa: E402
from gateway.storage.deliveries import ClaimedDelivery  # noqa: E402
from gateway.storage.messages import NewDelivery, NewMessage  # noqa: E402
from gateway.storage.transitions import Transition  # noqa: E402
from pki.devca import init_dev_pki  # noqa: E402
from tests.support import CMI, KKN, OPM  # noqa: E402

_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
_SIZES = """SELECT c.relname, pg_relation_size(c.oid) AS size FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't')"""
_UPDATES = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'deliveries'"
_LEASE = dt.timedelta(seconds=60)
_STATEMENTS = """SELECT calls, total_exec_time + total_plan_time AS ms, rows, toplevel,
                        regexp_replace(left(query, 140), '\\s+', ' ', 'g') AS query
                 FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                 ORDER BY ms DESC LIMIT $1"""


def signed_receipt() -> tuple[bytes, bytes]:
    """(receipt envelope, its signed bytes): one delivery receipt as the gateway makes it (written as bytes,
    signed as written: gateway.core.signing.PkiSealer, pki.receipt_bytes)."""
    with tempfile.TemporaryDirectory(prefix="sgw-pgdelivery-pki-") as tmp:
        dev = init_dev_pki(Path(tmp), {OPM: "สำนักนายกรัฐมนตรี", CMI: "เชียงใหม่", KKN: "ขอนแก่น"})
        _, env = delivery_receipt_envelope(delivery_id=uuid.uuid4(), message_id=str(uuid.uuid4()),
                                           conversation_id=None, sender=OPM, recipient=CMI, sha256_hex="ab" * 32,
                                           at=dt.datetime.now(dt.UTC))
        return env, PkiSealer(dev.seal_signer()).sign_receipt(env)


def transition(c: ClaimedDelivery, worker: str, env: bytes, signed: bytes, receipts: bool) -> Transition:
    now = dt.datetime.now(dt.UTC)
    receipt_message = None
    if c.message_type != "receipt" and receipts:
        receipt_message = NewMessage(
            sender=c.recipient, message_id=str(uuid.uuid4()), message_type="receipt", conversation_id=None,
            ref_to_message_id=c.message_id, letter_number=None, letter_date=None, subject=None, speed=None,
            secrecy=None, channel="gateway", received_sha256=hashlib.sha256(env).digest(), received=env,
            forwarded=signed, evidence=b"<ack/>", receipt=signed, accepted_at=now,
            expires_at=now + dt.timedelta(days=7),
            deliveries=[NewDelivery(uuid.uuid4(), c.sender, "push", "queued")],
            audit={"kind": "delivery receipt", "for_delivery": str(c.id), "message_id": c.message_id})
    return Transition(delivery_id=c.id, outcome="delivered", at=now, message_pk=c.message_pk,
                      recipient=c.recipient, actor="gateway",
                      details={"recipient": c.recipient, "sha256": c.forwarded_sha256.hex()}, worker=worker,
                      attempt=c.attempts, started_at=now, reset_destination=True,
                      receipt=signed if receipt_message is not None else b"",
                      ack=b"<ack/>", receipt_message=receipt_message)


async def deliver_all(pool: asyncpg.Pool, *, workers: int, batch: int, in_flight: int, env: bytes, signed: bytes,
                      receipts: bool) -> int:
    """Claim and record delivered until nothing is due; returns the deliveries recorded."""
    done = 0

    async def worker(name: str) -> None:
        nonlocal done
        idle = 0
        sem = asyncio.Semaphore(in_flight)

        async def record(chunk: list[Transition]) -> None:
            async with sem:
                applied = await transitions.apply(pool, chunk)
                assert all(applied), applied

        while idle < 3:
            claimed = await deliveries.claim_due(pool, now=dt.datetime.now(dt.UTC), limit=64, lease=_LEASE,
                                                 worker=name)
            if not claimed:
                idle += 1
                await asyncio.sleep(0.02)
                continue
            idle = 0
            share_digests(claimed)  # as the dispatcher does: a letter's deliveries claimed together hash it once
            ts = [transition(c, name, env, signed, receipts) for c in claimed]
            chunks = [ts[i:i + batch] for i in range(0, len(ts), batch)]
            await asyncio.gather(*(record(ch) for ch in chunks))
            done += len(claimed)

    await asyncio.gather(*(worker(f"bench-{i}") for i in range(workers)))
    return done


async def _statements_reset(conn: asyncpg.Connection) -> bool:
    """Reset pg_stat_statements (when the server loads it: shared_preload_libraries); whether it can."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    except asyncpg.PostgresError:
        return False
    return True


async def run(dsn: str, n: int, batch: int, sql: str, *, in_flight: int = 1, receipts: bool = True,
              statements: int = 0, own_pool: bool = False) -> dict[str, float]:
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
    if sql:
        await pool.execute(sql)
    env, signed = signed_receipt()
    todo = letters(n + 8)
    # warm every connection's statements on 8 letters delivered outside the window
    await messages.insert_many(pool, todo[:8])
    warm = await deliver_all(pool, workers=2, batch=batch, in_flight=in_flight, env=env, signed=signed,
                             receipts=receipts)
    # the letters stored through connections of their own with --own-pool: the window's backends then do
    # the warm-up and the window only (a per-process profiler such as callgrind reads them whole), their
    # plans made as here and in bench/e2e.py, on the tables as the warm-up found them
    store = await asyncpg.create_pool(dsn, min_size=4, max_size=4) if own_pool else pool
    for i in range(8, len(todo), 8):
        await messages.insert_many(store, todo[i:i + 8])
    if store is not pool:
        await store.close()
    async with pool.acquire() as conn:
        await conn.execute("CHECKPOINT")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        sizes0 = dict(await conn.fetch(_SIZES))
        lsn0 = await conn.fetchval(_LSN)
        upd0 = await conn.fetchrow(_UPDATES)
        statements = statements if statements and await _statements_reset(conn) else 0
    cpu0 = await postgres_cpu(dsn)
    c0, t0 = time.process_time(), time.perf_counter()
    recorded = await deliver_all(pool, workers=2, batch=batch, in_flight=in_flight, env=env, signed=signed,
                             receipts=receipts)
    client_s, wall = time.process_time() - c0, time.perf_counter() - t0
    cpu1 = await postgres_cpu(dsn)
    conns = [await pool.acquire() for _ in range(pool.get_max_size())]
    for c in conns:  # every backend's pending table counts, flushed
        await c.execute("SELECT pg_stat_force_next_flush()")
        await c.execute("SELECT 1")
    for c in conns:
        await pool.release(c)
    await asyncio.sleep(0.2)
    async with pool.acquire() as conn:
        wal = await conn.fetchval(_LSN) - lsn0
        sizes1 = dict(await conn.fetch(_SIZES))
        upd1 = await conn.fetchrow(_UPDATES)
        if statements:  # (wall time in the server, planning included: nested statements too with track = all)
            for r in await conn.fetch(_STATEMENTS, statements):
                print(f"  {r['ms'] * 1000 / n:7.0f} us/letter {r['calls'] / n:6.2f} calls/letter "
                      f"{'top ' if r['toplevel'] else 'nest'} {r['query']}")
        left = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status <> 'delivered'")
        toast_of = dict(await conn.fetch("SELECT t.relname, 'toast of ' || c.relname FROM pg_class c JOIN pg_class t "
                                         "ON t.oid = c.reltoastrelid WHERE c.relkind = 'r'"))
    await pool.close()
    grown = {k: (sizes1.get(k, 0) - sizes0.get(k, 0)) / n for k in sizes1}
    for name, per in sorted(grown.items(), key=lambda kv: -kv[1])[:14]:
        if per > 0:
            print(f"  {toast_of.get(name, name):36s} {per:8.0f} bytes per letter")
    upd = upd1["n_tup_upd"] - upd0["n_tup_upd"]
    hot = upd1["n_tup_hot_upd"] - upd0["n_tup_hot_upd"]
    return {"pg_cpu_us": (cpu1 - cpu0) / n * 1e6 if cpu0 is not None and cpu1 is not None else float("nan"),
            "client_us": client_s / n * 1e6, "wal_bytes": float(wal) / n, "deliveries": recorded / n,
            "updates": upd / n, "hot": hot / n, "left": left, "warm": warm, "per_s": n / wall,
            "bytes": sum(grown.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--batch", type=int, default=20, help="outcomes per group commit (bench/e2e.py --quick: ~20)")
    ap.add_argument("--in-flight", type=int, default=1,
                    help="group commits in flight per worker (the dispatcher's recorder: 1; 2 before)")
    ap.add_argument("--no-receipts", action="store_true",
                    help="no delivery receipts: what the letter's own two deliveries cost")
    ap.add_argument("--sql", default="", help="statements run after the migrations (to measure a variant)")
    ap.add_argument("--statements", type=int, default=0, metavar="N",
                    help="print the N costliest statements of the window from pg_stat_statements (a server that "
                         "preloads it, GATEWAY_DATABASE_URL; pg_stat_statements.track = all shows the nested ones)")
    ap.add_argument("--own-pool", action="store_true",
                    help="store the letters through connections of their own: the window's backends do only the "
                         "warm-up and the window (for per-process profilers: callgrind)")
    args = ap.parse_args()
    n = args.letters or (600 if args.quick else 3000)
    with database("pgdelivery") as (_admin, dsn):
        f = asyncio.run(run(dsn, n, args.batch, args.sql, in_flight=args.in_flight, receipts=not args.no_receipts,
                         statements=args.statements, own_pool=args.own_pool))
    print(figures(letters=n, batch=args.batch, in_flight=args.in_flight, deliveries_per_letter=f["deliveries"],
                  letters_per_s=f["per_s"],
                  postgres_cpu_us_per_letter=f["pg_cpu_us"], client_cpu_us_per_letter=f["client_us"],
                  wal_bytes_per_letter=f["wal_bytes"], bytes_grown_per_letter=f["bytes"],
                  delivery_updates_per_letter=f["updates"], hot_updates_per_letter=f["hot"],
                  not_delivered=f["left"]))


if __name__ == "__main__":
    main()
