"""Letters from the command line: ``gateway letter send``, ``gateway inbox list`` (over HTTP, as an
agency's system would), and the offline checks ``gateway envelope check`` and ``gateway receipt verify``."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import ssl
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from cryptography import x509

from gateway.cli import labels
from gateway.cli.common import certificate_file, settings_from
from gateway.core.clock import BANGKOK
from gateway.core.envelope import (
    SECRECY_TH,
    SPEED_TH,
    Attachment,
    Envelope,
    Header,
    Letter,
    MessageType,
    Secrecy,
    Speed,
)
from gateway.core.envelope_builder import build_envelope
from gateway.core.envelope_reader import read_header
from gateway.core.errors import ConfigError, GatewayError, Unavailable
from gateway.core.xml import ENVELOPE_NS, parse
from gateway.intake.offline import check_envelope
from pki.devca import init_dev_pki
from pki.keys import FileSigner, Signer
from pki.receipts import verify_receipt
from pki.sign import sign_envelope
from pki.thaidate import thai_date, thai_time

#: Files larger than this travel beside the envelope (multipart/related) instead of inside it.
INLINE_LIMIT = 4 * 1024 * 1024


async def envelope_check(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    report = check_envelope(data)
    if args.json:
        print(json.dumps({"ok": report.ok, "findings": [asdict(f) for f in report.findings],
                          "summary": report.summary}, ensure_ascii=False, indent=2))
        return 0 if report.ok else 1
    for f in report.findings:
        print(f"{f.code} at {f.field}: {f.reason}")
    if not report.ok:
        n = len(report.findings)
        print(f"ซองไม่ถูกต้อง {n} จุด (envelope INVALID, {n} fault{'s' if n > 1 else ''})")
        return 1
    s = report.summary
    print(f"ซองถูกต้อง (envelope valid): {s['type']} {s['message_id']} จาก (from) {s['sender']} "
          f"ถึง (to) {', '.join(s['recipients'])}")
    if "number" in s:
        speed, secrecy = Speed(s["speed"]), Secrecy(s["secrecy"])
        print(f"  ที่ {s['number']} ลงวันที่ {s['date_thai']}  เรื่อง {s['subject']}  "
              f"ชั้นความเร็ว {SPEED_TH[speed]} ({speed.value})  ชั้นความลับ {SECRECY_TH[secrecy]} ({secrecy.value})")
    for a in s["attachments"]:
        print(f"  {a['file_name']} {a['mime_type']} {a['size']:,} ไบต์ (bytes)"
              + (" ส่งแยกจากซอง (sent beside)" if a["external"] else ""))
    print(f"  ลายมือชื่อ (signatures): {s['signatures']} (trust and authority are checked by the gateway)")
    return 0


async def receipt_verify(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.receipt == "-" else Path(args.receipt).read_bytes()
    cert = certificate_file(args.cert, lambda pem: x509.load_pem_x509_certificates(pem)[0])
    r = await verify_receipt(data, cert)  # an invalid receipt: a PkiError, one line and exit 65 (cli.main)
    local = r.at.astimezone(BANGKOK)
    print(f"ใบรับถูกต้อง (receipt valid): {r.kind} receipt for message {r.message_id} from {r.sender}"
          + (f" delivered to {r.recipient} (delivery {r.delivery_id})" if r.recipient else "")
          + f", sha256 {r.sha256}, เมื่อ {thai_date(local)} {thai_time(local)} น. ({r.at.isoformat()}), "
          f"ลงนามโดย (signed by) {r.signer.subject.rfc4514_string()}")
    if args.envelope:
        digest = hashlib.sha256(Path(args.envelope).read_bytes()).hexdigest()
        if digest != r.sha256:
            print(f"gateway: receipt.other_bytes: {args.envelope} ไม่ใช่ไฟล์ที่ได้รับ (NOT the acknowledged bytes): "
                  f"its sha256 is {digest}", file=sys.stderr)
            return 1
        print(f"{args.envelope} ตรงกับที่ได้รับทุกไบต์ (is exactly the acknowledged bytes)")
    return 0


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _build_letter(args: argparse.Namespace) -> tuple[bytes, dict[str, Path]]:
    """The envelope, and the files (by Content-ID) that travel beside it."""
    now = dt.datetime.now(BANGKOK)
    attachments: list[Attachment] = []
    beside: dict[str, Path] = {}
    for i, path in enumerate(args.pdf or [], start=1):
        p = Path(path)
        att_id, role = f"att-{i}", "main" if i == 1 else "enclosure"
        if getattr(args, "multipart", False) or p.stat().st_size > INLINE_LIMIT:
            attachments.append(Attachment.external_part(id=att_id, file_name=p.name,
                                                        mime_type="application/pdf", role=role,
                                                        size=p.stat().st_size, sha256=_file_sha256(p)))
            beside[att_id] = p
        else:
            attachments.append(Attachment(id=att_id, file_name=p.name, mime_type="application/pdf", role=role,
                                          content=p.read_bytes()))
    env = Envelope(
        header=Header(message_id=args.message_id or str(uuid.uuid4()), message_type=MessageType.LETTER,
                      created_at=now, sender=args.sender, recipients=tuple(args.to)),
        body=Letter(number=args.number or f"ทดสอบ {now:%H%M%S}", date=now.date(), subject=args.subject,
                    addressee=args.addressee, speed=Speed(args.speed), secrecy=Secrecy(args.secrecy),
                    signer_name=args.signer_name, signer_position=args.signer_position),
        attachments=tuple(attachments),
    )
    return build_envelope(env), beside


def _client_ssl(args: argparse.Namespace, agency: str | None) -> ssl.SSLContext | bool:
    """TLS for talking to a gateway using the development PKI: trust its root, present the
    agency's client certificate when there is one (``True``: aiohttp's default, for http URLs)."""
    if not args.url.startswith("https"):
        return True
    settings = settings_from(args)
    manifest = settings.pki_path / "manifest.json"
    ctx = ssl.create_default_context()
    if manifest.exists():
        dev = init_dev_pki(settings.pki_path, {})
        ctx.load_verify_locations(cafile=str(dev.anchors))
        if agency and agency in dev.agencies:
            creds = dev.agencies[agency]
            ctx.load_cert_chain(str(creds.tls_client_cert), str(creds.tls_client_key))
    return ctx


def _auth_headers(args: argparse.Namespace) -> dict[str, str]:
    return {"Authorization": f"Bearer {args.token}"} if getattr(args, "token", None) else {}


def _receipt_path(args: argparse.Namespace, message_id: str) -> Path:
    """Where the signed receipt goes: ``--receipt-out``, else ``DATA_DIR/receipts/<message id>.xml``."""
    if getattr(args, "receipt_out", None):
        return Path(args.receipt_out)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", message_id)
    return settings_from(args).data_dir / "receipts" / f"{safe}.xml"


def _remote_error(status: int, body: bytes) -> GatewayError:
    """The gateway's JSON refusal (``{code, message, field}``) as the one-line error ``cli.main`` prints."""
    try:
        doc = json.loads(body)
        code, message, field = str(doc["code"]), str(doc.get("message", "")), doc.get("field")
    except (ValueError, KeyError, TypeError):
        code, message, field = f"http.{status}", body.decode("utf-8", "replace").strip()[:200], None
    return GatewayError(f"{message} [HTTP {status}]", code=code, field=field)


