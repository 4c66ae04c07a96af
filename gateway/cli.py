"""``gateway``: a thin command line over the library.

Library errors become one readable line on stderr and a non-zero exit; the
library never imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.errors import GatewayError


def _settings(args) -> "Settings":
    from gateway.settings import Settings

    overrides = {}
    for name in ("host", "port", "data_dir", "directory_path", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings.from_env(**overrides)


# ---------------------------------------------------------------------------- serve


async def _serve(args) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.logging import configure

    settings = _settings(args)
    if args.no_dispatch:
        from dataclasses import replace

        settings = replace(settings, dispatch=replace(settings.dispatch, enabled=False))
    configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024, reuse_address=True)
    await site.start()
    base = settings.base_url
    print(f"Saraban gateway listening on {base}", flush=True)
    print(f"  readiness: {base}/readyz   API: {base}/v1/openapi.json", flush=True)
    print("  send a first letter (another terminal):\n"
          f"    .venv/bin/gateway letter send --url {base} --token dev-token-opm --from 0100000000 "
          "--to 1550100000 --subject 'ทดสอบการส่งหนังสือ'\n"
          f"    .venv/bin/gateway inbox list --url {base} --token dev-token-cmi", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


# ---------------------------------------------------------------------------- db


@asynccontextmanager
async def _exchange(args):
    from gateway import db
    from gateway.app import build_exchange
    from gateway.clock import SystemClock
    from gateway.directory import Directory
    from gateway.metrics import Metrics
    from gateway.sealing import DigestOnlySealer

    settings = _settings(args)
    dsn = settings.database_url or await asyncio.to_thread(db.start_embedded, settings.data_dir)
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        yield settings, pool, build_exchange(
            settings=settings, pool=pool, directory=Directory.load(settings.directory_path),
            sealer=DigestOnlySealer(), clock=SystemClock(), metrics=Metrics(), http=None)
    finally:
        await pool.close()


async def _db_migrate(args) -> int:
    from gateway import db

    async with _exchange(args) as (_, pool, _x):
        async with pool.acquire() as conn:
            applied = await db.migrate(conn)
    print(f"migrations applied: {applied or 'none (schema current)'}")
    return 0


async def _deliveries_list(args) -> int:
    from gateway.storage import deliveries

    async with _exchange(args) as (_, pool, _x):
        rows = await deliveries.listing(pool, status=args.status, recipient=args.recipient, limit=args.limit)
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False, indent=1))
        return 0
    print(f"{'delivery id':36}  {'recipient':10}  {'status':10}  {'tries':>5}  message id / last error")
    for r in rows:
        print(f"{r['id']!s:36}  {r['recipient']:10}  {r['status']:10}  {r['attempts']:>5}  {r['message_id']}"
              + (f"  ({r['last_error']})" if r["last_error"] else ""))
    return 0


async def _deliveries_requeue(args) -> int:
    import getpass

    async with _exchange(args) as (_, _pool, exchange):
        for raw in args.delivery_ids:
            await exchange.requeue(uuid.UUID(raw), actor=f"operator:{getpass.getuser()}")
            print(f"requeued {raw}")
    return 0


# ---------------------------------------------------------------------------- letters


def _build_letter(args) -> bytes:
    from gateway.clock import BANGKOK
    from gateway.envelope import (Attachment, Envelope, Header, Letter, MessageType, Secrecy, Speed,
                                  build_envelope)

    now = dt.datetime.now(BANGKOK)
    attachments = []
    for i, path in enumerate(args.pdf or [], start=1):
        p = Path(path)
        attachments.append(Attachment(id=f"att-{i}", file_name=p.name, mime_type="application/pdf",
                                      content=p.read_bytes(), role="main" if i == 1 else "enclosure"))
    env = Envelope(
        header=Header(message_id=args.message_id or str(uuid.uuid4()), message_type=MessageType.LETTER,
                      created_at=now, sender=args.sender, recipients=tuple(args.to)),
        body=Letter(number=args.number or f"ทดสอบ {now:%H%M%S}", date=now.date(), subject=args.subject,
                    addressee=args.addressee, speed=Speed(args.speed), secrecy=Secrecy(args.secrecy),
                    signer_name=args.signer_name, signer_position=args.signer_position),
        attachments=tuple(attachments),
    )
    return build_envelope(env)


async def _letter_send(args) -> int:
    import aiohttp

    data = _build_letter(args)
    headers = {"Content-Type": "application/xml", "Authorization": f"Bearer {args.token}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{args.url.rstrip('/')}/v1/messages", data=data, headers=headers) as r:
            body = await r.read()
            if r.status >= 400:
                print(body.decode("utf-8", "replace"), file=sys.stderr)
                return 1
    print(f"HTTP {r.status}: receipt follows", file=sys.stderr)
    sys.stdout.buffer.write(body + b"\n")
    return 0


async def _inbox_list(args) -> int:
    import aiohttp

    headers = {"Authorization": f"Bearer {args.token}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{args.url.rstrip('/')}/v1/inbox", headers=headers) as r:
            body = await r.json()
            if r.status >= 400:
                print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
                return 1
    print(json.dumps(body, ensure_ascii=False, indent=1))
    return 0


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway", description="Saraban gateway: official letters between agencies")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--data-dir", type=Path, help="state directory (GATEWAY_DATA_DIR)")
        sp.add_argument("--directory", dest="directory_path", type=Path, help="agency directory JSON")
        sp.add_argument("--database-url", help="PostgreSQL URL (GATEWAY_DATABASE_URL)")

    s = sub.add_parser("serve", help="run the gateway (HTTP API and dispatcher)")
    common(s)
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--no-dispatch", action="store_true", help="accept only; run no dispatcher workers")
    s.set_defaults(func=_serve)

    d = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    m = d.add_parser("migrate", help="apply pending migrations")
    common(m)
    m.set_defaults(func=_db_migrate)

    dl = sub.add_parser("deliveries", help="inspect and requeue deliveries").add_subparsers(
        dest="deliveries_command", required=True)
    ls = dl.add_parser("list", help="list deliveries")
    common(ls)
    ls.add_argument("--status", choices=["queued", "sending", "retry_wait", "inbox", "delivered", "dead",
                                         "withdrawn"])
    ls.add_argument("--recipient")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_deliveries_list)
    rq = dl.add_parser("requeue", help="requeue dead or waiting deliveries")
    common(rq)
    rq.add_argument("delivery_ids", nargs="+")
    rq.set_defaults(func=_deliveries_requeue)

    lt = sub.add_parser("letter", help="letters").add_subparsers(dest="letter_command", required=True)
    sd = lt.add_parser("send", help="build an envelope from fields and PDFs, submit it, print the receipt")
    sd.add_argument("--url", default="http://127.0.0.1:8443")
    sd.add_argument("--token", required=True, help="development bearer token of the sending agency")
    sd.add_argument("--from", dest="sender", required=True, help="sending agency code")
    sd.add_argument("--to", action="append", required=True, help="recipient agency code (repeatable)")
    sd.add_argument("--subject", required=True)
    sd.add_argument("--number", help="letter number (ที่)")
    sd.add_argument("--addressee", default="ผู้ว่าราชการจังหวัด")
    sd.add_argument("--speed", default="normal", choices=["normal", "urgent", "very-urgent", "most-urgent"])
    sd.add_argument("--secrecy", default="normal", choices=["normal", "confidential", "secret"])
    sd.add_argument("--signer-name", default="นายทดสอบ ระบบ")
    sd.add_argument("--signer-position", default="ปลัดสำนักนายกรัฐมนตรี")
    sd.add_argument("--pdf", action="append", help="PDF file; the first is the main letter (repeatable)")
    sd.add_argument("--message-id")
    sd.set_defaults(func=_letter_send)

    ib = sub.add_parser("inbox", help="pull inbox").add_subparsers(dest="inbox_command", required=True)
    il = ib.add_parser("list", help="list the calling agency's inbox")
    il.add_argument("--url", default="http://127.0.0.1:8443")
    il.add_argument("--token", required=True)
    il.set_defaults(func=_inbox_list)

    from gateway.cli_audit import add_commands

    add_commands(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(args.func(args)) or 0
    except GatewayError as exc:
        print(f"gateway: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        print(f"gateway: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
