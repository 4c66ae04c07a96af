"""What a Prometheus scrape costs the database: the shared-state read of ``/metrics`` on a large queue.

Seeds (in SQL, straight into the tables the gauges read) a backlog of open deliveries spread over
many destinations, a much larger history of delivered ones (which the partial index leaves out),
failing destinations and unsealed audit events, then times :func:`gateway.storage.gauges.read`
(uncached, as every 5 s per process), the rendering of its exposition text (once per reading), and a
scrape between two readings (the process's counters rendered, the state's text reused).

    .venv/bin/python bench/metrics.py [--quick]

Prints figures last on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures, percentile  # noqa: E402
from gateway.core.metrics import Metrics  # noqa: E402
from gateway.storage import db, gauges  # noqa: E402

SEED = """
INSERT INTO messages (sender, message_id, message_type, received_sha256, received, forwarded, receipt, accepted_at)
SELECT '0100000000', 'm-' || i, 'letter', '\\x00', '\\x00', '\\x00', '\\x00', $1::timestamptz - i * interval '1 second'
FROM generate_series(1, $2::int) i;

"""
DELIVERIES = """
INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at)
SELECT gen_random_uuid(), m.pk, lpad((m.pk % $2)::text, 10, '0'), 'push', $3::delivery_status, $1, m.accepted_at,
       $1::timestamptz + interval '7 days'
FROM messages m WHERE m.pk > $4 AND m.pk <= $5
"""


async def seed(dsn: str, *, open_: int, delivered: int, destinations: int, failing: int, unsealed: int) -> None:
    now = dt.datetime.now(dt.UTC)
    conn = await asyncpg.connect(dsn)
    try:
        total = open_ + delivered
        await conn.execute(SEED.replace("$1::timestamptz", f"'{now.isoformat()}'::timestamptz")
                           .replace("$2::int", str(total)))
        states = ("queued", "retry_wait", "inbox", "dead")
        per = open_ // len(states)
        for i, state in enumerate(states):
            await conn.execute(DELIVERIES, now, destinations, state, i * per, (i + 1) * per)
        await conn.execute(DELIVERIES, now, destinations, "delivered", open_, total)
        await conn.execute(
            "INSERT INTO destinations (agency, consecutive_failures, failing_since, backoff_until, updated_at) "
            "SELECT lpad(i::text, 10, '0'), 5, $1::timestamptz - interval '1 hour', $1::timestamptz + "
            "interval '1 minute', $1 FROM generate_series(1, $2::int) i", now, failing)
        await conn.execute("INSERT INTO audit_events (at, actor, kind) SELECT $1, 'bench', 'bench' "
                           "FROM generate_series(1, $2::int)", now, unsealed)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def measure(dsn: str, rounds: int) -> tuple[list[float], list[float], list[float], int]:
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        reads, renders, size = [], [], 0
        metrics = Metrics()
        for _ in range(rounds):
            t0 = time.perf_counter()
            state = await gauges.read(pool, dt.datetime.now(dt.UTC), timeout_s=30)
            reads.append((time.perf_counter() - t0) * 1000)
            assert state.database_up
            t0 = time.perf_counter()
            size = len(metrics.render(state))
            renders.append((time.perf_counter() - t0) * 1000)
        cached = []
        for _ in range(rounds):  # the scrapes in between two readings: counters rendered, state text reused
            t0 = time.perf_counter()
            metrics.render(state)
            cached.append((time.perf_counter() - t0) * 1000)
        return reads, renders, cached, size
    finally:
        await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    open_, delivered, destinations, failing, unsealed, rounds = (
        (20_000, 100_000, 1_000, 50, 1_000, 20) if args.quick else (200_000, 2_000_000, 8_000, 500, 50_000, 50))
    with database("metrics") as (_admin, dsn):
        t0 = time.perf_counter()
        asyncio.run(seed(dsn, open_=open_, delivered=delivered, destinations=destinations, failing=failing,
                         unsealed=unsealed))
        seeded = time.perf_counter() - t0
        reads, renders, cached, size = asyncio.run(measure(dsn, rounds))
    print(f"seeded in {seeded:.1f} s; {rounds} uncached reads of the shared state")
    print(figures(open_deliveries=open_, delivered_history=delivered, destinations=destinations,
                  failing_destinations=failing, unsealed_events=unsealed,
                  read_p50_ms=round(percentile(reads, 50), 1), read_p99_ms=round(percentile(reads, 99), 1),
                  render_p50_ms=round(percentile(renders, 50), 1),
                  scrape_between_readings_p50_ms=round(percentile(cached, 50), 2), exposition_kib=round(size / 1024)))


if __name__ == "__main__":
    main()
