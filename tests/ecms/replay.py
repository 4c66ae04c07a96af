"""Replay harness: the real gateway on loopback, admission modes, and a step recorder.

A conversation is a list of named steps run in order against one gateway; each step is a client
function (:mod:`tests.ecms.replay_clients`) whose answer is read as the client reads it
(:mod:`tests.ecms.dotnet`) and checked. :class:`Conversation` records every step, so a failing run
says how many steps passed and which failed first, per client family and admission mode.

Admission modes (:data:`MODES`): how an unchanged client is let in; only the URL it was configured
with and the transport under it change, as for a real client whose operator changed only its URL:

* ``token``: plain HTTP, the agency's development token in the configured URL (``?token=``);
* ``client-cert``: HTTPS with the agency's TLS client certificate (Windows certificate store for
  .NET clients: no code change), the bare endpoint URL;
* ``url-key``: HTTPS on the main listener, ``/ecms/<key>/ecms-ws01/service2``, the key issued to the
  agency in its directory entry, no credential otherwise;
* ``legacy-http``: the legacy listener's plain-HTTP port, the bare ``http://`` URL, each agency's
  system calling from its own address (A from 127.0.0.1, B from 127.0.0.3), registered as its source
  network; letters marked ลับ/ลับมาก are refused there (:attr:`Running.secrets_refused`);
* ``legacy-tls``: the legacy listener's TLS port as an old .NET Framework client reaches it (TLS 1.0
  only, RSA key exchange, CBC suites) with a URL key;
* ``legacy-refused``: the legacy plain-HTTP port from addresses in no registered network: every
  request is refused with ErrorDetail ECMS-200 ``auth.unknown_network`` (:attr:`Running.refused`) and
  nothing is stored.

A mode is a factory that starts the gateway its own way and answers each agency's URL, TLS context
and the machine it calls from; the native agency of the mixed conversation always uses the main
listener (:attr:`Running.native_base`), since the legacy listener serves the e-CMS endpoint only.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.admission import EcmsAdmission, with_networks, with_new_key
from gateway.core.directory import Directory
from gateway.core.ecmswire import soap
from gateway.core.errors import GatewayError
from gateway.core.signing import build_trust, server_ssl_context
from gateway.ecms.settings import ECMS_PATH
from gateway.http.app import create_app
from pki.certfactory import agency_name, simple_name
from tests.ecms.admission_world import legacy_tls_client
from tests.ecms.dotnet import Document, NullReference, WebException, need
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
    """``http(s)://127.0.0.1:port`` of the listener the e-CMS clients reach."""
    urls: dict[str, str]
    """Agency -> the e-CMS URL configured in its client."""
    contexts: dict[str, ssl.SSLContext | None] = field(default_factory=dict)
    """Agency -> its TLS client context (None: the default)."""
    native_headers: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)
    """Agency -> the HTTP client of its own machine (bound to its source address), where the mode says."""
    native_base: str = ""
    """The main listener, for the native agency's API (empty: ``base``)."""
    secrets_refused: bool = False
    """Letters marked ลับ/ลับมาก are refused here (the legacy listener's plain HTTP)."""
    refused: str | None = None
    """Every e-CMS request is refused with ErrorDetail ECMS-200 and this reason code (``auth.*``)."""
    keys: dict[str, str] = field(default_factory=dict)
    """Agency -> its URL key, where the mode issued one (to search for it where it must not be)."""


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
        http = self.running.sessions.get(agency, self.http)
        async with http.post(self.url(agency), data=body, headers={"Content-Type": content_type},
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


def _directory(admissions: dict[str, EcmsAdmission] | None = None) -> Directory:
    """The test directory, A and B on e-CMS routes, each with the admission entry the mode gives it."""
    raw = json.loads(json.dumps(directory_dict({A: ECMS_ROUTE, B: ECMS_ROUTE})))
    for entry in raw["agencies"]:
        if entry["code"] in (admissions or {}):
            entry["ecms_admission"] = (admissions or {})[entry["code"]].to_dict()
    return Directory.from_dict(raw)


@dataclass
class _Served:
    app: web.Application
    main: str
    """``https://127.0.0.1:port``, the main listener (TLS)."""
    legacy_http: str = ""
    legacy_https: str = ""


@asynccontextmanager
async def _serve(database_url: str, workdir: Path, dev_pki: Any, admissions: dict[str, EcmsAdmission], *,
                 legacy: bool = False) -> AsyncIterator[_Served]:
    """The gateway with its main listener on TLS and (``legacy``) the legacy listener's plain-HTTP port and
    its TLS port (an RSA certificate from the development PKI, TLS 1.0 and up, the default legacy suites)."""
    extra: dict[str, Any] = {}
    if legacy:
        rsa = dev_pki.issuing_factory().issue(simple_name("127.0.0.1", "Saraban Gateway legacy"), profile="tls-server",
                                             key_type="rsa-2048", ip_addresses=["127.0.0.1"], days=30)
        rsa.write(workdir / "legacy-tls.pem", workdir / "legacy-tls.key", [dev_pki.intermediate_cert])
        extra = {"ecms_legacy_host": "127.0.0.1", "ecms_legacy_http_port": free_port(),
                 "ecms_legacy_tls_port": free_port(), "ecms_legacy_tls_cert": workdir / "legacy-tls.pem",
                 "ecms_legacy_tls_key": workdir / "legacy-tls.key"}
    settings = make_settings(database_url, workdir, tls=True, pki_dir=dev_pki.directory, **extra)
    app = create_app(settings, directory=_directory(admissions))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ssl_context(settings, app[keys.TRUST])).start()
    served = _Served(app, f"https://127.0.0.1:{port}")
    if legacy:
        served.legacy_http = f"http://127.0.0.1:{settings.ecms_legacy_http_port}"
        served.legacy_https = f"https://127.0.0.1:{settings.ecms_legacy_tls_port}"
    try:
        yield served
    finally:
        await runner.cleanup()


