"""Hash-tree renewal of RFC 4998 Evidence Records over N letters, next to raw SHA-512 on the same machine.

Each letter has two archived objects as the gateway keeps them: its seal (the forwarded envelope, ~5 KB of
XML around base64 content) and its submission receipt (~1.5 KB). The run:

1. N letters inserted (COPY) with their ``message.accepted`` audit events; the audit chain sealed.
2. Every object time-stamped by the real job (:class:`gateway.audit.stamping.StampingJob`, 5000 letters per
   tree and token) against an in-process TSA (pyHanko's test TSA: the TSA's latency is not the subject).
3. SHA-256 declared weak: the real renewal (:func:`gateway.audit.renewal.renew`) re-hashes every object
   with SHA-512 (read from PostgreSQL, record so far rebuilt from the stored parts, ``H(H(d) || H(atsc))``,
   tree, one token per chunk, paths and watermark committed per chunk). Its MB/s counts the objects' bytes.
4. Raw SHA-512 (hashlib, one core) over the same number of bytes in objects of the same sizes.

Storage added per letter: the bytes of the paths (reduced hash trees) kept per object, for the initial
stamp and for the renewal, and each letter's share of the tokens.

    python bench/renewal.py            # 1,000,000 letters (about 6.5 GB of objects)
    python bench/renewal.py --quick    # 20,000 letters

The figures are printed last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.common import database, figures  # noqa: E402
from gateway.audit.renewal import RenewalPolicy, renew  # noqa: E402
from gateway.audit.sealer import ChainSealer, SealerSettings  # noqa: E402
from gateway.audit.stamping import StampingJob, StampSettings  # noqa: E402
from gateway.core.clock import SystemClock  # noqa: E402
from tests.audit.tsa_pki import Tsa, TsaRoot  # noqa: E402

SEAL_BYTES = 5000
RECEIPT_BYTES = 1500
POOL = base64.b64encode(os.urandom(3 * 1024 * 1024))  # content to slice from: base64, as a PDF inside XML


def _seal(i: int) -> bytes:
    head = (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope id="{i}"><env:Header><Subject>'
            f'หนังสือที่ {i}</Subject></env:Header><env:Body><Content>').encode()
    tail = b"</Content></env:Body></env:Envelope>"
    off = (i * 7919) % (len(POOL) - SEAL_BYTES)
    return head + POOL[off:off + SEAL_BYTES - len(head) - len(tail)] + tail


def _receipt(i: int) -> bytes:
    head = f'<Receipt id="r-{i}"><Digest>'.encode()
    off = (i * 104729) % (len(POOL) - RECEIPT_BYTES)
    return head + POOL[off:off + RECEIPT_BYTES - len(head) - 10] + b"</Digest/>"


async def populate(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        now = dt.datetime.now(dt.UTC)
        step = 20000
        for first in range(0, n, step):
            rows = [("0100000000", f"m-{i}", "letter", "native", hashlib.sha256(b"%d" % i).digest(), b"",
                     _seal(i), _receipt(i), now) for i in range(first, min(n, first + step))]
            await conn.copy_records_to_table(
                "messages", records=rows,
                columns=["sender", "message_id", "message_type", "channel", "received_sha256", "received",
                         "forwarded", "receipt", "accepted_at"])
        await conn.execute("INSERT INTO audit_events (at, actor, kind, message_pk) "
                           "SELECT accepted_at, 'bench', 'message.accepted', pk FROM messages ORDER BY pk")
    finally:
        await conn.close()


def raw_sha512(n_objects: int) -> tuple[float, int]:
    """MB/s of hashlib SHA-512 over n objects of the letters' sizes (seal and receipt alternating)."""
    objs = [_seal(i) for i in range(1000)] + [_receipt(i) for i in range(1000)]
    total = 0
    t0 = time.perf_counter()
    for k in range(n_objects):
        o = objs[(k % 1000) + (1000 if k % 2 else 0)]
        hashlib.sha512(o).digest()
        total += len(o)
    return total / 1e6 / (time.perf_counter() - t0), total


