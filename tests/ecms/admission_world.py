"""A whole gateway on loopback for the admission tests: the main listener over TLS (the development PKI),
the legacy listener on a plain-HTTP port and a TLS port with an RSA certificate from the same PKI,
real PostgreSQL; helpers to change an agency's admission as the CLI does and to read what was stored.

Agencies of the example directory: 20001 (e-CMS, 5 digits) sends to 1550100000 (Chiang Mai, native pull).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.cli.keys import change_admission
from gateway.core import appkeys as keys
from gateway.core.admission import EcmsAdmission, KeyThrottle, with_networks, with_new_key
from gateway.core.settings import Settings
from gateway.core.signing import server_ssl_context
from gateway.ecms.endpoint import THROTTLE_KEY
from gateway.ecms.settings import ECMS_PATH
from gateway.http.app import create_app
from pki.certfactory import simple_name
from tests.ecms.conftest import load_vector
from tests.support import free_port

ECMS_AGENCY = "20001"
CMI = "1550100000"


def letter(*, sender: str = ECMS_AGENCY, secret: str = "001", number: str = "อก 0905/0007") -> bytes:
    """BOI-DMS's letter (VB.NET, string-built SOAP) from ``sender`` to Chiang Mai, secrecy ``secret``."""
    return (load_vector("letter-vb-linqws")
            .replace(b"<ram:ID>11008</ram:ID>", f"<ram:ID>{sender}</ram:ID>".encode())
            .replace(b"<ram:ID>11002</ram:ID>", f"<ram:ID>{CMI}</ram:ID>".encode())
            .replace(b"<ram:SecretCode>001</ram:SecretCode>", f"<ram:SecretCode>{secret}</ram:SecretCode>".encode())
            .replace("อก 0905/0007".encode(), number.encode()))


def legacy_tls_client(anchors: Path, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1,
                      ciphers: str = "AES128-SHA:AES256-SHA:@SECLEVEL=0") -> ssl.SSLContext:
    """A client as an old .NET Framework one connects: TLS 1.0 only, RSA key exchange, CBC suites."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers(ciphers)
    ctx.load_verify_locations(cafile=str(anchors))
    return ctx


@dataclass
class World:
    app: web.Application
    settings: Settings
    anchors: Path
    main_url: str
    legacy_http: str
    legacy_https: str

    @property
    def pool(self):
        return self.app[keys.POOL]

    def main_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.anchors))

    async def admission(self, code: str, change: Callable[[EcmsAdmission | None], EcmsAdmission]) -> None:
        """Change ``code``'s admission as ``gateway ecms-key`` does, then put the new directory in force here."""
        await change_admission(self.pool, code, change, at=dt.datetime.now(dt.UTC), who="test", reason="test")
        await self.app[keys.EXCHANGE].live_directory.reload()

    async def issue_key(self, code: str) -> str:
        issued: list[str] = []

        def change(adm: EcmsAdmission | None) -> EcmsAdmission:
            key, new = with_new_key(adm, dt.datetime.now(dt.UTC))
            issued.append(key)
            return new

        await self.admission(code, change)
        return issued[-1]

    async def set_networks(self, code: str, *networks: str) -> None:
        await self.admission(code, lambda adm: with_networks(adm, networks, code))

    async def messages(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM messages"))

    async def accepted_facts(self, message_id: str) -> dict:
        row = await self.pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted' "
                                       "AND details->>'message_id' = $1", message_id)
        assert row is not None, message_id
        return dict(row)


async def post(url: str, body: bytes, *, ssl_context: ssl.SSLContext | bool = False,
               local: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST as an e-CMS client (from ``local``, a loopback address of the client's choice); (status, body)."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(url, data=body, ssl=ssl_context, headers={"Content-Type": "text/xml; charset=utf-8",
                                                                        **(headers or {})}) as resp:
            return resp.status, await resp.read()


async def post_tls(url: str, body: bytes, ssl_context: ssl.SSLContext) -> tuple[int, bytes, str | None]:
    """One HTTP/1.1 POST over a TLS connection of our own, to read the version the handshake agreed on."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=ssl_context,
                                                   server_hostname=parts.hostname)
    try:
        version = writer.get_extra_info("ssl_object").version()
        writer.write(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: text/xml; charset=utf-8\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        payload = _unchunk(payload)
    return status, payload, version


def _unchunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


async def start_world(database_url: str, workdir: Path, dev_pki, *, throttle: KeyThrottle | None = None,
                      **overrides) -> tuple[World, web.AppRunner]:
    rsa = dev_pki.issuing_factory().issue(simple_name("127.0.0.1", "Saraban Gateway legacy"), profile="tls-server",
                                         key_type="rsa-2048", ip_addresses=["127.0.0.1"], dns_names=["localhost"],
                                         days=30)
    rsa.write(workdir / "legacy-tls.pem", workdir / "legacy-tls.key", [dev_pki.intermediate_cert])
    port, http_port, tls_port = free_port(), free_port(), free_port()
    settings = Settings(database_url=database_url, data_dir=workdir, pki_dir=dev_pki.directory, tls=True,
                        host="127.0.0.1", port=port, audit_seal_interval_s=0.05,
                        ecms_legacy_host="127.0.0.1", ecms_legacy_http_port=http_port, ecms_legacy_tls_port=tls_port,
                        ecms_legacy_tls_cert=workdir / "legacy-tls.pem", ecms_legacy_tls_key=workdir / "legacy-tls.key",
                        **overrides)
    app = create_app(settings)
    app[THROTTLE_KEY] = throttle or KeyThrottle()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ssl_context(settings, app[keys.TRUST]))
    await site.start()
    world = World(app, settings, dev_pki.anchors, f"https://127.0.0.1:{port}",
                  f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{tls_port}")
    return world, runner


def keyed(base: str, key: str) -> str:
    return f"{base}/ecms/{key}{ECMS_PATH}"
