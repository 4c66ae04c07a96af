"""``gateway``: a thin command line over the library.

Library errors become one readable line on stderr and a non-zero exit; the
library never imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import signal
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.core.errors import GatewayError
from gateway.core.settings import Settings


def _settings(args) -> Settings:
    overrides = {}
    for name in ("host", "port", "data_dir", "directory_path", "database_url", "pki_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings.from_env(**overrides)


# ---------------------------------------------------------------------------- serve


async def _serve(args) -> int:
    from aiohttp import web

    from gateway.core.logging import configure
    from gateway.http.app import create_app

    settings = _settings(args)
    if args.workers is not None:
        from dataclasses import replace

        settings = replace(settings, workers=args.workers)
    if settings.workers > 1:
        return await _supervise(settings)
    if args.no_dispatch:
        from dataclasses import replace

        settings = replace(settings, dispatch=replace(settings.dispatch, enabled=False))
    configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    from gateway.core import appkeys as keys
    from gateway.core.signing import server_ssl_context

    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024, reuse_address=True,
                       reuse_port=settings.reuse_port or None,
                       ssl_context=server_ssl_context(settings, app[keys.TRUST]))
    await site.start()
    if settings.reuse_port:  # a worker under _supervise: the supervisor prints the banner
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
        return 0
    base = settings.base_url
    print(f"Saraban gateway listening on {base}", flush=True)
    print(f"  readiness: {base}/readyz   API: {base}/v1/openapi.json", flush=True)
    print("  send a first letter (another terminal; signed with the development PKI, mutual TLS):\n"
          f"    .venv/bin/gateway letter send --url {base} --from 0100000000 "
          "--to 1550100000 --subject 'ทดสอบการส่งหนังสือ'\n"
          f"    .venv/bin/gateway inbox list --url {base} --agency 1550100000\n"
          f"  console (หน้าจอเจ้าหน้าที่): {base}/console  (first user: .venv/bin/gateway users add admin --role admin)",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


async def _supervise(settings) -> int:
    """Run ``settings.workers`` worker processes on one port; restart any that dies.

    The embedded database (if used) is started here once, so workers share it
    and it outlives any one worker. Each worker is a full gateway (API and
    dispatchers); SKIP LOCKED claims make that safe without coordination.
    """
    import os
    import subprocess
    import time

    from gateway.storage import db

    dsn = settings.database_url or await asyncio.to_thread(db.start_embedded, settings.data_dir)
    env = dict(os.environ, GATEWAY_DATABASE_URL=dsn, GATEWAY_REUSE_PORT="1", GATEWAY_WORKERS="1",
               GATEWAY_HOST=settings.host, GATEWAY_PORT=str(settings.port),
               GATEWAY_DIRECTORY_PATH=str(settings.directory_path), GATEWAY_DATA_DIR=str(settings.data_dir))

    def spawn(i: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve"],
                                env=dict(env, GATEWAY_NODE_NAME=f"{os.uname().nodename}:w{i}"))

    procs = {i: spawn(i) for i in range(settings.workers)}
    print(f"Saraban gateway listening on {settings.base_url} ({settings.workers} worker processes)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    restarts: dict[int, float] = {}
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except TimeoutError:
            pass
        for i, p in list(procs.items()):
            if p.poll() is not None and not stop.is_set():
                # A worker died (OOM, crash): its leases expire and others take its work; start a new one,
                # at most once a second so a crash loop does not spin.
                if time.monotonic() - restarts.get(i, 0) > 1:
                    print(f"worker {i} exited with {p.returncode}; restarting", file=sys.stderr, flush=True)
                    restarts[i] = time.monotonic()
                    procs[i] = spawn(i)
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    return 0


# ---------------------------------------------------------------------------- db


@asynccontextmanager
async def _exchange(args):
    from gateway.core.clock import SystemClock
    from gateway.core.directory import Directory
    from gateway.core.metrics import Metrics
    from gateway.core.sealing import DigestOnlySealer
    from gateway.http.app import build_exchange
    from gateway.storage import db

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
    from gateway.storage import db

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


# ---------------------------------------------------------------------------- pki and receipts


async def _pki_init_dev(args) -> int:
    from gateway.core.directory import Directory
    from pki.devca import init_dev_pki

    settings = _settings(args)
    directory = Directory.load(settings.directory_path)
    dev = await asyncio.to_thread(init_dev_pki, settings.pki_path, {a.code: a.name_th for a in directory.all()})
    print(f"development PKI in {dev.directory}")
    print(f"  trust anchor:     {dev.anchors}")
    print(f"  gateway seal:     {dev.seal_cert}")
    print(f"  TLS server:       {dev.tls_server_cert}")
    print(f"  agencies:         {len(dev.agencies)} (signing and TLS client certificates each)")
    return 0


async def _envelope_check(args) -> int:
    from dataclasses import asdict

    from gateway.intake.offline import check_envelope

    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    report = check_envelope(data)
    if args.json:
        print(json.dumps({"ok": report.ok, "findings": [asdict(f) for f in report.findings],
                          "summary": report.summary}, ensure_ascii=False, indent=2))
        return 0 if report.ok else 1
    for f in report.findings:
        print(f"{f.code} at {f.field}: {f.reason}")
    if not report.ok:
        print(f"envelope INVALID ({len(report.findings)} fault{'s' if len(report.findings) > 1 else ''})")
        return 1
    s = report.summary
    print(f"envelope valid: {s['type']} {s['message_id']} from {s['sender']} to {', '.join(s['recipients'])}")
    if "number" in s:
        print(f"  ที่ {s['number']} ลงวันที่ {s['date_thai']}  เรื่อง {s['subject']}  ({s['speed']}, {s['secrecy']})")
    for a in s["attachments"]:
        print(f"  {a['file_name']} {a['mime_type']} {a['size']} bytes" + (" (sent beside)" if a["external"] else ""))
    print(f"  signatures: {s['signatures']} (trust and authority are checked by the gateway)")
    return 0


async def _receipt_verify(args) -> int:
    from cryptography import x509

    from pki.errors import PkiError
    from pki.receipts import verify_receipt

    data = sys.stdin.buffer.read() if args.receipt == "-" else Path(args.receipt).read_bytes()
    cert = x509.load_pem_x509_certificates(Path(args.cert).read_bytes())[0]
    try:
        r = await verify_receipt(data, cert)
    except PkiError as exc:
        print(f"receipt INVALID: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"receipt valid: {r.kind} receipt for message {r.message_id} from {r.sender}"
          + (f" delivered to {r.recipient} (delivery {r.delivery_id})" if r.recipient else "")
          + f", sha256 {r.sha256}, at {r.at.isoformat()}, signed by {r.signer.subject.rfc4514_string()}")
    if args.envelope:
        import hashlib

        digest = hashlib.sha256(Path(args.envelope).read_bytes()).hexdigest()
        if digest != r.sha256:
            print(f"but {args.envelope} has sha256 {digest}: NOT the acknowledged bytes", file=sys.stderr)
            return 1
        print(f"{args.envelope} is exactly the acknowledged bytes")
    return 0


# ---------------------------------------------------------------------------- letters


#: Files larger than this travel beside the envelope (multipart/related) instead of inside it.
INLINE_LIMIT = 4 * 1024 * 1024


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _build_letter(args) -> tuple[bytes, dict[str, Path]]:
    """The envelope, and the files (by Content-ID) that travel beside it."""
    from gateway.core.clock import BANGKOK
    from gateway.core.envelope import (
        Attachment,
        Envelope,
        Header,
        Letter,
        MessageType,
        Secrecy,
        Speed,
        build_envelope,
    )

    now = dt.datetime.now(BANGKOK)
    attachments, beside = [], {}
    for i, path in enumerate(args.pdf or [], start=1):
        p = Path(path)
        common = dict(id=f"att-{i}", file_name=p.name, mime_type="application/pdf",
                      role="main" if i == 1 else "enclosure")
        if getattr(args, "multipart", False) or p.stat().st_size > INLINE_LIMIT:
            attachments.append(Attachment.external_part(size=p.stat().st_size, sha256=_file_sha256(p), **common))
            beside[f"att-{i}"] = p
        else:
            attachments.append(Attachment(content=p.read_bytes(), **common))
    env = Envelope(
        header=Header(message_id=args.message_id or str(uuid.uuid4()), message_type=MessageType.LETTER,
                      created_at=now, sender=args.sender, recipients=tuple(args.to)),
        body=Letter(number=args.number or f"ทดสอบ {now:%H%M%S}", date=now.date(), subject=args.subject,
                    addressee=args.addressee, speed=Speed(args.speed), secrecy=Secrecy(args.secrecy),
                    signer_name=args.signer_name, signer_position=args.signer_position),
        attachments=tuple(attachments),
    )
    return build_envelope(env), beside


def _client_ssl(args, agency: str | None):
    """TLS for talking to a gateway using the development PKI: trust its root, present the
    agency's client certificate when there is one."""
    import ssl

    if not args.url.startswith("https"):
        return None
    settings = _settings(args)
    manifest = settings.pki_path / "manifest.json"
    ctx = ssl.create_default_context()
    if manifest.exists():
        from pki.devca import init_dev_pki

        dev = init_dev_pki(settings.pki_path, {})
        ctx.load_verify_locations(cafile=str(dev.anchors))
        if agency and agency in dev.agencies:
            creds = dev.agencies[agency]
            ctx.load_cert_chain(str(creds.tls_client_cert), str(creds.tls_client_key))
    return ctx


