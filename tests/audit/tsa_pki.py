"""A test time-stamping PKI: a root and TSA certificates valid over chosen (fake) years, a TSA that signs
at a given time (pyHanko's DummyTimeStamper, RSA), and the same TSA served over HTTP on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from collections.abc import Callable

from aiohttp import web
from asn1crypto import keys as akeys
from asn1crypto import tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from tests.support import free_port

UTC = dt.UTC


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Saraban test TSA PKI")])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TsaRoot:
    def __init__(self, not_before: dt.datetime, not_after: dt.datetime, cn: str = "Test TSA Root") -> None:
        self.key = _key()
        self.cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(not_before).not_valid_after(not_after)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


class Tsa:
    """A TSA whose certificate is issued by ``root`` for [not_before, not_after]; it stamps at ``clock()``."""

    def __init__(self, root: TsaRoot, not_before: dt.datetime, not_after: dt.datetime, cn: str,
                 clock: Callable[[], dt.datetime] | None = None, crl_url: str | None = None) -> None:
        key = _key()
        self.root = root
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(root.cert.subject)
                     .public_key(key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(not_before).not_valid_after(not_after)
                     .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                     .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
                                    critical=False))
        if crl_url is not None:  # the root's CRL, which a TsaServer serves (GET /root.crl)
            builder = builder.add_extension(x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
        self.cert = builder.sign(root.key, hashes.SHA256())
        der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        self._asn1_cert = ax509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))
        self._asn1_root = ax509.Certificate.load(root.cert.public_bytes(serialization.Encoding.DER))
        self._key = akeys.PrivateKeyInfo.load(der_key)
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.requests = 0

    def respond(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        self.requests += 1
        alg = req["message_imprint"]["hash_algorithm"]["algorithm"].native
        stamper = DummyTimeStamper(tsa_cert=self._asn1_cert, tsa_key=self._key, fixed_dt=self.clock(),
                                   certs_to_embed=[self._asn1_cert, self._asn1_root],
                                   override_md="sha512" if alg in ("sha512", "sha3_512") else None)
        return stamper.request_tsa_response(req)

    def stamp(self, digest: bytes, alg: str) -> bytes:
        """A TimeStampToken (DER ContentInfo) over ``digest``."""
        req = tsp.TimeStampReq({"version": 1, "message_imprint": {"hash_algorithm": {"algorithm": alg},
                                                                   "hashed_message": digest},
                                "nonce": int.from_bytes(os.urandom(8), "big"), "cert_req": True})
        return bytes(self.respond(req)["time_stamp_token"].dump())


class TsaServer:
    """``tsa`` over HTTP on loopback (application/timestamp-query); can be stopped and started again on the
    same port, and its TSA swapped (a replaced TSA certificate)."""

    def __init__(self, tsa: Tsa, port: int | None = None) -> None:
        self.tsa = tsa
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/tsa"
        self.crl_url = f"http://127.0.0.1:{self.port}/root.crl"
        #: Serial -> revocation time of TSA certificates the root's CRL lists.
        self.revoked: dict[int, dt.datetime] = {}
        self.crl_requests = 0
        self._runner: web.AppRunner | None = None
        self.delay_s = 0.0
        """Answer this much later (a slow TSA, so a test can kill a client mid-way)."""

    async def _handle(self, request: web.Request) -> web.Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        req = tsp.TimeStampReq.load(await request.read())
        return web.Response(body=self.tsa.respond(req).dump(), content_type="application/timestamp-reply")

    async def _crl(self, request: web.Request) -> web.Response:
        """The root's CRL at the TSA's time, listing :attr:`revoked`."""
        self.crl_requests += 1
        now, root = self.tsa.clock(), self.tsa.root
        builder = (x509.CertificateRevocationListBuilder().issuer_name(root.cert.subject)
                   .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(days=7)))
        for serial, at in self.revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at).build())
        crl = builder.sign(root.key, hashes.SHA256())
        return web.Response(body=crl.public_bytes(serialization.Encoding.DER), content_type="application/pkix-crl")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/tsa", self._handle)
        app.router.add_get("/root.crl", self._crl)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def sha(alg: str, data: bytes) -> bytes:
    return hashlib.new(alg, data).digest()
