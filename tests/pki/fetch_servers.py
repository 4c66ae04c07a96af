"""Loopback servers and certificates for the outbound-fetch tests (issue 13, class 5).

:class:`Trap` is a TCP server on 127.0.0.1 that counts every connection and every byte it receives
and never answers: it stands for a host an attacker points the gateway at (the fetch must never
happen), and for an OCSP responder that hangs (the fetch must give up in time). The test that starts
one stops it by its handle (:meth:`Trap.stop`).

:func:`mint` issues a certificate carrying any AIA (OCSP, CA issuers) and CRL distribution point
URLs, which :class:`pki.certfactory.CertFactory` does not offer for CA issuers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID

from pki.certfactory import CertFactory, Issued


class Trap:
    """Accepts connections, records what arrives, never sends a byte back."""

    def __init__(self) -> None:
        self.connections = 0
        self.received = b""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while chunk := await reader.read(65536):
                self.received += chunk
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def start(self) -> Trap:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> int:
        """HTTP requests seen (request lines received)."""
        return sum(self.received.count(m) for m in (b"GET ", b"POST "))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in self._writers:
                w.close()
            await self._server.wait_closed()
            self._server = None


def mint(factory: CertFactory, subject: x509.Name, *, profile: str = "document-signing",
         ocsp: Sequence[str] = (), ca_issuers: Sequence[str] = (), crl: Sequence[str] = ()) -> Issued:
    """A certificate of ``profile`` from ``factory`` with exactly these URLs (re-signed by its CA)."""
    base = factory.issue(subject, profile=profile)
    builder = (x509.CertificateBuilder().subject_name(base.cert.subject).issuer_name(base.cert.issuer)
               .public_key(base.cert.public_key()).serial_number(base.cert.serial_number)
               .not_valid_before(base.cert.not_valid_before_utc).not_valid_after(base.cert.not_valid_after_utc))
    for ext in base.cert.extensions:
        if not isinstance(ext.value, (x509.AuthorityInformationAccess, x509.CRLDistributionPoints)):
            builder = builder.add_extension(ext.value, ext.critical)
    access = [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u))
              for u in ocsp]
    access += [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(u))
               for u in ca_issuers]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if crl:
        builder = builder.add_extension(x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None) for u in crl]),
            critical=False)
    assert factory.ca.key is not None
    return Issued(builder.sign(factory.ca.key, hashes.SHA256()), base.key)