def _keys() -> dict[str, tuple[str, EcmsAdmission]]:
    """A URL key for A and for B, as ``gateway ecms-key issue`` gives them: (key, admission entry)."""
    return {a: with_new_key(None, dt.datetime.now(dt.UTC)) for a in (A, B)}


def _keyed(base: str, key: str) -> str:
    return f"{base}/ecms/{key}{ECMS_PATH}"


@asynccontextmanager
async def url_key_mode(database_url: str, workdir: Path, dev_pki: Any) -> AsyncIterator[Running]:
    """HTTPS on the main listener, the agency's URL key in its configured URL; no credential otherwise."""
    issued = _keys()
    async with _serve(database_url, workdir, dev_pki, {a: adm for a, (_, adm) in issued.items()}) as g:
        trust = ssl.create_default_context(cafile=str(dev_pki.anchors))
        contexts: dict[str, ssl.SSLContext | None] = dict.fromkeys(TOKENS, trust)
        yield Running(g.app, g.main, {a: _keyed(g.main, k) for a, (k, _) in issued.items()}, contexts,
                      keys={a: k for a, (k, _) in issued.items()})


#: Where each e-CMS agency's system calls from: inside its registered network, and outside any.
_REGISTERED = {A: "127.0.0.1", B: "127.0.0.3"}
_UNREGISTERED = {A: "127.0.0.2", B: "127.0.0.4"}


@asynccontextmanager
async def _machines(sources: dict[str, str]) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """One HTTP client per agency, each bound to that agency's machine address (the TCP peer the gateway sees)."""
    sessions = {a: aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(addr, 0)))
                for a, addr in sources.items()}
    try:
        yield sessions
    finally:
        for session in sessions.values():
            await session.close()


def _networks() -> dict[str, EcmsAdmission]:
    return {a: with_networks(None, [f"{addr}/32"], a) for a, addr in _REGISTERED.items()}


