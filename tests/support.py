"""Test support: build envelopes, find free ports, run gateway processes, play offices.

Everything here is real: envelopes go through the real builder, gateways are
real ``gateway serve`` processes (stopped by pid), offices are real aiohttp
servers on loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from lxml import etree
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from gateway.core.clock import BANGKOK
from gateway.core.envelope import (
    Attachment,
    Envelope,
    Header,
    Letter,
    MessageType,
    Notifier,
    NotifierKind,
    Secrecy,
    Speed,
)
from gateway.core.envelope_builder import E, build_envelope

ROOT = Path(__file__).resolve().parent.parent

# Agencies used throughout the tests (tokens are development tokens).
OPM = "0100000000"      # สำนักนายกรัฐมนตรี, sender
CMI = "1550100000"      # เชียงใหม่
KKN = "1550200000"      # ขอนแก่น
MOI = "1500000000"      # มหาดไทย
TOKENS = {OPM: "tok-opm", CMI: "tok-cmi", KKN: "tok-kkn", MOI: "tok-moi"}


def directory_dict(routes: dict[str, dict] | None = None) -> dict:
    """A test directory; ``routes`` overrides an agency's route (default pull)."""
    routes = routes or {}
    names = {OPM: ("สำนักนายกรัฐมนตรี", "Office of the Prime Minister", None, None),
             MOI: ("กระทรวงมหาดไทย", "Ministry of Interior", None, None),
             CMI: ("ศาลากลางจังหวัดเชียงใหม่", "Chiang Mai Provincial Hall", MOI, "50"),
             KKN: ("ศาลากลางจังหวัดขอนแก่น", "Khon Kaen Provincial Hall", MOI, "40")}
    return {"agencies": [
        {"code": code, "name_th": th, "name_en": en, "parent": parent, "province": prov,
         **({"kind": "provincial_administration"} if prov else {}),
         "route": routes.get(code, {"kind": "pull"}), "tokens": [TOKENS[code]]}
        for code, (th, en, parent, prov) in names.items()]}


def write_directory(path: Path, routes: dict[str, dict] | None = None) -> Path:
    path.write_text(json.dumps(directory_dict(routes), ensure_ascii=False), encoding="utf-8")
    return path


def letter(*, sender: str = OPM, recipients=(CMI,), message_id: str | None = None,
           subject: str = "ขอเชิญประชุมคณะกรรมการ", secrecy: Secrecy = Secrecy.NORMAL,
           pdf: bytes = b"%PDF-1.4\n% test letter\n", created_at: dt.datetime | None = None) -> Envelope:
    created = created_at or dt.datetime(2026, 11, 22, 9, 30, tzinfo=BANGKOK)
    return Envelope(
        header=Header(message_id=message_id or str(uuid.uuid4()), message_type=MessageType.LETTER,
                      created_at=created, sender=sender, recipients=tuple(recipients)),
        body=Letter(number="นร 0105/ว 123", date=created.date(), subject=subject,
                    addressee="ผู้ว่าราชการจังหวัดทุกจังหวัด", speed=Speed.URGENT, secrecy=secrecy,
                    signer_name="นายสมชาย ใจดี", signer_position="ปลัดสำนักนายกรัฐมนตรี",
                    enclosures=("สำเนาคำสั่ง",)),
        attachments=(Attachment(id="att-1", file_name="หนังสือ.pdf", mime_type="application/pdf", content=pdf,
                                role="main"),),
    )


def letter_bytes(**kw) -> bytes:
    return build_envelope(letter(**kw))


