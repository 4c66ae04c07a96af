"""Replay harness: the real gateway on loopback, admission modes, and a step recorder.

A conversation is a list of named steps run in order against one gateway; each step is a client
function (:mod:`tests.ecms.replay_clients`) whose answer is read as the client reads it
(:mod:`tests.ecms.dotnet`) and checked. :class:`Conversation` records every step, so a failing run
says how many steps passed and which failed first, per client family and admission mode.

Admission modes (:class:`Admission`): how an unchanged client is let in. ``token`` puts the
agency's development token in the configured URL (``?token=``: all an operator can change);
``client-cert`` configures the agency's TLS client certificate (Windows certificate store for .NET
clients: no code change) on HTTPS. A mode is a factory that starts the gateway its own way and
answers each agency's URL and TLS context; the URL-key and legacy-listener modes add theirs here.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.core.directory import Directory
from gateway.core.signing import build_trust, server_ssl_context
from gateway.ecms.settings import ECMS_PATH
from gateway.http.app import create_app
from pki.certfactory import agency_name
from tests.ecms.dotnet import WebException
from tests.integration.conftest import make_settings
from tests.support import CMI, KKN, OPM, TOKENS, directory_dict, free_port

#: The two e-CMS agencies of a conversation (A sends, B receives) and the native one (mixed).
A, B, NATIVE = OPM, CMI, KKN
#: e-CMS agencies pull through the facade only: receipts are not queued for them.
ECMS_ROUTE = {"kind": "pull", "protocol": "ecms"}


@dataclass
class Running:
    """A started gateway as one admission mode reaches it."""

    app: web.Application
    base: str
    """``http(s)://127.0.0.1:port``."""
    urls: dict[str, str]
    """Agency -> the e-CMS URL configured in its client."""
    contexts: dict[str, ssl.SSLContext | None] = field(default_factory=dict)
    """Agency -> its TLS client context (None: the default)."""
    native_headers: dict[str, str] = field(default_factory=dict)


class Wire:
    """Posts one client's bytes as ``WebRequest`` does (text/xml, no SOAPAction, no credential of its
    own) and returns the body; any status but 200 raises :class:`WebException`."""

    def __init__(self, running: Running, http: aiohttp.ClientSession) -> None:
        self.running = running
        self.http = http
        self.statuses: list[int] = []
        #: (agency, request, HTTP status, answer) of every post, in order (for :mod:`tests.ecms.vector_export`).
        self.log: list[tuple[str, bytes, int, bytes]] = []

    def url(self, agency: str) -> str:
        return self.running.urls[agency]

    async def post(self, agency: str, body: bytes, content_type: str = "text/xml") -> bytes:
        ctx = self.running.contexts.get(agency)
        async with self.http.post(self.url(agency), data=body, headers={"Content-Type": content_type},
                                  ssl=ctx if ctx is not None else False) as resp:
            data = await resp.read()
            self.statuses.append(resp.status)
            self.log.append((agency, body, resp.status, data))
        if resp.status != 200:
            raise WebException(f"The remote server returned an error: ({resp.status})")
        return data


@asynccontextmanager
async def token_mode(database_url: str, workdir: Path, dev_pki: Any) -> AsyncIterator[Running]:
    """Plain HTTP, the development token in each agency's configured URL."""
    settings = make_settings(database_url, workdir, pki_dir=dev_pki.directory)
    directory = _directory()
    app = create_app(settings, directory=directory)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        yield Running(app, base, {a: f"{base}{ECMS_PATH}?token={TOKENS[a]}" for a in TOKENS})
    finally:
        await runner.cleanup()


@asynccontextmanager
async def cert_mode(database_url: str, workdir: Path, dev_pki: Any) -> AsyncIterator[Running]:
    """HTTPS with each agency's TLS client certificate (issued by the development CA, the agency named
    in its subject); the URL is the bare endpoint."""
    settings = make_settings(database_url, workdir, tls=True, client_certs="optional", pki_dir=dev_pki.directory)
    directory = _directory()
    app = create_app(settings, directory=directory)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port,
                      ssl_context=server_ssl_context(settings, build_trust(settings, directory))).start()
    base = f"https://127.0.0.1:{port}"
    factory = dev_pki.issuing_factory()
    contexts: dict[str, ssl.SSLContext | None] = {}
    for agency in TOKENS:
        issued = factory.issue(agency_name(agency, f"Agency {agency}"), profile="tls-client")
        cert, key = workdir / f"client-{agency}.pem", workdir / f"client-{agency}.key"
        issued.write(cert, key, [dev_pki.intermediate_cert])
        ctx = ssl.create_default_context(cafile=str(dev_pki.anchors))
        ctx.load_cert_chain(str(cert), str(key))
        contexts[agency] = ctx
    try:
        yield Running(app, base, {a: f"{base}{ECMS_PATH}" for a in TOKENS}, contexts)
    finally:
        await runner.cleanup()


#: Admission mode name -> the context manager that starts the gateway that way.
MODES: dict[str, Callable[[str, Path, Any], Any]] = {"token": token_mode, "client-cert": cert_mode}


def _directory() -> Directory:
    return Directory.from_dict(json.loads(json.dumps(directory_dict({A: ECMS_ROUTE, B: ECMS_ROUTE}))))


@dataclass
class Conversation:
    """Runs named steps in order and records each outcome; a step after a failed one still runs (the
    gateway's state is whatever the failed step left), so the count says how far a client gets."""

    family: str
    mode: str
    results: list[tuple[str, str | None]] = field(default_factory=list)
    wire: Wire | None = None
    """When set, each step remembers which of the wire's posts it made (``posts``)."""
    posts: list[tuple[str, int, int]] = field(default_factory=list)
    """(step name, first post, end) into ``wire.log``."""

    async def step(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        start = len(self.wire.log) if self.wire is not None else 0
        try:
            await run()
        except Exception as exc:  # noqa: BLE001 - a replayed client's failure is a step's outcome
            self.results.append((name, f"{type(exc).__name__}: {exc}"[:400]))
        else:
            self.results.append((name, None))
        if self.wire is not None:
            self.posts.append((name, start, len(self.wire.log)))

    @property
    def passed(self) -> int:
        return sum(1 for _, problem in self.results if problem is None)

    def summary(self) -> str:
        failed = [f"{name}: {problem}" for name, problem in self.results if problem is not None]
        return (f"{self.family} / {self.mode}: {self.passed} of {len(self.results)} steps pass"
                + ("".join(f"\n  FAIL {f}" for f in failed)))