@asynccontextmanager
async def legacy_http_mode(database_url: str, workdir: Path, dev_pki: Any) -> AsyncIterator[Running]:
    """The legacy listener's plain HTTP, the bare ``http://`` URL, each agency from its registered network."""
    async with _serve(database_url, workdir, dev_pki, _networks(), legacy=True) as g, \
            _machines(_REGISTERED) as sessions:
        trust = ssl.create_default_context(cafile=str(dev_pki.anchors))
        yield Running(g.app, g.legacy_http, dict.fromkeys((A, B), g.legacy_http + ECMS_PATH), {NATIVE: trust},
                      sessions=sessions, native_base=g.main, secrets_refused=True)


@asynccontextmanager
async def legacy_tls_mode(database_url: str, workdir: Path, dev_pki: Any) -> AsyncIterator[Running]:
    """The legacy listener's TLS port as an old .NET Framework client reaches it (TLS 1.0 only, RSA key
    exchange, CBC suites), the agency's URL key in its configured URL."""
    issued = _keys()
    async with _serve(database_url, workdir, dev_pki, {a: adm for a, (_, adm) in issued.items()}, legacy=True) as g:
        old = legacy_tls_client(dev_pki.anchors)
        contexts: dict[str, ssl.SSLContext | None] = {A: old, B: old,
                                                      NATIVE: ssl.create_default_context(cafile=str(dev_pki.anchors))}
        yield Running(g.app, g.legacy_https, {a: _keyed(g.legacy_https, k) for a, (k, _) in issued.items()}, contexts,
                      native_base=g.main, keys={a: k for a, (k, _) in issued.items()})


@asynccontextmanager
async def legacy_refused_mode(database_url: str, workdir: Path, dev_pki: Any) -> AsyncIterator[Running]:
    """The legacy listener's plain HTTP from addresses in no registered network: everything refused."""
    async with _serve(database_url, workdir, dev_pki, _networks(), legacy=True) as g, \
            _machines(_UNREGISTERED) as sessions:
        trust = ssl.create_default_context(cafile=str(dev_pki.anchors))
        yield Running(g.app, g.legacy_http, dict.fromkeys((A, B), g.legacy_http + ECMS_PATH), {NATIVE: trust},
                      sessions=sessions, native_base=g.main, secrets_refused=True, refused="auth.unknown_network")


#: Admission mode name -> the context manager that starts the gateway that way.
MODES: dict[str, Callable[[str, Path, Any], Any]] = {
    "token": token_mode, "client-cert": cert_mode, "url-key": url_key_mode, "legacy-http": legacy_http_mode,
    "legacy-tls": legacy_tls_mode, "legacy-refused": legacy_refused_mode}


#: The answers of requests that are no e-CMS operation at all (not XML, an unknown operation): refused for
#: what they are before anyone is admitted, so they carry that refusal, not ECMS-200.
_NOT_AN_OPERATION = ("ECMS-100", "ECMS-104")


def _is_operation(request: bytes) -> bool:
    try:
        soap.parse_request(request, max_bytes=len(request) + 1, validate=False)
    except GatewayError:
        return False
    return True


def refusal_problem(posts: list[tuple[str, bytes, int, bytes]], reason: str) -> str | None:
    """None if every post was refused as a client reads a refusal: HTTP 200 (any other status throws
    before the body is read) and one ``ErrorDetail`` read by position as mil-doc reads it
    (``ChildNodes[0]``, ``[1]``), ECMS-200 with ``reason`` in its description (or, for a request that is
    no e-CMS operation, its ECMS-1xx)."""
    for agency, request, status, answer in posts:
        if status != 200:
            return f"{agency}: HTTP {status}"
        try:
            found = [(need(e.child_nodes[0]).inner_xml, need(e.child_nodes[1]).inner_xml)
                     for e in Document(answer).get_elements_by_tag_name("ErrorDetail")]
        except NullReference as exc:
            return f"{agency}: {exc}"
        if len(found) != 1:
            return f"{agency}: ErrorDetails {found}"
        code, description = found[0]
        if code in _NOT_AN_OPERATION and not _is_operation(request):
            continue
        if code != "ECMS-200" or reason not in description:
            return f"{agency}: {code} {description[:200]!r}, expected ECMS-200 {reason}"
    return None


