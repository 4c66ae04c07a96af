"""Accepting a circular letter to a distribution list of thousands of offices, on a real database.

In process (intake with the list look-up, expansion against the directory, one transaction with
the message, every delivery in one statement and the frozen expansion), unsigned and unsealed so
that the figure is the list's own cost. Each run is a new letter to the same list.

Usage: python bench/lists_accept.py [--quick] [--offices N] [--runs R]
Prints ``offices= runs= accept_median_s= accept_max_s= expand_ms= progress_ms= page_ms=`` last
(progress: the sender's summary of one letter's deliveries; page: 100 recipients from the middle).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
import uuid

from adapters.pull import PullAdapter
from bench.common import database
from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.core.envelope_builder import build_envelope
from gateway.core.lists import DistributionList, Rule, expand
from gateway.core.metrics import Metrics
from gateway.core.sealing import DigestOnlySealer
from gateway.exchange.accept import Acceptance
from gateway.exchange.stamps import Stamps
from gateway.intake.checks import Intake
from gateway.storage import db
from gateway.storage import lists as lists_store
from tests.support import OPM, letter

HALLS = DistributionList("offices", "สำนักงานทุกแห่ง", None, Rule("ministry_provincial_office"))


def directory(n: int) -> Directory:
    def agency(code: str, kind: str) -> dict:
        return {"code": code, "name_th": f"หน่วยงาน {code}", "name_en": f"Agency {code}", "kind": kind,
                "province": "50", "route": {"kind": "pull"}}
    return Directory.from_dict({"agencies": [agency(OPM, "ministry")]
                                + [agency(f"15{i:06d}00", "ministry_provincial_office") for i in range(1, n + 1)]})


async def run(dsn: str, offices: int, runs: int) -> tuple[list[float], float, float, float]:
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    try:
        d = directory(offices)
        clock = FakeClock()
        await lists_store.upsert(pool, [HALLS], at=clock.now())
        accept = Acceptance(
            pool=pool, directory=d, intake=Intake(d, max_bytes=64 << 20, lists=lists_store.source(pool)),
            sealer=DigestOnlySealer(), adapters={"pull": PullAdapter()}, ttl_s=86400.0, clock=clock,
            metrics=Metrics(), stamps=Stamps(pool=pool, directory=d, clock=clock, enabled=False),
            admission=None, wake=lambda: None, gateway_code="0000000000")
        t0 = time.perf_counter()
        expand(HALLS, d)
        expand_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(runs + 1):  # the first warms the connection and the plan
            env = letter(recipients=(), message_id=str(uuid.uuid4()))
            data = build_envelope(dataclasses.replace(env, header=dataclasses.replace(
                env.header, recipient_lists=("offices",))))
            t0 = time.perf_counter()
            result = await accept.submit(data, agency=OPM)
            times.append(time.perf_counter() - t0)
        n = await pool.fetchval("SELECT count(*) FROM deliveries")
        assert n == offices * (runs + 1), n
        await lists_store.progress(pool, result.message_pk)
        t0 = time.perf_counter()
        progress = await lists_store.progress(pool, result.message_pk)
        progress_ms = (time.perf_counter() - t0) * 1000
        assert progress.total == offices
        t0 = time.perf_counter()
        page = await lists_store.recipients_page(pool, result.message_pk, after=f"15{offices // 2:06d}00")
        page_ms = (time.perf_counter() - t0) * 1000
        assert len(page.items) == min(100, offices - offices // 2)
        return times[1:], expand_ms, progress_ms, page_ms
    finally:
        await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a small, fast run")
    ap.add_argument("--offices", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    offices = args.offices or (2000 if args.quick else 8000)
    runs = args.runs or (2 if args.quick else 5)
    with database("lists") as (_admin, dsn):
        times, expand_ms, progress_ms, page_ms = asyncio.run(run(dsn, offices, runs))
    print(f"offices={offices} runs={runs} accept_median_s={statistics.median(times):.3f} "
          f"accept_max_s={max(times):.3f} expand_ms={expand_ms:.1f} progress_ms={progress_ms:.1f} "
          f"page_ms={page_ms:.1f}")


if __name__ == "__main__":
    main()