def _print_summary(result: dict[str, Any]) -> None:
    dup = result["duplicate"]
    head = ("ส่งซ้ำ ได้ใบรับเดิม (duplicate: the original receipt)" if dup
            else "รับหนังสือแล้ว (accepted)")
    at = result.get("accepted_at")
    when = ""
    if at:
        local = dt.datetime.fromisoformat(at).astimezone(BANGKOK)
        when = f"{thai_date(local)} {thai_time(local)} น."
    match = ("ตรงกับที่ส่ง (matches what was sent)" if result["sha256_matches"]
             else "ไม่ตรงกับที่ส่ง (DOES NOT match what was sent)")
    print(f"{head}: HTTP {result['http_status']}")
    print(f"  รหัสข้อความ (message id):   {result['message_id']}")
    if when:
        print(f"  เวลารับ (accepted at):      {when}")
    print(f"  SHA-256:                   {result['sha256']}  {match}")
    print(f"  ใบรับที่ลงนาม (receipt):      {result['receipt_path']}")


async def letter_send(args: argparse.Namespace) -> int:
    """Sign and submit; print a summary (default), the receipt XML (``--xml``) or JSON (``--json``), and
    keep the signed receipt in a file (always, except ``--xml`` without ``--receipt-out``)."""
    data, beside = _build_letter(args)
    settings = settings_from(args)
    if not args.unsigned:
        signer: Signer
        if args.sign_key and args.sign_cert:
            signer = FileSigner.from_pem(args.sign_key, args.sign_cert)
        else:
            dev = init_dev_pki(settings.pki_path, {})
            if args.sender not in dev.agencies:
                raise ConfigError(f"no signing key for {args.sender} in {settings.pki_path}; "
                                  "give --sign-key/--sign-cert or --unsigned", code="config.invalid",
                                  field="--from")
            signer = dev.agency_signer(args.sender)
        data = sign_envelope(data, signer)
    headers = {"Content-Type": "application/xml", **_auth_headers(args)}
    payload: bytes | aiohttp.MultipartWriter = data
    files: list[BinaryIO] = []
    if beside:  # large files stream from disk beside the envelope (gateway.core.parts)
        files = [open(path, "rb") for path in beside.values()]
        related = aiohttp.MultipartWriter("related")
        headers["Content-Type"] = (f'multipart/related; boundary="{related.boundary}"; '
                                   'type="application/xml"; start="<envelope>"')
        related.append(data, {"Content-Type": "application/xml; charset=utf-8", "Content-ID": "<envelope>"})
        for cid, fh in zip(beside, files, strict=False):
            related.append(fh, {"Content-Type": "application/pdf", "Content-ID": f"<{cid}>"})
        payload = related
    url = f"{args.url.rstrip('/')}/v1/messages"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=payload, headers=headers, ssl=_client_ssl(args, args.sender)) as r:
                body = await r.read()
                sha256 = r.headers.get("X-Saraban-Sha256", "")
                duplicate = r.headers.get("X-Saraban-Duplicate") == "true"
    except aiohttp.ClientError as exc:
        raise Unavailable(f"cannot reach the gateway at {args.url}: {exc}", code="unavailable",
                          field="--url") from None
    finally:
        for fh in files:
            fh.close()
    if r.status >= 400:
        raise _remote_error(r.status, body)
    as_xml, as_json = getattr(args, "xml", False), getattr(args, "json", False)
    if as_xml and not getattr(args, "receipt_out", None):  # today's output, for scripts
        print(f"HTTP {r.status}: receipt follows", file=sys.stderr)
        sys.stdout.buffer.write(body + b"\n")
        return 0
    message_id = _header_of(data)
    path = _receipt_path(args, message_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    result = {"status": "duplicate" if duplicate else "accepted", "http_status": r.status,
              "duplicate": duplicate, "message_id": message_id, "sha256": sha256,
              "sha256_matches": sha256 == hashlib.sha256(data).hexdigest(),
              "accepted_at": _receipt_at(body), "receipt_path": str(path.resolve())}
    if as_xml:
        sys.stdout.buffer.write(body + b"\n")
    elif as_json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        _print_summary(result)
    return 0


def _header_of(envelope: bytes) -> str:
    """The message id of the envelope just built (read back, so it is the one that was signed)."""
    return read_header(parse(envelope)).message_id


def _receipt_at(receipt: bytes) -> str | None:
    """The time of acceptance the receipt states (not verified here: ``gateway receipt verify`` does that)."""
    try:
        kids = parse(receipt, what="receipt").find(f"{{{ENVELOPE_NS}}}Receipt")
        at = kids.find(f"{{{ENVELOPE_NS}}}At") if kids is not None else None
        return at.text.strip() if at is not None and at.text else None
    except GatewayError:
        return None


async def inbox_list(args: argparse.Namespace) -> int:
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{args.url.rstrip('/')}/v1/inbox", headers=_auth_headers(args),
                             ssl=_client_ssl(args, args.agency)) as r:
                raw = await r.read()
    except aiohttp.ClientError as exc:
        raise Unavailable(f"cannot reach the gateway at {args.url}: {exc}", code="unavailable",
                          field="--url") from None
    if r.status >= 400:
        raise _remote_error(r.status, raw)
    doc = json.loads(raw)
    if args.json:  # the API's answer as it is, for programs
        print(json.dumps(doc, ensure_ascii=False, indent=1))
        return 0
    print("\n".join(inbox_lines(doc.get("items") or [])))
    return 0


def inbox_lines(items: list[dict[str, Any]]) -> list[str]:
    """The inbox as a person reads it: a table, Thai labels first with the code beside, Buddhist-era
    times in Bangkok, oldest first (as the gateway lists it), and how many items."""
    if not items:
        return ["กล่องรับว่าง (inbox empty)"]
    header = ["เข้ากล่องเมื่อ (queued)", "ประเภท (type)", "จาก (sender)", "ถึง (recipient)",
              "รหัสข้อความ (message id)", "ไฟล์แยก (parts)", "รหัสการส่ง (delivery id)"]
    rows = []
    for i in items:
        try:
            queued = labels.when(dt.datetime.fromisoformat(i["queued_at"]))
        except (KeyError, TypeError, ValueError):
            queued = str(i.get("queued_at") or "-")
        rows.append([queued, labels.coded(labels.MESSAGE_TYPE, i.get("type")), str(i.get("sender") or "-"),
                     str(i.get("recipient") or "-"), str(i.get("message_id") or "-"), str(len(i.get("parts") or [])),
                     str(i.get("delivery_id") or "-")])
    return [*labels.table(header, rows), f"รวม {len(items)} รายการ ({len(items)} items)"]
