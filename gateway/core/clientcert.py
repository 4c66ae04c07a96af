"""Which agency a TLS client certificate stands for: one rule for every endpoint that admits agencies.

The TLS layer has checked the chain against the trust anchors; here the certificate must name an
agency of the directory in force (``organizationIdentifier GOVTH-<code>``), pass the trust store's
validity and revocation checks for a TLS client (cached per certificate), and, when the agency
registers TLS certificates, be one of its unretired ones. The native API and the e-CMS endpoint
both call :func:`agency_of_client`, so a certificate that opens one opens the other.
"""

from __future__ import annotations

from cryptography import x509

from gateway.core.certexpiry import check_tls_client
from gateway.core.directory import Directory
from gateway.core.errors import AuthError
from pki.errors import PkiError
from pki.trust import TrustStore, agency_of, fingerprint


async def agency_of_client(der: bytes, directory: Directory, store: TrustStore) -> str:
    """The agency ``der`` (a client certificate, DER) authenticates; :class:`AuthError` otherwise."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise AuthError("the client certificate cannot be read", code="auth.unknown_certificate") from None
    agency = agency_of(cert)
    if agency is None or agency not in directory:
        raise AuthError("the client certificate names no agency in the directory", code="auth.unknown_certificate")
    try:
        await store.validate_signer(cert, usage="tls-client")
        current = directory.get(agency)  # the snapshot in force after the await, which may be newer
        if current is not None:
            check_tls_client(current, fingerprint(cert))  # registered TLS certificates, if any
    except PkiError as exc:
        raise AuthError(f"client certificate refused: {exc.message}", code=f"auth.{exc.code}") from None
    if current is None:
        raise AuthError("the client certificate names no agency in the directory", code="auth.unknown_certificate")
    return agency
