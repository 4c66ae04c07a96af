"""A lean HTTP/1.1 client for pushes: one POST of bytes, kept-alive connections per office.

A push is one small request (the sealed envelope, ``Content-Length``) and one small answer (a
DeliveryAck). aiohttp's client spent ~140 µs of the gateway's CPU on each (request and response
objects, cookie jar, tracing, timeouts, the stream reader); this writes the request in one call
and reads the answer on a plain protocol: ~55 µs, measured against the same office. Letters
with files beside the envelope (streamed multipart) and e-CMS still go through aiohttp.

What it does, and what it does not:

* HTTP/1.1 with keep-alive; ``http`` and ``https`` (the default TLS context: certificates and
  host names checked, as aiohttp's default); no proxy (the gateway's aiohttp session trusts no
  proxy environment either); no redirects followed (a push never follows one).
* Answers framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the connection's end;
  1xx answers skipped; at most ``max_body`` bytes of a body are kept (a longer one is cut and its
  connection closed, as the adapter reads at most 1 MB of an ack).
* A connection is kept for the next request only after a whole answer that did not say
  ``Connection: close``. A kept connection the office closed meanwhile is noticed when the request
  fails before any byte of an answer: the request is sent once more on a new connection (the
  office deduplicates on the delivery id, so at worst it is told twice, as at-least-once allows).
* A connection idle for ``keepalive_s`` (15 s, aiohttp's default) is closed, not used again.
* ``timeout`` bounds the whole exchange, connecting included; a timed-out connection is closed.
* Header values with CR or LF are refused (``ValueError``): no header injection.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Mapping
from typing import NamedTuple, cast
from urllib.parse import urlsplit

_MAX_HEAD = 64 * 1024


class Answer(NamedTuple):
    status: int
    headers: Mapping[str, str]
    """Header names in lower case (a repeated header: its last value)."""
    body: bytes


class WireError(ConnectionError):
    """The exchange failed on the wire (closed early, an answer that is not HTTP)."""


class _Target(NamedTuple):
    key: tuple[str, str, int]
    head: bytes
    """The request line and Host header."""
    tls: bool


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname if parts.hostname.isascii() else parts.hostname.encode("idna").decode("ascii")
    host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii() or any(c in path for c in "\r\n\t "):
        raise ValueError(f"a push URL's path must be ASCII without spaces: {url!r}")
    head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n"
    return _Target((parts.scheme, host, port), head.encode("ascii"), parts.scheme == "https")


def _header_lines(headers: Mapping[str, str]) -> bytes:
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    # one CR and one LF a header (its end) and no colon in a name, checked on the whole text at once
    if text.count("\r") != len(headers) or text.count("\n") != len(headers) or ":" in "".join(headers):
        for name, value in headers.items():
            if any(c in name or c in value for c in "\r\n") or ":" in name:
                raise ValueError(f"header {name!r}: CR, LF or a colon where none may be")
    return text.encode("latin-1")


class _Connection(asyncio.Protocol):
    """One connection: a request at a time, its answer read whole."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buf = bytearray()
        self.answer: asyncio.Future[Answer] | None = None
        self.got_bytes = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.length: int | None = None  # bytes of body still to read; None: chunked or to the end
        self.chunked = False
        self.body = bytearray()
        self.keep = True
        self.in_head = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (a stream transport: asyncio's or uvloop's, which does not subclass asyncio.Transport)
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        fut = self.answer
        if fut is None or fut.done():
            return
        if not self.in_head and self.length is None and not self.chunked:  # framed by the connection's end
            self.keep = False
            self._done()
        else:
            fut.set_exception(WireError(f"connection closed before a whole answer ({exc or 'end of stream'})"))

    def send(self, data: list[bytes]) -> asyncio.Future[Answer]:
        if self.closed or self.transport is None:
            raise WireError("connection closed before the request")
        self.answer = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        self._reset()
        self.transport.writelines(data)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.answer is None or self.answer.done():
            self.keep = False  # bytes nobody asked for: this connection is not kept
            return
        self.buf += data
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self.keep = False
            self.answer.set_exception(WireError(f"not an HTTP answer: {exc}"))
            assert self.transport is not None
            self.transport.close()

    def _parse(self) -> None:
        while self.answer is not None and not self.answer.done():
            if self.in_head:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > _MAX_HEAD:
                        raise ValueError("head too large")
                    return
                head = bytes(self.buf[:end])
                del self.buf[:end + 4]
                self._head(head)
                continue
            if self.chunked:
                if not self._chunk():
                    return
                continue
            if self.length is None:  # to the connection's end
                self._take(len(self.buf))
                return
            self._take(min(self.length, len(self.buf)))
            if self.length == 0:
                self._done()
            return

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        if not version.startswith("HTTP/1."):
            raise ValueError(f"status line {lines[0][:60]!r}")
        self.status = int(status)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"header line {line[:60]!r}")
            headers[name.strip().lower()] = value.strip()
        if 100 <= self.status < 200:  # informational: the real answer follows
            return
        self.headers = headers
        self.in_head = False
        self.keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = True
            self.length = 0
        elif "content-length" in headers:
            self.length = int(headers["content-length"])
            if self.length < 0:
                raise ValueError("negative Content-Length")
        elif self.status in (204, 304):
            self.length = 0
        else:
            self.length = None
            self.keep = False
        if self.length == 0 and not self.chunked:
            self._done()

    def _chunk(self) -> bool:
        """Read what the buffer holds of the chunked body; False when more bytes are needed."""
        if self.length:  # inside a chunk: its data, then CRLF
            if len(self.buf) < self.length + 2:
                return False
            self._take(self.length)
            del self.buf[:2]
            self.length = 0
            return True
        end = self.buf.find(b"\r\n")
        if end < 0:
            return False
        size = int(bytes(self.buf[:end]).split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:  # the last chunk, then trailer lines (if any) up to an empty line
            rest = self.buf[end + 2:]
            if rest.startswith(b"\r\n"):
                del self.buf[:end + 4]
            else:
                trailers = rest.find(b"\r\n\r\n")
                if trailers < 0:
                    return False
                del self.buf[:end + 2 + trailers + 4]
            self._done()
            return True
        del self.buf[:end + 2]
        self.length = size
        return True

    def _take(self, n: int) -> None:
        room = self.max_body - len(self.body)
        self.body += self.buf[:min(n, max(room, 0))]
        if n > room:
            self.keep = False  # the rest is not read: the connection cannot carry another request
        del self.buf[:n]
        if self.length is not None and not self.chunked:
            self.length -= n

    def _done(self) -> None:
        if self.buf:
            self.keep = False
        fut, self.answer = self.answer, None
        if fut is not None and not fut.done():
            fut.set_result(Answer(self.status, self.headers, bytes(self.body)))


def _expire(answer: asyncio.Future[Answer]) -> None:
    """The deadline passed before the answer came (:meth:`Wire._exchange` closes the connection)."""
    if not answer.done():
        answer.set_exception(TimeoutError())


class Wire:
    """Kept-alive connections per office (scheme, host, port), at most ``per_host`` at once."""

    def __init__(self, *, user_agent: str = "saraban-gateway/0.1", per_host: int = 32, max_body: int = 1 << 20,
                 keepalive_s: float = 15.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.user_agent = f"User-Agent: {user_agent}\r\n".encode()
        #: A connection idle longer is closed rather than used (offices close idle ones too; aiohttp's default)
        self.keepalive_s = keepalive_s
        self.per_host = per_host
        self.max_body = max_body
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> Answer:
        target = _target(url)
        request = [target.head, self.user_agent, _header_lines(headers),
                   b"Content-Length: %d\r\n\r\n" % len(body), body]
        slots = self._slots.get(target.key)
        if slots is None:
            slots = self._slots[target.key] = asyncio.Semaphore(self.per_host)
        # ``timeout`` bounds the whole exchange by one deadline: a wait for a free slot or a new connection
        # under asyncio.timeout_at, the answer by a timer on its future (_exchange). The usual push (a slot
        # free, a kept connection) then waits on nothing but its answer, without asyncio.timeout's context
        # manager around the whole (~15k instructions of a push's ~139k).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if slots.locked():  # every connection to this office in use: wait for one, within the deadline
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        else:
            await slots.acquire()  # (free: taken without waiting)
        try:
            conn = self._kept(target.key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(target, deadline)
            try:
                answer = await self._exchange(conn, request, deadline)
            except WireError:
                if not (reused and not conn.got_bytes):
                    raise
                # a kept connection the office had closed: once more on a new one
                conn = await self._connect(target, deadline)
                answer = await self._exchange(conn, request, deadline)
            if conn.keep and not conn.closed:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(target.key, []).append(conn)
            elif conn.transport is not None:
                conn.transport.close()
            return answer
        finally:
            slots.release()

    async def _exchange(self, conn: _Connection, request: list[bytes], deadline: float) -> Answer:
        timer: asyncio.TimerHandle | None = None
        try:
            answer = conn.send(request)  # (raises at once on a connection closed meanwhile)
            timer = asyncio.get_running_loop().call_at(deadline, _expire, answer)
            return await answer
        except BaseException:
            conn.keep = False
            if conn.transport is not None:
                conn.transport.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _kept(self, key: tuple[str, str, int]) -> _Connection | None:
        """A kept connection to ``key`` that is still usable, or None (those found unusable are closed)."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            usable = conn.keep and not conn.closed and conn.transport is not None and not conn.transport.is_closing()
            if usable and now - conn.idle_since < self.keepalive_s:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    async def _connect(self, target: _Target, deadline: float) -> _Connection:
        _scheme, host, port = target.key
        async with asyncio.timeout_at(deadline):
            _transport, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self.max_body), host, port,
                ssl=self._context() if target.tls else None, server_hostname=host if target.tls else None)
        return conn

    def close(self) -> None:
        """Close every kept connection (requests in flight finish on theirs)."""
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
