"""Trust end to end: HTTPS with client certificates, signed letters, the seal checked at the office.

A real `gateway serve` with the development PKI (TLS server certificate,
client certificates per agency, signatures required, sealing on); the sending
agency authenticates with its TLS client certificate only (no token); the
receiving office verifies both the author's signature and the gateway's seal
on what it receives, and the sender verifies its receipts offline.
"""

from __future__ import annotations

import hashlib
import ssl

import aiohttp
import asyncpg
import pytest

from pki.errors import PkiError
from pki.receipts import verify_receipt
from pki.seal import verify_sealed
from pki.sign import sign_envelope
from tests.support import (
    CMI,
    KKN,
    OPM,
    GatewayProcess,
    Office,
    free_port,
    gateway_env,
    letter_bytes,
    wait_for,
    write_directory,
)


def client_ssl(dev_pki, agency: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(dev_pki.anchors))
    if agency is not None:
        creds = dev_pki.agencies[agency]
        ctx.load_cert_chain(str(creds.tls_client_cert), str(creds.tls_client_key))
    return ctx


@pytest.fixture
async def secure_world(database_url, workdir, dev_pki):
    office = await Office(name="cmi").start()
    directory = write_directory(workdir / "directory.json", {CMI: {"kind": "push", "url": office.url}})
    port = free_port()
    env = gateway_env(database_url=database_url, directory=directory, port=port, data_dir=workdir,
                      GATEWAY_REQUIRE_SIGNATURE="true", GATEWAY_SEAL="true", GATEWAY_TLS="true",
                      GATEWAY_PKI_DIR=str(dev_pki.directory), GATEWAY_REVOCATION="soft-fail")
    gw = GatewayProcess(env=env, port=port, log_path=workdir / "gateway.log").start()
    gw_url = f"https://127.0.0.1:{port}"

    async def ready():
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{gw_url}/readyz", ssl=client_ssl(dev_pki, None)) as r:
                    return r.status == 200
        except aiohttp.ClientError:
            if gw.proc.poll() is not None:
                raise RuntimeError((workdir / "gateway.log").read_text()[-3000:]) from None
            return False

    await wait_for(ready, timeout=30, what="gateway over TLS")
    yield {"url": gw_url, "office": office, "database_url": database_url, "log": workdir / "gateway.log"}
    gw.stop()
    await office.stop()


async def post(url, data, ctx):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/v1/messages", data=data, headers={"Content-Type": "application/xml"},
                          ssl=ctx) as r:
            return r.status, await r.read()


async def test_signed_letter_over_mutual_tls_is_sealed_and_verifiable_at_the_office(secure_world, dev_pki):
    url, office = secure_world["url"], secure_world["office"]
    signed = sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,), message_id="pki-1"), dev_pki.agency_signer(OPM))
    status, receipt = await post(url, signed, client_ssl(dev_pki, OPM))
    assert status == 202, receipt
    r = await verify_receipt(receipt, dev_pki.gateway_cert)
    assert (r.kind, r.message_id, r.sender) == ("submission", "pki-1", OPM)

    assert r.sha256 == hashlib.sha256(signed).hexdigest()
    # ... on uvloop, the server's default loop: its TLS transport hands the client certificate over as asyncio's does
    assert '"event_loop": "uvloop"' in secure_world["log"].read_text()

    await wait_for(lambda: len(office.received) == 1, timeout=20, what="delivery to the office")
    forwarded = next(iter(office.received.values()))
    trust = dev_pki.trust_store(revocation="off")
    sealed = await verify_sealed(forwarded, trust, gateway_cert=dev_pki.gateway_cert)
    assert sealed.seal_ok, sealed.seal_failure
    assert sealed.author.agency_code == OPM
    # a receiver also detects a forwarded envelope altered after sealing
    tampered = forwarded.replace("ขอเชิญประชุม".encode(), "ขอยกเลิกประชุม".encode())
    with pytest.raises(PkiError):
        await verify_sealed(tampered, trust, gateway_cert=dev_pki.gateway_cert)


async def _stored(database_url) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM messages")
    finally:
        await conn.close()


async def test_refusals_over_mutual_tls(secure_world, dev_pki):
    url = secure_world["url"]
    opm = client_ssl(dev_pki, OPM)
    # unsigned
    status, body = await post(url, letter_bytes(sender=OPM, recipients=(CMI,)), opm)
    assert (status, b"signature.missing" in body) == (422, True)
    # signed with a valid certificate of another agency
    other = sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,)), dev_pki.agency_signer(KKN))
    status, body = await post(url, other, opm)
    assert status == 403 and b"certificate.wrong_agency" in body
    # a letter of OPM's over Chiang Mai's client certificate
    signed = sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,)), dev_pki.agency_signer(OPM))
    status, body = await post(url, signed, client_ssl(dev_pki, CMI))
    assert status == 403 and b"auth.wrong_sender" in body
    # no client certificate and no token
    status, body = await post(url, signed, client_ssl(dev_pki, None))
    assert status == 401 and b"auth.required" in body
    assert await _stored(secure_world["database_url"]) == 0