def notifier_bytes(*, sender: str, recipient: str, ref: str, kind=NotifierKind.ACCEPTED,
                   registry_number: str | None = "รับที่ 4567") -> bytes:
    created = dt.datetime(2026, 11, 22, 10, 0, tzinfo=BANGKOK)
    return build_envelope(Envelope(
        header=Header(message_id=str(uuid.uuid4()), message_type=MessageType.NOTIFIER, created_at=created,
                      sender=sender, recipients=(recipient,), ref_to_message_id=ref),
        body=Notifier(kind=kind, letter_number="นร 0105/ว 123", letter_date=created.date(),
                      registry_number=registry_number if kind is NotifierKind.ACCEPTED else None)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- gateway processes


@dataclass
class GatewayProcess:
    """A real ``gateway serve`` process; stopped by pid."""

    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wrapper: Sequence[str] = ()) -> GatewayProcess:
        """``gateway serve`` in a session of its own, its output appended to ``log_path``; ``wrapper``: a
        command that runs it (e.g. valgrind's, bench/submit.py --callgrind)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*wrapper, sys.executable, "-m", "gateway.cli.main", "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        log.close()
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
                try:
                    async with s.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"gateway not ready:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen | None) -> None:
    """Stop a process started in its own session, with its children: SIGTERM to the group, then
    SIGKILL if it has not exited within 10 s."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def gateway_env(*, database_url: str, directory: Path, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_DATABASE_URL": database_url, "GATEWAY_DIRECTORY_PATH": str(directory),
        "GATEWAY_PORT": str(port), "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_DISPATCH_POLL_INTERVAL_S": "0.05", "PYTHONUNBUFFERED": "1",
        # spine tests: unsigned letters over plain HTTP; PKI tests turn these on
        "GATEWAY_REQUIRE_SIGNATURE": "false", "GATEWAY_SEAL": "false", "GATEWAY_TLS": "false",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


# ---------------------------------------------------------------------------- offices


@dataclass
class Office:
    """A receiving office on loopback that records what it got, deduplicating on delivery id."""

    name: str
    fail_first: int = 0
    fail_status: int = 503
    delay_s: float = 0.0
    received: dict[str, bytes] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    attempts: int = 0
    runner: web.AppRunner | None = None
    port: int = 0
    on_receive: Callable[[str], None] | None = None
    answer: Callable[[str, bytes], bytes] | None = None
    """Builds the ack body from (delivery id, received body); default: an unsigned DeliveryAck."""
    message_ids: dict[str, str] = field(default_factory=dict)
    """Delivery id -> message id (X-Saraban-Message-Id) of every letter recorded."""
    first_at: dict[str, float] = field(default_factory=dict)
    """Delivery id -> wall-clock time (time.time()) the office first recorded it."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/saraban/inbox"

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        delivery_id = request.headers["X-Saraban-Delivery-Id"]
        if self.delay_s:
            await asyncio.sleep(self.delay_s)  # plays a slow office, not synchronisation
        if self.attempts <= self.fail_first:
            return web.Response(status=self.fail_status, text="office unavailable")
        self.record(request, delivery_id, body)
        return web.Response(body=self.ack(delivery_id, body), content_type="application/xml")

    def ack(self, delivery_id: str, body: bytes) -> bytes:
        return self.answer(delivery_id, body) if self.answer else delivery_ack(delivery_id=uuid.UUID(delivery_id))

    def record(self, request: web.Request, delivery_id: str, body: bytes) -> None:
        self.seen.append(delivery_id)
        self.received.setdefault(delivery_id, body)
        self.message_ids.setdefault(delivery_id, request.headers.get("X-Saraban-Message-Id", ""))
        self.first_at.setdefault(delivery_id, time.time())
        if self.on_receive:
            self.on_receive(delivery_id)

    async def start(self, port: int | None = None) -> Office:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/saraban/inbox", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = port or self.port or free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@dataclass
class UnrulyOffice(Office):
    """An office that misbehaves as told, then recovers (``behaviour = "ok"``).

    Behaviours: ``down`` (nothing listens on its port: connection refused; see
    :meth:`go_down` / :meth:`come_up`), ``slow`` (``slow_s`` seconds per answer,
    then a proper acknowledgement), ``error`` (500 to every attempt), ``reset``
    (reads the request, then resets the TCP connection without an answer) and
    ``hang`` (records the letter, then answers only after ``hang_s``, beyond the
    gateway's request timeout, so the gateway must try again and the office must
    deduplicate). Every request is counted in ``attempts``.
    """

    behaviour: str = "ok"
    slow_s: float = 2.0
    hang_s: float = 5.0
    resets: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.behaviour
        if behaviour == "error":
            self.attempts += 1
            await request.read()
            return web.Response(status=500, text="internal error at the office")
        if behaviour == "reset":
            self.attempts += 1
            await request.read()
            self.resets += 1
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:  # SO_LINGER 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=204)  # never reaches the wire: the transport is gone
        if behaviour == "slow":
            await asyncio.sleep(self.slow_s)  # plays a slow office, not synchronisation
            return await super().handle(request)
        if behaviour == "hang":
            self.attempts += 1
            body = await request.read()
            delivery_id = request.headers["X-Saraban-Delivery-Id"]
            self.record(request, delivery_id, body)
            await asyncio.sleep(self.hang_s)  # answers after the gateway has given up on this attempt
            return web.Response(body=self.ack(delivery_id, body), content_type="application/xml")
        return await super().handle(request)

    async def go_down(self) -> None:
        """Stop listening (the port stays this office's: :meth:`come_up` binds it again)."""
        if not self.port:
            self.port = free_port()
        await self.stop()
        self.behaviour = "down"

    async def come_up(self) -> None:
        self.behaviour = "ok"
        if self.runner is None:
            await self.start(self.port)


async def trickle(host: str, port: int, head: bytes, first_bytes: bytes) -> tuple[bytes, bytes, float]:
    """Send a request's head and the first bytes of its body, then nothing (slowloris); return the
    answer's head, its body and the seconds it took to come."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + first_bytes)
        await writer.drain()
        t0 = time.monotonic()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        elapsed = time.monotonic() - t0
        length = int(next(line.split(b":")[1] for line in answer.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        return answer, await asyncio.wait_for(reader.readexactly(length), timeout=10), elapsed
    finally:
        writer.close()


async def stored_counts(pool, tables=("messages", "deliveries", "receipts")) -> dict[str, int]:
    """Rows a submission can leave behind in ``tables``, and ``audit_events``: not start-up's
    directory and trust-snapshot events, nor the ``message.rejected`` event that records a refusal (who, why and a
    digest, never the bytes). One definition, so "nothing stored" means the same in every test."""
    out = {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
    out["audit_events"] = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE kind NOT IN ('directory.changed', 'trust.snapshot', 'message.rejected')")
    return out


async def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll an (async or plain) predicate until it is truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def rewrite_page_after_signing(pdf: bytes, text: bytes = b"No. 9999/123") -> bytes:
    """An incremental update that replaces page 1's content (the signed revision stays byte-identical)."""


    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    page[generic.pdf_name("/Contents")] = writer.add_object(
        generic.StreamObject(stream_data=b"BT /F1 16 Tf 72 700 Td (" + text + b") Tj ET"))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def delivery_ack(*, delivery_id: uuid.UUID, message_id: str | None = None, sha256_hex: str | None = None,
                 received_at: dt.datetime | None = None) -> bytes:
    """A receiving office's DeliveryAck, as the test offices answer a push (the gateway builds none)."""
    parts = [E.DeliveryId(str(delivery_id))]
    if message_id:
        parts.append(E.MessageId(message_id))
    if sha256_hex:
        parts.append(E.Sha256(sha256_hex))
    if received_at:
        parts.append(E.ReceivedAt(received_at.isoformat()))
    return etree.tostring(E.DeliveryAck(*parts), xml_declaration=True, encoding="UTF-8")
