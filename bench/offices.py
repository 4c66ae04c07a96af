"""The benchmarks' receiving offices: two push offices (and the sender's own) in a child process.

Their CPU is counted in the end-to-end figures (bench/e2e.py), so they do what a receiving office
must and no more, on a plain asyncio protocol rather than a web framework (aiohttp's
``web.Application`` cost ~190 µs of the office's CPU a request, the router, request object and
response object included; this costs a third of that):

* read the whole request (HTTP/1.1, keep-alive, ``Content-Length``; a chunked body is answered 411,
  which the gateway takes as a refusal: the gateway sends the sealed envelope of a letter without
  files with its length, and the bench's letters have none);
* refuse what is not a POST to ``/saraban/inbox`` with an ``X-Saraban-Delivery-Id`` that is a UUID;
* deduplicate on that delivery id (the gateway delivers at least once), keeping the first body;
* answer a ``DeliveryAck`` naming the delivery id and the SHA-256 of the bytes received, so the
  gateway's digest check (``ack.digest_mismatch``) is exercised on every delivery.

What a real office does beyond this is its own business and not the gateway's cost: storing the
letter durably in its own system, verifying the gateway's seal, registering it. The offices keep
what they received in memory and report, on a control port, every delivery id seen (repeats
included), which letter (``X-Saraban-Message-Id``) each delivery id carried, and the attempts:
bench/scale.py and bench/e2e.py check from these that nothing was lost or duplicated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import CMI, KKN, free_port, stop_group  # noqa: E402

OFFICES = {"cmi": CMI, "kkn": KKN}

_ACK = (b"<?xml version='1.0' encoding='UTF-8'?>\n<DeliveryAck xmlns=\"urn:th:gov:saraban:envelope:1\">"
        b"<DeliveryId>%s</DeliveryId><Sha256>%s</Sha256></DeliveryAck>")
_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024


@dataclass
class OfficeState:
    """What one office received: every delivery id seen (repeats too), the first body of each and the
    letter each carried."""

    seen: list[str] = field(default_factory=list)
    received: dict[str, bytes] = field(default_factory=dict)
    letter_of: dict[str, str] = field(default_factory=dict)
    attempts: int = 0

    def clear(self) -> None:
        self.seen.clear()
        self.received.clear()
        self.letter_of.clear()
        self.attempts = 0


def _answer(status: str, body: bytes, *, close: bool = False, content_type: bytes = b"text/plain") -> bytes:
    head = (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (status.encode(), content_type, len(body), b"Connection: close\r\n" if close else b""))
    return head + body


class OfficeProtocol(asyncio.Protocol):
    """One connection to an office: requests read whole, answered in order, kept alive."""

    def __init__(self, state: OfficeState) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.head: tuple[bytes, dict[bytes, bytes], bool] | None = None
        self.need = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (a stream transport: asyncio's or uvloop's, which does not subclass asyncio.Transport)
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            if self.head is None and not self._read_head():
                return
            if len(self.buf) < self.need:
                return
            body = bytes(self.buf[:self.need])
            del self.buf[:self.need]
            assert self.head is not None
            target, headers, close = self.head
            self.head = None
            self.transport.write(self._handle(target, headers, body, close))
            if close:
                self.transport.close()

    def _read_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self._fail("431 Request Header Fields Too Large")
            return False
        lines = bytes(self.buf[:end]).split(b"\r\n")
        del self.buf[:end + 4]
        request = lines[0].split(b" ")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                self._fail("400 Bad Request")
                return False
            headers[name.strip().lower()] = value.strip()
        if len(request) != 3 or b"transfer-encoding" in headers:
            self._fail("411 Length Required" if len(request) == 3 else "400 Bad Request")
            return False
        try:
            self.need = int(headers.get(b"content-length", b"0"))
        except ValueError:
            self._fail("400 Bad Request")
            return False
        if not 0 <= self.need <= _MAX_BODY:
            self._fail("413 Payload Too Large")
            return False
        close = request[2] == b"HTTP/1.0" or headers.get(b"connection", b"").lower() == b"close"
        self.head = (request[0] + b" " + request[1], headers, close)
        return True

    def _fail(self, status: str) -> None:
        assert self.transport is not None
        self.transport.write(_answer(status, status.encode(), close=True))
        self.transport.close()

    def _handle(self, target: bytes, headers: dict[bytes, bytes], body: bytes, close: bool) -> bytes:
        if target != b"POST /saraban/inbox":
            return _answer("404 Not Found", b"not found", close=close)
        state = self.state
        state.attempts += 1
        try:
            delivery_id = str(uuid.UUID(headers[b"x-saraban-delivery-id"].decode("ascii")))
        except (KeyError, ValueError):
            return _answer("400 Bad Request", b"X-Saraban-Delivery-Id: a UUID", close=close)
        state.seen.append(delivery_id)
        if delivery_id not in state.received:
            state.received[delivery_id] = body
            state.letter_of[delivery_id] = headers.get(b"x-saraban-message-id", b"").decode("utf-8", "replace")
        ack = _ACK % (delivery_id.encode(), hashlib.sha256(body).hexdigest().encode())
        return _answer("200 OK", ack, close=close, content_type=b"application/xml")


async def serve(spec: dict) -> None:
    """The offices of ``spec`` (name -> port) and the control endpoint (``control``), until SIGTERM."""
    loop = asyncio.get_running_loop()
    offices = {name: OfficeState() for name in spec["offices"]}
    for name, port in spec["offices"].items():
        await loop.create_server(lambda s=offices[name]: OfficeProtocol(s), "127.0.0.1", port, backlog=1024)

    async def stats(_request):
        return web.json_response({name: {"seen": o.seen, "letter_of": o.letter_of, "attempts": o.attempts}
                                  for name, o in offices.items()})

    async def reset(_request):
        for o in offices.values():
            o.clear()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", spec["control"]).start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@dataclass
class OfficeProcess:
    """Offices in a child process, with a control endpoint for their counts; stopped by pid."""

    log_path: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in OFFICES})
    control: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/saraban/inbox"

    def start(self) -> OfficeProcess:
        spec = json.dumps({"offices": self.ports, "control": self.control})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), spec],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
        return self

    async def call(self, method: str, path: str, timeout: float = 10.0):
        async with aiohttp.ClientSession() as s:
            async with s.request(method, f"http://127.0.0.1:{self.control}{path}",
                                 timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                return await r.json()

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"office process exited:\n{self.log_path.read_text()[-2000:]}")
            try:
                await self.call("GET", "/stats", timeout=1)
                return
            except (TimeoutError, aiohttp.ClientError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        stop_group(self.proc)


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
