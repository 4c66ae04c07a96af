"""A tiny OCSP responder for tests: aiohttp on 127.0.0.1, answers built with cryptography's OCSPResponseBuilder."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from pki.certfactory import CertFactory, Issued, simple_name


class OcspResponder:
    """Answers for certificates registered with :meth:`register`; ``revoked`` ones as revoked."""

    def __init__(self, issuer: CertFactory) -> None:
        self.issuer = issuer
        self.signer: Issued = issuer.issue(simple_name("Test OCSP Responder"), profile="ocsp")
        self.certs: dict[int, x509.Certificate] = {}
        self.revoked: set[int] = set()
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    def register(self, cert: x509.Certificate, *, revoked: bool = False) -> None:
        self.certs[cert.serial_number] = cert
        if revoked:
            self.revoked.add(cert.serial_number)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        req = ocsp.load_der_ocsp_request(await request.read())
        cert = self.certs.get(req.serial_number)
        if cert is None:
            body = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        else:
            now = dt.datetime.now(dt.UTC)
            revoked = req.serial_number in self.revoked
            builder = ocsp.OCSPResponseBuilder().add_response(
                cert=cert, issuer=self.issuer.ca.cert, algorithm=req.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
                revocation_time=now - dt.timedelta(hours=1) if revoked else None,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
            ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.signer.cert).certificates([self.signer.cert])
            for ext in req.extensions:  # echo the nonce
                if isinstance(ext.value, x509.OCSPNonce):
                    builder = builder.add_extension(ext.value, critical=False)
            body = builder.sign(self.signer.key, hashes.SHA256())
        return web.Response(body=body.public_bytes(serialization.Encoding.DER),
                            content_type="application/ocsp-response")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