def _auth_headers(args) -> dict[str, str]:
    return {"Authorization": f"Bearer {args.token}"} if getattr(args, "token", None) else {}


async def _letter_send(args) -> int:
    import aiohttp

    data, beside = _build_letter(args)
    settings = _settings(args)
    if not args.unsigned:
        from pki.devca import init_dev_pki
        from pki.keys import FileSigner
        from pki.sign import sign_envelope

        if args.sign_key and args.sign_cert:
            signer = FileSigner.from_pem(args.sign_key, args.sign_cert)
        else:
            dev = init_dev_pki(settings.pki_path, {})
            if args.sender not in dev.agencies:
                print(f"gateway: no signing key for {args.sender} in {settings.pki_path}; "
                      "give --sign-key/--sign-cert or --unsigned", file=sys.stderr)
                return 2
            signer = dev.agency_signer(args.sender)
        data = sign_envelope(data, signer)
    headers = {"Content-Type": "application/xml", **_auth_headers(args)}
    payload, files = data, []
    if beside:  # large files stream from disk beside the envelope (gateway.core.parts)
        files = [open(path, "rb") for path in beside.values()]
        payload = aiohttp.MultipartWriter("related")
        headers["Content-Type"] = (f'multipart/related; boundary="{payload.boundary}"; type="application/xml"; '
                                   'start="<envelope>"')
        payload.append(data, {"Content-Type": "application/xml; charset=utf-8", "Content-ID": "<envelope>"})
        for cid, fh in zip(beside, files, strict=False):
            payload.append(fh, {"Content-Type": "application/pdf", "Content-ID": f"<{cid}>"})
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{args.url.rstrip('/')}/v1/messages", data=payload, headers=headers,
                              ssl=_client_ssl(args, args.sender)) as r:
                body = await r.read()
    finally:
        for fh in files:
            fh.close()
    if r.status >= 400:
        print(body.decode("utf-8", "replace"), file=sys.stderr)
        return 1
    print(f"HTTP {r.status}: receipt follows", file=sys.stderr)
    sys.stdout.buffer.write(body + b"\n")
    return 0