async def run(dsn: str, n: int, chunk: int) -> dict[str, object]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    clock = SystemClock()
    root = TsaRoot(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2060, 1, 1, tzinfo=dt.UTC))
    now = dt.datetime.now(dt.UTC)
    tsa = Tsa(root, now - dt.timedelta(days=1), now + dt.timedelta(days=3650), "Bench TSA")

    async def stamper(digest: bytes, alg: str) -> bytes:
        return tsa.stamp(digest, alg)

    try:
        t0 = time.perf_counter()
        await populate(dsn, n)
        t_pop = time.perf_counter() - t0
        print(f"{n} letters inserted in {t_pop:.0f} s", file=sys.stderr, flush=True)
        sealer = ChainSealer(pool, clock=clock, settings=SealerSettings(batch=50000))
        await sealer.seal_until(await pool.fetchval("SELECT max(seq) FROM audit_events"), timeout=3600)
        t0 = time.perf_counter()
        objects = await StampingJob(pool, clock=clock, stamper=stamper,
                                    settings=StampSettings(batch=5000)).stamp_all()
        t_stamp = time.perf_counter() - t0
        print(f"{objects} objects stamped in {t_stamp:.0f} s", file=sys.stderr, flush=True)
        initial = await pool.fetchrow("SELECT (SELECT coalesce(sum(octet_length(path)), 0) FROM er_item_chains) AS p, "
                                      "(SELECT sum(octet_length(token)) FROM er_stamps) AS t")

        def progress(phase: str, done: int, total: int) -> None:
            if done % (chunk * 20) == 0 or done == total:
                print(f"{phase} {done}/{total}", file=sys.stderr, flush=True)

        policy = RenewalPolicy(weak={"sha256": dt.datetime(2035, 1, 1, tzinfo=dt.UTC)}, alg="sha512", chunk=chunk)
        report = await renew(pool, clock=clock, stamper=stamper, policy=policy, progress=progress)
        after = await pool.fetchrow("SELECT (SELECT coalesce(sum(octet_length(path)), 0) FROM er_item_chains "
                                    "WHERE chain = 1) AS p, "
                                    "(SELECT sum(octet_length(token)) FROM er_stamps "
                                    "WHERE purpose = 'hash-tree-renewal') AS t")
        size = await pool.fetchval("SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['er_items', "
                                   "'er_item_chains', 'er_stamps', 'er_stamp_renewals']::regclass[]) c")
    finally:
        await pool.close()
    sha_mb_s, _ = raw_sha512(min(report.rehashed, 400000))
    renew_mb_s = report.bytes_hashed / 1e6 / report.seconds
    return {
        "letters": n, "objects": report.rehashed, "mb": round(report.bytes_hashed / 1e6),
        "renew_s": round(report.seconds, 1), "renew_mb_s": round(renew_mb_s, 1),
        "renew_objects_s": round(report.rehashed / report.seconds),
        "sha512_mb_s": round(sha_mb_s, 1), "renew_vs_sha512": round(renew_mb_s / sha_mb_s, 3),
        "stamp_objects_s": round(objects / t_stamp),
        "path_b_per_letter": round(initial["p"] / n), "renewal_path_b_per_letter": round(after["p"] / n),
        "token_b_per_letter": round((initial["t"] + after["t"]) / n, 2),
        "er_tables_b_per_letter": round(size / n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 letters")
    ap.add_argument("--letters", type=int, help="letters (default 1,000,000)")
    ap.add_argument("--chunk", type=int, default=5000, help="objects per renewal tree, token and commit")
    args = ap.parse_args()
    n = args.letters or (20000 if args.quick else 1_000_000)
    with database("renewal") as (_admin, dsn):
        result = asyncio.run(run(dsn, n, args.chunk))
    print(figures(**result))


if __name__ == "__main__":
    main()
