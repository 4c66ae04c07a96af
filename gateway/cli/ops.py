"""Operator commands: ``gateway db ...``, ``gateway deliveries ...``, ``gateway pki init-dev``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from gateway.cli import labels
from gateway.cli.common import connect, settings_from
from gateway.core.clock import SystemClock
from gateway.core.directory import Directory
from gateway.core.errors import GatewayError
from gateway.core.metrics import Metrics
from gateway.core.sealing import DigestOnlySealer
from gateway.core.settings import Settings
from gateway.exchange.service import Exchange
from gateway.http.services import build_services
from gateway.storage import db, deliveries
from pki.devca import init_dev_pki


@asynccontextmanager
async def _exchange(args: argparse.Namespace) -> AsyncIterator[tuple[Settings, asyncpg.Pool, Exchange]]:
    """The exchange service over a small pool, with no HTTP client (nothing is sent from here)."""
    settings, pool = await connect(args)
    try:
        yield settings, pool, build_services(
            settings=settings, pool=pool, directory=Directory.load(settings.directory_path),
            sealer=DigestOnlySealer(), clock=SystemClock(), metrics=Metrics(), http=None,
            worker="cli").exchange
    finally:
        await pool.close()


async def db_migrate(args: argparse.Namespace) -> int:
    async with _exchange(args) as (_, pool, _x):
        async with pool.acquire() as conn:
            applied = await db.migrate(conn)
    print(f"migrations applied: {applied or 'none (schema current)'}")
    return 0


async def deliveries_list(args: argparse.Namespace) -> int:
    async with _exchange(args) as (_, pool, _x):
        rows = await deliveries.listing(pool, status=args.status, recipient=args.recipient, limit=args.limit)
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print("ไม่มีรายการส่ง (no deliveries)")
        return 0
    header = ["รหัสการส่ง (delivery id)", "ผู้รับ (recipient)", "สถานะ (status)", "ครั้ง (tries)",
              "สร้างเมื่อ (created)", "รหัสข้อความ / ข้อผิดพลาด (message id / last error)"]
    lines = labels.table(header, [
        [str(r["id"]), r["recipient"], labels.status(r["status"]), str(r["attempts"]), labels.when(r["created_at"]),
         r["message_id"] + (f"  ({r['last_error']})" if r["last_error"] else "")] for r in rows])
    print("\n".join(lines))
    return 0


async def deliveries_requeue(args: argparse.Namespace) -> int:
    ids = []
    for raw in args.delivery_ids:  # all checked before any is requeued
        try:
            ids.append((raw, uuid.UUID(raw)))
        except ValueError:
            raise GatewayError(f"{raw!r} is not a delivery id (a UUID)", code="request.invalid",
                               field="delivery_ids") from None
    async with _exchange(args) as (_, _pool, exchange):
        for raw, delivery_id in ids:
            await exchange.operators.requeue(delivery_id, actor=f"operator:{getpass.getuser()}")
            print(f"requeued {raw}")
    return 0


async def pki_init_dev(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    directory = Directory.load(settings.directory_path)
    dev = await asyncio.to_thread(init_dev_pki, settings.pki_path,
                                  {a.code: a.name_th for a in directory.all()})
    print(f"development PKI in {dev.directory}")
    print(f"  trust anchor:     {dev.anchors}")
    print(f"  gateway seal:     {dev.seal_cert}")
    print(f"  TLS server:       {dev.tls_server_cert}")
    print(f"  agencies:         {len(dev.agencies)} (signing and TLS client certificates each)")
    return 0
