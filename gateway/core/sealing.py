"""The gateway's seal: one seam between the service and the PKI.

The service asks a :class:`Sealer` to seal every envelope it forwards and to
sign every receipt it issues. :class:`PkiSealer` (in ``pki``) is the real one,
with the gateway's key loaded once at start-up. :class:`DigestOnlySealer`
leaves documents unsigned; it exists for the ``GATEWAY_SEAL=off`` development
switch and for the spine's benchmark baseline, and says so in every status.

The audit chain's checkpoints are signed through a :class:`CheckpointSigner`
(see :mod:`gateway.audit`), and intake checks an author's signatures through a
:class:`Verifier` and a :class:`PdfChecker` (built by :mod:`gateway.core.signing`).
These interfaces are declared here, at the bottom of the stack and without
loading any cryptographic library beyond ``cryptography``, so that every layer
(and the application keys) can name them.
"""

from __future__ import annotations

from typing import Any, Protocol

from cryptography import x509
from lxml import etree


class Sealer(Protocol):
    #: Human-readable description for /readyz and logs (never key material).
    description: str

    def seal_envelope(self, envelope: bytes) -> bytes:
        """The envelope as forwarded: the author's bytes plus the gateway's seal."""

    def sign_receipt(self, receipt: bytes) -> bytes:
        """A receipt document with the gateway's enveloped signature."""


class DigestOnlySealer:
    description = "unsealed (GATEWAY_SEAL=off): receipts carry digests but no gateway signature"

    def seal_envelope(self, envelope: bytes) -> bytes:
        return envelope

    def sign_receipt(self, receipt: bytes) -> bytes:
        return bytes(receipt)  # plain bytes (a ReceiptBytes carries its tree)


class CheckpointSigner(Protocol):
    """The gateway's key for audit checkpoints (``pki.keys.FileSigner``, a PKCS#11 signer or
    :class:`gateway.audit.signing.PemSigner` fit as they are)."""

    certificate: x509.Certificate
    """The gateway's certificate (the verifier needs only this)."""

    def sign(self, data: bytes) -> bytes:
        """Hash and sign ``data``: ECDSA as raw r||s (XML-DSig form) or DER; RSA PKCS#1 v1.5."""


class Verifier(Protocol):
    """Checks the author's signature of a parsed, schema-valid envelope; returns the tree the
    signature covers (read that one from then on) and the facts established. Intake hands it a
    tree whose signature zone it has just checked (:func:`pki.sigzone.check_signature_zone`, no
    seal allowed), so the verifier need not walk the zone again."""

    async def __call__(self, raw: bytes, root: etree._Element, sender: str, /, *,
                      channel: str = "native") -> tuple[etree._Element, dict[str, Any]]: ...


class PdfChecker(Protocol):
    """Checks the main PDF's signature for ``sender``; returns the facts established (or refuses)."""

    async def __call__(self, content: bytes, sender: str, /) -> dict[str, Any]: ...
