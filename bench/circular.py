"""A circular letter (หนังสือเวียน) to thousands of offices, with ordinary letters sent meanwhile.

A real ``gateway serve`` process on a real PostgreSQL; one aiohttp server on loopback (in this
process) answers for every office endpoint (``/office/<code>``, push, each acknowledging with a
DeliveryAck) and for the ordinary letters' recipient. The directory holds ``--offices`` generated
local administrations and a distribution list by rule (every local administration); one letter
to the list is submitted, then ``--ordinary`` letters to one other office are sent at 10/s while
the circular is being delivered.

Figures (last line): ``offices`` on the list; ``accepted_s`` the circular's submission (202, its
deliveries all in the database); ``delivered_s`` from that 202 until every office's delivery is
``delivered``; ``ordinary_p99_ms`` p99 over the ordinary letters of submission to arrival at their
office (the gateway's fairness: claimed before the circular's backlog); ``dead`` dead deliveries;
``duplicates`` an office given one letter under more than one delivery id.

Usage: python bench/circular.py [--quick] [--offices N] [--ordinary N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures, percentile  # noqa: E402
from gateway.core.clock import FakeClock
from gateway.core.envelope_builder import build_envelope
from gateway.core.lists import DistributionList, Rule
from gateway.storage import lists as lists_store
from tests.support import (
    KKN,
    OPM,
    TOKENS,
    GatewayProcess,
    delivery_ack,
    directory_dict,
    free_port,
    gateway_env,
)
from tests.support import letter as make_letter

LIST = DistributionList("local-all", "องค์กรปกครองส่วนท้องถิ่นทุกแห่ง", None, Rule("local_administration"))


class Offices:
    """Every office endpoint on one port: records (office, message) -> delivery ids and arrival times."""

    def __init__(self) -> None:
        self.by_pair: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.arrived: dict[str, float] = {}
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        delivery_id = request.headers["X-Saraban-Delivery-Id"]
        message_id = request.headers.get("X-Saraban-Message-Id", "")
        self.by_pair[(request.match_info["code"], message_id)].add(delivery_id)
        self.arrived.setdefault(message_id, time.monotonic())
        return web.Response(body=delivery_ack(delivery_id=uuid.UUID(delivery_id)), content_type="application/xml")

    def url(self, code: str) -> str:
        return f"http://127.0.0.1:{self.port}/office/{code}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/office/{code}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()


def directory_file(path: Path, offices: Offices, n: int) -> list[str]:
    data = directory_dict({KKN: {"kind": "push", "url": offices.url(KKN)}})
    codes = [f"97{i:08d}" for i in range(n)]
    data["agencies"] += [{"code": c, "name_th": f"องค์การบริหารส่วนตำบลทดสอบ {c}", "name_en": f"Test SAO {c}",
                          "kind": "local_administration", "parent": "1500000000", "generated": True,
                          "route": {"kind": "push", "url": offices.url(c)}} for c in codes]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return codes


async def count_delivered(conn: asyncpg.Connection, message_id: str) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT count(*) FILTER (WHERE d.status = 'delivered') AS done, "
                              "count(*) FILTER (WHERE d.status = 'dead') AS dead FROM deliveries d "
                              "JOIN messages m ON m.pk = d.message_pk WHERE m.message_id = $1", message_id)
    return row["done"], row["dead"]


async def run(dsn: str, n: int, ordinary: int, workdir: Path) -> dict[str, object]:
    offices = Offices()
    await offices.start()
    codes = directory_file(workdir / "directory.json", offices, n)
    port = free_port()
    env = gateway_env(database_url=dsn, directory=workdir / "directory.json", port=port, data_dir=workdir,
                      GATEWAY_LOG_LEVEL="warning", GATEWAY_RATE_PER_AGENCY="0", GATEWAY_VALIDATE_PDF="false")
    gw = GatewayProcess(env=env, port=port, log_path=workdir / "gateway.log").start()
    conn = await asyncpg.connect(dsn)
    try:
        await gw.wait_ready(timeout=120)
        await lists_store.upsert(conn, [LIST], at=FakeClock().now())
        headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
        env_ = make_letter(recipients=(), message_id="circular-1")
        circular = build_envelope(dataclasses.replace(env_, header=dataclasses.replace(
            env_.header, recipient_lists=(LIST.name,))))
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.post(f"{gw.url}/v1/messages", data=circular, headers=headers) as r:
                assert r.status == 202, await r.text()
            accepted = time.monotonic()
            sent: dict[str, float] = {}
            for i in range(ordinary):
                mid = f"ordinary-{i}"
                sent[mid] = time.monotonic()
                async with s.post(f"{gw.url}/v1/messages", headers=headers,
                                  data=build_envelope(make_letter(recipients=(KKN,), message_id=mid))) as r:
                    assert r.status == 202, await r.text()
                await asyncio.sleep(0.1)
        deadline = accepted + 600
        while True:
            done, dead = await count_delivered(conn, "circular-1")
            if done + dead >= n or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        delivered = time.monotonic()
        while len([m for m in sent if m in offices.arrived]) < ordinary and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        latencies = [(offices.arrived[m] - t) * 1000 for m, t in sent.items() if m in offices.arrived]
        duplicates = sum(1 for ids in offices.by_pair.values() if len(ids) > 1)
        reached = sum(1 for c in codes if offices.by_pair.get((c, "circular-1")))
        return {"offices": n, "accepted_s": accepted - t0, "delivered_s": delivered - accepted,
                "ordinary_p50_ms": percentile(latencies, 50), "ordinary_p99_ms": percentile(latencies, 99),
                "ordinary_lost": ordinary - len(latencies), "reached": reached, "dead": dead,
                "duplicates": duplicates}
    finally:
        await conn.close()
        gw.stop()
        if offices.runner is not None:
            await offices.runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 offices and 20 ordinary letters")
    ap.add_argument("--offices", type=int, default=8000)
    ap.add_argument("--ordinary", type=int, default=60)
    args = ap.parse_args()
    n, ordinary = (1000, 20) if args.quick else (args.offices, args.ordinary)
    workdir = Path(tempfile.mkdtemp(prefix="sgw-circular-", dir="/tmp"))
    with database("circular") as (_admin, dsn):
        out = asyncio.run(run(dsn, n, ordinary, workdir))
    print(f"gateway log: {workdir / 'gateway.log'}", file=sys.stderr)
    print(figures(**out))


if __name__ == "__main__":
    main()
