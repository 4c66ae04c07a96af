"""The gateway's seal: one seam between the service and the PKI.

The service asks a :class:`Sealer` to seal every envelope it forwards and to
sign every receipt it issues. :class:`PkiSealer` (in ``pki``) is the real one,
with the gateway's key loaded once at start-up. :class:`DigestOnlySealer`
leaves documents unsigned; it exists for the ``GATEWAY_SEAL=off`` development
switch and for the spine's benchmark baseline, and says so in every status.
"""

from __future__ import annotations

from typing import Protocol


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
        return receipt
