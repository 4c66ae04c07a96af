"""A test PKI made in code for long-term validation, and its revocation server on loopback.

Root (2026..2046) -> issuing CA (CRL distribution point: the root's CRL here) -> an agency's
document-signing certificate valid 2026-01-01 .. 2028-01-01, OCSP URL here. The server answers OCSP
(POST /ocsp, signed by a responder certificate with ocsp-nocheck) and the root's CRL (GET /root.crl)
with times from the test's clock; ``down`` makes both answer nothing (connection refused is not
possible on a bound port, so it answers HTTP 503, which the fetcher counts as an error).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from pki.certfactory import CertFactory, Issued, agency_name, simple_name

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class World:
    def __init__(self, clock: Callable[[], dt.datetime], code: str = "00001", *, checked_responder: bool = False,
                 ) -> None:
        self.clock = clock
        #: The OCSP responder's certificate has no ocsp-nocheck: its own status is the issuing CA's CRL
        #: (GET /issuing.crl), which a validation then fetches and must keep.
        self.checked_responder = checked_responder
        self.issuing_crl_requests = 0
        self.revoked: dict[int, dt.datetime] = {}
        self.down = False
        self.requests = 0
        self.ocsp_requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.code = code

    async def start(self) -> World:
        app = web.Application()
        app.router.add_post("/ocsp", self._ocsp)
        app.router.add_get("/root.crl", self._crl)
        app.router.add_get("/issuing.crl", self._issuing_crl)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # a started site has a server
        base = f"http://127.0.0.1:{self.port}"
        self.root = CertFactory.new_root("LTV Test Root", now=T0, years=20)
        ca = self.root.issue(simple_name("LTV Test Issuing CA"), profile="ca", not_before=T0,
                             not_after=T0 + dt.timedelta(days=365 * 10), path_length=0)
        ca = Issued(_with_crl_dp(ca.cert, f"{base}/root.crl", self.root), ca.key)
        self.issuing = CertFactory(ca, now=T0, ocsp_url=f"{base}/ocsp")
        self.responder = self.issuing.issue(simple_name("LTV OCSP Responder"), profile="ocsp", not_before=T0,
                                            not_after=T0 + dt.timedelta(days=365 * 10))
        if self.checked_responder:
            self.responder = Issued(_without_nocheck(self.responder.cert, f"{base}/issuing.crl", self.issuing),
                                    self.responder.key)
        self.author = self.issuing.agency_signing(self.code, "สำนักนายกรัฐมนตรี", not_before=T0,
                                                  not_after=dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
        self.known = {self.author.cert.serial_number: self.author.cert}
        self.url = base
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ocsp(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.ocsp_requests += 1
        if self.down:
            return web.Response(status=503)
        req = ocsp.load_der_ocsp_request(await request.read())
        now = self.clock()
        revoked_at = self.revoked.get(req.serial_number)
        cert = self.known.get(req.serial_number)
        if cert is None:
            body = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        else:
            builder = ocsp.OCSPResponseBuilder().add_response(
                cert=cert, issuer=self.issuing.ca.cert, algorithm=req.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD,
                this_update=now - dt.timedelta(seconds=5), next_update=now + dt.timedelta(hours=4),
                revocation_time=revoked_at, revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
            ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.responder.cert).certificates([self.responder.cert])
            body = builder.sign(self.responder.key, hashes.SHA256())  # type: ignore[arg-type]  # an EC key from new_key
        return web.Response(body=body.public_bytes(serialization.Encoding.DER),
                            content_type="application/ocsp-response")

    async def _crl(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503)
        now = self.clock()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.root.ca.cert.subject)
                   .last_update(now - dt.timedelta(seconds=5)).next_update(now + dt.timedelta(days=7))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.root.ca.cert.public_key()), critical=False)  # type: ignore[arg-type]  # an EC key
                   .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False))
        ca_serial = self.issuing.ca.cert.serial_number
        if ca_serial in self.revoked and self.revoked[ca_serial] <= now:
            builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(ca_serial)
                                                      .revocation_date(self.revoked[ca_serial]).build())
        assert self.root.ca.key is not None
        crl = builder.sign(self.root.ca.key, hashes.SHA256())  # type: ignore[arg-type]  # an EC key
        return web.Response(body=crl.public_bytes(serialization.Encoding.DER), content_type="application/pkix-crl")

    async def _issuing_crl(self, request: web.Request) -> web.Response:
        """The issuing CA's CRL (covers the OCSP responder's certificate when it is checked)."""
        self.requests += 1
        self.issuing_crl_requests += 1
        if self.down:
            return web.Response(status=503)
        now = self.clock()
        ca = self.issuing.ca
        key = ca.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
                   .last_update(now - dt.timedelta(seconds=5)).next_update(now + dt.timedelta(days=7))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
                   .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False))
        if self.responder.cert.serial_number in self.revoked:
            serial = self.responder.cert.serial_number
            builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                                      .revocation_date(self.revoked[serial]).build())
        crl = builder.sign(key, hashes.SHA256())
        return web.Response(body=crl.public_bytes(serialization.Encoding.DER), content_type="application/pkix-crl")


def _without_nocheck(cert: x509.Certificate, crl_url: str, issuer: CertFactory) -> x509.Certificate:
    """``cert`` re-issued without ocsp-nocheck and with a CRL distribution point."""
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(cert.serial_number)
               .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        if not isinstance(ext.value, x509.OCSPNoCheck):
            builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    key = issuer.ca.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return builder.sign(key, hashes.SHA256())


def _with_crl_dp(cert: x509.Certificate, url: str, issuer: CertFactory) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(cert.serial_number)
               .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]), critical=False)
    assert issuer.ca.key is not None
    return builder.sign(issuer.ca.key, hashes.SHA256())  # type: ignore[arg-type]  # an EC key


def name_of(code: str) -> x509.Name:
    return agency_name(code, "test")


def office_signer(world: World, code: str) -> Issued:
    """A document-signing certificate for office ``code`` from the world's issuing CA, known to its OCSP."""
    issued = world.issuing.agency_signing(code, "สำนักงานผู้รับ", not_before=T0,
                                          not_after=dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
    world.known[issued.cert.serial_number] = issued.cert
    return issued