async def _inbox_list(args) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(f"{args.url.rstrip('/')}/v1/inbox", headers=_auth_headers(args),
                         ssl=_client_ssl(args, args.agency)) as r:
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
    s.add_argument("--workers", type=int, help="worker processes sharing the port (GATEWAY_WORKERS)")
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
    sd = lt.add_parser("send", help="build an envelope from fields and PDFs, sign it, submit it, print the receipt")
    common(sd)
    sd.add_argument("--url", default="https://127.0.0.1:8443")
    sd.add_argument("--token", help="development bearer token (default: the agency's TLS client certificate)")
    sd.add_argument("--sign-key", help="PEM signing key (default: the agency's key in the development PKI)")
    sd.add_argument("--sign-cert", help="PEM signing certificate")
    sd.add_argument("--unsigned", action="store_true", help="do not sign (refused unless the gateway allows it)")
    sd.add_argument("--from", dest="sender", required=True, help="sending agency code")
    sd.add_argument("--to", action="append", required=True, help="recipient agency code (repeatable)")
    sd.add_argument("--subject", required=True)
    sd.add_argument("--number", help="letter number (ที่)")
    sd.add_argument("--addressee", default="ผู้ว่าราชการจังหวัด")
    sd.add_argument("--speed", default="normal", choices=["normal", "urgent", "very-urgent", "most-urgent"])
    sd.add_argument("--secrecy", default="normal", choices=["normal", "confidential", "secret"])
    sd.add_argument("--signer-name", default="นายทดสอบ ระบบ")
    sd.add_argument("--signer-position", default="ปลัดสำนักนายกรัฐมนตรี")
    sd.add_argument("--pdf", action="append", help="PDF file; the first is the main letter (repeatable); files over "
                    "4 MiB travel beside the envelope (multipart/related)")
    sd.add_argument("--multipart", action="store_true", help="send every file beside the envelope")
    sd.add_argument("--message-id")
    sd.set_defaults(func=_letter_send)

    pk = sub.add_parser("pki", help="keys and certificates").add_subparsers(dest="pki_command", required=True)
    pi = pk.add_parser("init-dev", help="create (or complete) the development PKI for the directory's agencies")
    common(pi)
    pi.add_argument("--pki-dir", type=Path, help="where (GATEWAY_PKI_DIR; default DATA_DIR/pki)")
    pi.set_defaults(func=_pki_init_dev)

    ev = sub.add_parser("envelope", help="envelopes").add_subparsers(dest="envelope_command", required=True)
    ec = ev.add_parser("check", help="check an envelope file offline: parse, schema (every fault), attachments")
    ec.add_argument("file", help="envelope XML file, or - for standard input")
    ec.add_argument("--json", action="store_true", help="print the report as JSON")
    ec.set_defaults(func=_envelope_check)

    rc = sub.add_parser("receipt", help="receipts").add_subparsers(dest="receipt_command", required=True)
    rv = rc.add_parser("verify", help="verify a gateway receipt offline")
    rv.add_argument("receipt", help="receipt XML file, or - for standard input")
    rv.add_argument("--cert", required=True, help="the gateway's seal certificate (PEM)")
    rv.add_argument("--envelope", help="also check that this file is exactly the acknowledged envelope")
    rv.set_defaults(func=_receipt_verify)

    ib = sub.add_parser("inbox", help="pull inbox").add_subparsers(dest="inbox_command", required=True)
    il = ib.add_parser("list", help="list the calling agency's inbox")
    common(il)
    il.add_argument("--url", default="https://127.0.0.1:8443")
    il.add_argument("--agency", help="agency code whose development TLS client certificate to present")
    il.add_argument("--token", help="development bearer token")
    il.set_defaults(func=_inbox_list)

    from gateway.cli.audit import add_commands

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
