"""adapters.wire: the push's lean HTTP/1.1 client against real loopback servers answering each way
HTTP allows (length, chunked, to the end, 1xx first), closing kept connections, hanging, lying."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import pytest

from adapters.wire import Wire, WireError


class Server:
    """A loopback server answering each request (read whole by Content-Length) with ``answer(n)``
    (n: the request's number), counting connections; ``close_after`` closes every connection
    after answering."""

    def __init__(self, answer: Callable[[int], bytes | None], *, close_after: bool = False) -> None:
        self.answer, self.close_after = answer, close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/saraban/inbox?x=1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = self.answer(len(self.requests))
                if answer is None:  # hang
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


def ok(body: bytes = b"<ack/>") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_kept_alive_answers_framed_every_way() -> None:
    answers = {1: ok(b"first"),
               2: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nsec\r\n4;x=y\r\nond!\r\n0\r\nX-Trailer: t\r\n\r\n",
               3: b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
               4: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast",
               5: ok(b"fifth")}
    server = Server(lambda n: answers[n])
    url = await server.start()
    wire = Wire()
    try:
        got = [await wire.post(url, b"x" * n, {"X-Saraban-Delivery-Id": str(n)}, timeout=5) for n in range(1, 6)]
    finally:
        wire.close()
        await server.stop()
    assert [(a.status, a.body) for a in got] == [(200, b"first"), (200, b"second!"), (503, b""), (200, b"last"),
                                                 (200, b"fifth")]
    assert got[2].headers["retry-after"] == "7"
    assert server.connections == 2  # one connection carried four, until the answer that said close
    first = server.requests[0]
    assert first.startswith(b"POST /saraban/inbox?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 1\r\n" in first and b"X-Saraban-Delivery-Id: 1\r\n" in first


async def test_answer_framed_by_the_connections_end() -> None:
    server = Server(lambda n: b"HTTP/1.1 200 OK\r\n\r\n<ack>until the end</ack>", close_after=True)
    url = await server.start()
    wire = Wire()
    try:
        first = await wire.post(url, b"letter", {}, timeout=5)
        second = await wire.post(url, b"letter", {}, timeout=5)
    finally:
        wire.close()
        await server.stop()
    assert first.body == second.body == b"<ack>until the end</ack>"
    assert server.connections == 2  # never kept: its answer ended with the connection


async def test_a_kept_connection_the_office_closed_is_replaced() -> None:
    server = Server(lambda n: ok(), close_after=True)  # answers with a length, then closes anyway
    url = await server.start()
    wire = Wire()
    try:
        for _ in range(3):
            assert (await wire.post(url, b"letter", {}, timeout=5)).status == 200
            await asyncio.sleep(0.05)  # (lets the close arrive first, or not: either way it must work)
    finally:
        wire.close()
        await server.stop()
    assert len(server.requests) == 3 and server.connections == 3


async def test_timeout_closes_the_connection() -> None:
    server = Server(lambda n: None if n == 1 else ok())
    url = await server.start()
    wire = Wire()
    try:
        with pytest.raises(TimeoutError):
            await wire.post(url, b"letter", {}, timeout=0.2)
        assert (await wire.post(url, b"letter", {}, timeout=5)).status == 200
    finally:
        wire.close()
        await server.stop()
    assert server.connections == 2  # the hung connection was not used again


async def test_timeout_on_a_kept_connection_closes_it() -> None:
    """The answer's deadline on a connection kept from an earlier request (no connect to time)."""
    server = Server(lambda n: None if n == 2 else ok())
    url = await server.start()
    wire = Wire()
    try:
        assert (await wire.post(url, b"letter", {}, timeout=5)).status == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await wire.post(url, b"letter", {}, timeout=0.2)
        assert 0.15 < loop.time() - started < 2
        assert (await wire.post(url, b"letter", {}, timeout=5)).status == 200
    finally:
        wire.close()
        await server.stop()
    assert len(server.requests) == 3
    assert server.connections == 2  # the timed-out connection was not used again


async def test_timeout_while_waiting_for_a_free_connection() -> None:
    """``timeout`` bounds the wait for a slot too: the request is never sent."""
    server = Server(lambda n: None if n == 1 else ok())
    url = await server.start()
    wire = Wire(per_host=1)
    try:
        hung = asyncio.create_task(wire.post(url, b"first", {}, timeout=30))
        while not server.requests:
            await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            await wire.post(url, b"second", {}, timeout=0.2)
        assert len(server.requests) == 1
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        assert (await wire.post(url, b"third", {}, timeout=5)).status == 200  # the slot was given back
    finally:
        wire.close()
        await server.stop()
    assert [r.endswith(b"third") for r in server.requests] == [False, True]


async def test_long_body_cut_and_not_kept() -> None:
    server = Server(lambda n: ok(b"a" * 5000))
    url = await server.start()
    wire = Wire(max_body=100)
    try:
        first = await wire.post(url, b"letter", {}, timeout=5)
        await wire.post(url, b"letter", {}, timeout=5)
    finally:
        wire.close()
        await server.stop()
    assert first.body == b"a" * 100
    assert server.connections == 2


async def test_not_http_and_early_close_are_wire_errors() -> None:
    for answer in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"):
        server = Server(lambda n, a=answer: a, close_after=True)
        url = await server.start()
        wire = Wire()
        try:
            with pytest.raises(WireError):
                await wire.post(url, b"letter", {}, timeout=5)
        finally:
            wire.close()
            await server.stop()


async def test_header_injection_refused() -> None:
    wire = Wire()
    with pytest.raises(ValueError):
        await wire.post("http://127.0.0.1:9/x", b"", {"X-Saraban-Message-Id": "a\r\nX-Evil: 1"}, timeout=1)
    with pytest.raises(ValueError):
        await wire.post("http://127.0.0.1:9/x y", b"", {}, timeout=1)


async def test_https_checks_the_office_certificate_and_name(dev_pki) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(dev_pki.tls_server_cert), str(dev_pki.tls_server_key))
    server = Server(lambda n: ok(b"over tls"))
    server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.server.sockets[0].getsockname()[1]
    trusting = Wire(ssl_context=ssl.create_default_context(cafile=str(dev_pki.anchors)))
    stranger = Wire()  # the system's anchors: the development CA is not among them
    try:
        first = await trusting.post(f"https://localhost:{port}/saraban/inbox", b"letter", {}, timeout=5)
        second = await trusting.post(f"https://localhost:{port}/saraban/inbox", b"letter", {}, timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            await stranger.post(f"https://localhost:{port}/saraban/inbox", b"letter", {}, timeout=5)
    finally:
        trusting.close()
        stranger.close()
        await server.stop()
    assert first.body == second.body == b"over tls"
    assert server.connections == 1  # both over one kept connection; the refused handshake never became one
