"""RFC 3161 time-stamps on checkpoints, from a real local TSA on loopback."""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest
from aiohttp import web
from asn1crypto import keys as akeys
from asn1crypto import tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from gateway.audit.live import verify_database
from gateway.audit.sealer import ChainSealer, SealerSettings
from gateway.audit.tsa import http_timestamper
from gateway.core.clock import FakeClock
from gateway.storage import audit
from tests.support import free_port


def _tsa_identity():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko's test TSA is RSA-only
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Saraban tests")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)), akeys.PrivateKeyInfo.load(der_key)


@pytest.fixture
async def tsa_url():
    cert, key = _tsa_identity()
    stamper = DummyTimeStamper(tsa_cert=cert, tsa_key=key, certs_to_embed=[cert])
    requests = []

    async def handle(request: web.Request) -> web.Response:
        req = tsp.TimeStampReq.load(await request.read())
        requests.append(req)
        return web.Response(body=stamper.request_tsa_response(req).dump(),
                            content_type="application/timestamp-reply")

    app = web.Application()
    app.router.add_post("/tsa", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/tsa", requests
    await runner.cleanup()


async def test_checkpoints_are_time_stamped_and_a_swapped_token_is_caught(pool, signer, tsa_url):
    url, requests = tsa_url
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        sealer = ChainSealer(pool, clock=clock, signer=signer, timestamper=http_timestamper(session, url),
                             settings=SealerSettings(checkpoint_events=3, checkpoint_seconds=3600))
        for _round in range(2):
            for i in range(3):
                await audit.append(pool, at=clock.now(), actor="test", kind="test.event", details={"i": i})
            await sealer.seal_once(force_checkpoint=True)
            clock.advance(60)
    tokens = await pool.fetch("SELECT id, tsa_token FROM audit_checkpoints ORDER BY seq")
    assert len(tokens) >= 2 and all(t["tsa_token"] for t in tokens) and len(requests) == len(tokens)
    report = await verify_database(pool, signer.certificate)
    assert report.ok, report.summary()
    assert any("time-stamps verified" in n for n in report.notes)

    # a token moved from another checkpoint does not cover this checkpoint's signature
    await pool.execute("UPDATE audit_checkpoints SET tsa_token = $1 WHERE id = $2",
                       tokens[0]["tsa_token"], tokens[1]["id"])
    report = await verify_database(pool, signer.certificate)
    assert not report.ok and any(p.code == "timestamp" for p in report.problems), report.summary()
