"""What one accepted letter costs PostgreSQL: CPU, WAL bytes, index entries, TOAST, audit rows.

Inserts N letters the way the service stores them (``gateway.storage.messages.insert_many``,
group commits of 8 from 4 tasks, two push deliveries each, durability as shipped: fsync and
synchronous commit on) with the bytes bench/submit.py --signed produces (a signed ~9 KB letter
received, the sealed one forwarded, its signed receipt), and reports per letter: PostgreSQL CPU (every postgres process),
the database client's CPU (this process: encoding the batches, the edits of the forwarded bytes, the
socket), WAL bytes (``pg_current_wal_lsn()`` before and after), the growth of each relation (heap, TOAST,
every index), and the audit rows written. Where the schema has the console's search table (migration
0019), the letters are then chained (the audit sealer) and the search table filled as its job does after
commit, and that CPU is reported on its own (``search_fill_us_per_letter``): off the request path, but
still PostgreSQL's work per letter.

    python bench/pg_letter.py [--quick] [--letters N] [--batch B] [--sql DDL]

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
from bench.submit import make_letters  # noqa: E402
from gateway.audit.sealer import ChainSealer  # noqa: E402
from gateway.core.clock import SystemClock  # noqa: E402
from gateway.core.receipts import submission_receipt  # noqa: E402
from gateway.core.signing import PkiSealer  # noqa: E402
from gateway.storage import messages, search  # noqa: E402
from gateway.storage.messages import NewDelivery, NewMessage  # noqa: E402
from pki.devca import init_dev_pki  # noqa: E402
from tests.support import CMI, KKN, OPM  # noqa: E402

_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
_SIZES = """SELECT c.relname, pg_relation_size(c.oid) AS size FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't')"""


def real_letters(count: int = 40) -> list[tuple[bytes, bytes, bytes]]:
    """(received, forwarded, receipt) of ``count`` letters signed, sealed and receipted as bench/submit.py sends them."""
    with tempfile.TemporaryDirectory(prefix="sgw-pgletter-") as tmp:  # (the dev PKI, gone afterwards)
        dev = init_dev_pki(Path(tmp), {OPM: "สำนักนายกรัฐมนตรี", CMI: "เชียงใหม่", KKN: "ขอนแก่น"})
        sealer = PkiSealer(dev.seal_signer())  # the gateway's: the receipt written as bytes, signed as written
        at = dt.datetime.now(dt.UTC)
        return [(raw, sealer.seal_envelope(raw),
                 sealer.sign_receipt(submission_receipt(message_id=str(i), sender=OPM,
                                                        sha256_hex=hashlib.sha256(raw).hexdigest(), at=at)))
                for i, raw in enumerate(make_letters(count, signer=dev.agency_signer(OPM)))]


def letters(n: int) -> list[NewMessage]:
    at = dt.datetime.now(dt.UTC)
    samples = real_letters()
    out = []
    for i in range(n):
        received, forwarded, receipt = samples[i % len(samples)]
        out.append(NewMessage(
            sender="0100000000", message_id=str(uuid.uuid4()), message_type="letter", conversation_id=None,
            ref_to_message_id=None, letter_number=f"นร 0105/ว {i}", letter_date=at.date(),
            subject=f"ขอเชิญประชุมคณะกรรมการพัฒนาระบบสารบรรณอิเล็กทรอนิกส์ ครั้งที่ {i}", speed="urgent",
            secrecy="normal", channel="native", received_sha256=hashlib.sha256(received).digest(), received=received,
            forwarded=forwarded, evidence=None, receipt=receipt, accepted_at=at,
            expires_at=at + dt.timedelta(days=7),
            deliveries=[NewDelivery(uuid.uuid4(), r, "push", "queued") for r in ("5000000001", "4000000001")],
            audit={"message_id": "x", "type": "letter", "channel": "native", "recipients": ["a", "b"],
                   "sha256": "ab" * 32, "sealed": True, "signed": True, "signer": "CN=x"}))
    return out


async def run(dsn: str, n: int, batch: int = 8, tasks: int = 4, sql: str = "") -> dict[str, float]:
    pool = await asyncpg.create_pool(dsn, min_size=tasks, max_size=tasks)
    if sql:
        await pool.execute(sql)
    todo = letters(n)
    await messages.insert_many(pool, todo[:batch])  # warm the statement cache
    todo = todo[batch:]
    n = len(todo)
    chunks = iter([todo[i:i + batch] for i in range(0, n, batch)])
    async with pool.acquire() as conn:
        sizes0 = dict(await conn.fetch(_SIZES))
        lsn0 = await conn.fetchval(_LSN)
        audit0 = await conn.fetchval("SELECT count(*) FROM audit_events")
    cpu0 = await postgres_cpu(dsn)

    async def worker() -> None:
        for chunk in chunks:
            await messages.insert_many(pool, chunk)

    c0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    client_us = (time.process_time() - c0) / n * 1e6
    cpu1 = await postgres_cpu(dsn)
    async with pool.acquire() as conn:
        wal = await conn.fetchval(_LSN) - lsn0
        sizes1 = dict(await conn.fetch(_SIZES))
        audit = await conn.fetchval("SELECT count(*) FROM audit_events") - audit0
        toast_of = dict(await conn.fetch("SELECT t.relname, c.relname FROM pg_class c JOIN pg_class t "
                                         "ON t.oid = c.reltoastrelid WHERE c.relname IN ('messages', 'deliveries')"))
        indexes = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename IN ('messages', 'deliveries', "
                                      "'audit_events')")
        fill_us = float("nan")
        if await conn.fetchval("SELECT to_regproc('message_search_fill') IS NOT NULL"):
            sealer = ChainSealer(pool, clock=SystemClock())
            while (await sealer.seal_once()).more:
                pass
            await sealer.seal_once()
            f0 = await postgres_cpu(dsn)
            await search.fill(pool)
            f1 = await postgres_cpu(dsn)
            if f0 is not None and f1 is not None:
                fill_us = (f1 - f0) / n * 1e6
    await pool.close()
    grown = {k: (sizes1.get(k, 0) - sizes0.get(k, 0)) / n for k in sizes1}
    for name, per in sorted(grown.items(), key=lambda kv: -kv[1])[:14]:
        if per > 0:
            print(f"  {toast_of.get(name, name):36s} {per:8.0f} bytes per letter")
    return {"pg_cpu_us": (cpu1 - cpu0) / n * 1e6 if cpu0 is not None and cpu1 is not None else float("nan"),
            "wal_bytes": float(wal) / n, "audit_rows": audit / n, "indexes": indexes,
            "heap_and_index_bytes": sum(v for k, v in grown.items() if not k.startswith("pg_toast")),
            "toast_bytes": sum(v for k, v in grown.items() if k.startswith("pg_toast")), "fill_us": fill_us,
            "client_us": client_us}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--sql", default="", help="statements run after the migrations (to measure a variant)")
    ap.add_argument("--batch", type=int, default=8,
                    help="letters per group commit (bench/submit.py at 8 in flight on 2 processes: ~2)")
    args = ap.parse_args()
    n = args.letters or (800 if args.quick else 4000)
    with database("pgletter") as (_admin, dsn):
        f = asyncio.run(run(dsn, n, batch=args.batch, sql=args.sql))
    print(figures(letters=n, batch=args.batch, postgres_cpu_us_per_letter=f["pg_cpu_us"],
                  client_cpu_us_per_letter=f["client_us"], wal_bytes_per_letter=f["wal_bytes"],
                  toast_bytes_per_letter=f["toast_bytes"], heap_and_index_bytes_per_letter=f["heap_and_index_bytes"],
                  audit_rows_per_letter=f["audit_rows"], indexes_on_hot_tables=f["indexes"],
                  search_fill_us_per_letter=f["fill_us"]))


if __name__ == "__main__":
    main()