async def nothing_stored(running: Running, *senders: str) -> None:
    """A refused agency left nothing behind: no message from it, no delivery of one, no acceptance."""
    pool = running.app[keys.POOL]
    got = await pool.fetchval("SELECT count(*) FROM messages WHERE sender = ANY($1)", list(senders))
    assert got == 0, f"{got} messages stored from {senders}"
    got = await pool.fetchval("SELECT count(*) FROM audit_events WHERE kind = 'message.accepted' "
                              "AND actor = ANY($1)", list(senders))
    assert got == 0, f"{got} acceptances of messages from {senders}"


async def key_stored_nowhere(running: Running) -> None:
    """No URL key of the mode is in any stored row (as text, or as the hex of a bytea column): the
    clients write their configured URL, key and all, into ``wsa:To``."""
    if not running.keys:
        return
    pool = running.app[keys.POOL]
    stored = []
    for t in await pool.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                              "AND table_type = 'BASE TABLE'"):
        stored += [r["t"] for r in await pool.fetch(f'SELECT t::text AS t FROM "{t["table_name"]}" t')]
    text = "\n".join(stored)
    for agency, key in running.keys.items():
        assert key not in text and key.encode().hex() not in text, f"{agency}'s URL key is stored"


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
    refused: int = 0
    """In a refused mode (:attr:`Running.refused`), how many steps were refused as the mode expects."""

    async def step(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        start = len(self.wire.log) if self.wire is not None else 0
        problem: str | None = None
        try:
            await run()
        except Exception as exc:  # noqa: BLE001 - a replayed client's failure is a step's outcome
            problem = f"{type(exc).__name__}: {exc}"[:400]
        if self.wire is not None:
            self.posts.append((name, start, len(self.wire.log)))
            refused = self.wire.running.refused
            if refused is not None and len(self.wire.log) > start:
                # a refused mode: the step passes when each of its requests was refused as the client reads
                # a refusal; what the client's code then does with an empty answer is its own affair
                problem = refusal_problem(self.wire.log[start:], refused)
                self.refused += problem is None
        self.results.append((name, problem))

    @property
    def passed(self) -> int:
        return sum(1 for _, problem in self.results if problem is None)

    def summary(self) -> str:
        failed = [f"{name}: {problem}" for name, problem in self.results if problem is not None]
        refused = f" ({self.refused} of them refused as expected)" if self.refused else ""
        return (f"{self.family} / {self.mode}: {self.passed} of {len(self.results)} steps pass{refused}"
                + ("".join(f"\n  FAIL {f}" for f in failed)))


async def replay(family: str, mode: str, conversation: Callable[[Wire, Conversation], Awaitable[None]],
                 database_url: str, workdir: Path, dev_pki: Any, *,
                 after: Callable[[Conversation, Wire], None] | None = None) -> Conversation:
    """One client family's whole conversation in one admission mode (a key of :data:`MODES`), against the
    gateway that mode starts: every step runs and is recorded, the summary is printed (how many steps
    pass, which failed first), and the replay fails unless every step passed. ``after`` runs on the
    finished conversation while its wire log is there (the token replays write the conformance kit's
    ``conversations/<family>.json`` from it: :func:`tests.ecms.vector_export.export`)."""
    c = Conversation(family, mode)
    async with MODES[mode](database_url, workdir, dev_pki) as running, aiohttp.ClientSession() as http:
        c.wire = wire = Wire(running, http)
        await conversation(wire, c)
    print(c.summary())
    if after is not None:
        after(c, wire)
    assert c.passed == len(c.results), c.summary()
    return c
