"""Signed receipts (the gateway's) and signed delivery acknowledgements (a receiving office's).

Both carry one *enveloped* signature over the whole document (``URI=""`` and
the enveloped-signature transform), unlike the detached author signature and
seal:

* **Receipts** (``Id="ReceiptSignature"``): an ordinary envelope whose body is
  ``env:Receipt``, built by the gateway and signed by :func:`sign_receipt` with
  a lean signature (:mod:`pki.xmlsig_lean`) inside ``env:Signatures``;
  :func:`verify_receipt` checks one against the gateway's certificate (pinned)
  or a trust store (``gateway receipt verify`` does it offline). The receipts
  the gateway issues are usually not trees at all: :mod:`pki.receipt_bytes`
  writes and signs them as bytes, held to :func:`sign_receipt_tree`'s byte for byte.
* **Delivery acknowledgements**: an office may sign its ``env:DeliveryAck``;
  :func:`verify_signed_ack` checks the signature, the signer's path and its
  agency.

What either returns is read from the tree signxml verified, never from the
document as received.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from pki.errors import CertificateError, SignatureError, StructureError
from pki.keys import Signer
from pki.trust import TrustStore, ValidatedCert, fingerprint
from pki.xmlparse import parse
from pki.xmlsig_lean import lean_signature, lean_signature_xml, serialize_with
from pki.xmlsig_parts import (
    DS,
    RECEIPT_SIGNATURE_ID,
    E,
    envelope_parts,
    id_index,
    parse_for_verify,
    serialize,
    signatures_container,
)
from pki.xmlsig_policy import alg_name, check_algorithms, keyinfo_certs
from pki.xmlsig_signxml import run_signxml

__all__ = ["VerifiedReceipt", "sign_receipt", "sign_receipt_tree", "verify_receipt", "VerifiedAck", "verify_signed_ack"]


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose signature verified; every field below comes from the verified tree."""

    #: The verified envelope as signed (re-parsed from the canonical bytes; signature excluded).
    root: etree._Element
    #: The verified env:Receipt element inside :attr:`root`.
    receipt: etree._Element
    #: ``submission`` or ``delivery``.
    kind: str
    message_id: str
    sender: str
    recipient: str | None
    delivery_id: str | None
    #: SHA-256 (hex) of the acknowledged bytes.
    sha256: str
    at: dt.datetime
    #: The certificate that signed the receipt.
    signer: x509.Certificate
    raw: bytes


@dataclass(frozen=True)
class VerifiedAck:
    """A receiving office's signed ``DeliveryAck`` whose signature verified; fields read from the signed
    tree."""

    #: The DeliveryAck as signed (signxml's ``signed_xml``: the signature itself excluded).
    root: etree._Element
    delivery_id: str | None
    #: SHA-256 (hex) of the envelope bytes the office says it received, if it says.
    sha256: str | None
    #: The office's certificate that signed the ack.
    signer: x509.Certificate
    #: The trust store's verdict on :attr:`signer` (path, validity window).
    validated: ValidatedCert
    #: Agency code of the signer's certificate (checked against the acknowledging office).
    agency_code: str
    #: ``"ecdsa-sha256"`` ...
    signature_algorithm: str


def _text(parent: etree._Element, name: str) -> str | None:
    el = parent.find(E + name)
    return el.text.strip() if el is not None and el.text else None


def sign_receipt(receipt_xml: bytes, signer: Signer) -> bytes:
    """Sign a receipt envelope with an enveloped signature over the whole envelope.

    The receipt is an ``env:Envelope`` whose body is ``env:Receipt`` (the gateway
    builds them: :mod:`gateway.core.receipts`); the signature (``Id="ReceiptSignature"``)
    goes into ``env:Signatures`` with ``URI=""`` and the enveloped-signature
    transform, so every byte of the receipt except the signature is covered.
    """
    return sign_receipt_tree(parse(receipt_xml), signer)


def sign_receipt_tree(root: etree._Element, signer: Signer) -> bytes:
    """:func:`sign_receipt` of a receipt tree the gateway built (not serialised and parsed again first). The
    signature goes into the bytes returned; the tree gets the (empty) ``env:Signatures``, and the signature
    too when it has to be made as a tree (:func:`pki.xmlsig_lean.serialize_with`)."""
    parts = envelope_parts(root)
    if parts.body.tag != E + "Receipt":
        raise StructureError("a receipt envelope has a Receipt body", field="Receipt")
    if parts.signatures is not None and len(parts.signatures):
        raise SignatureError("the receipt is already signed", field="Signatures")
    container = signatures_container(parts)
    container.text = None  # the enveloped transform leaves an empty container; sign exactly that
    # URI="" covers the whole envelope; the enveloped-signature transform removes the signature itself.
    # Written straight into the bytes (the tree keeps the empty container), or added to the tree.
    signature = lean_signature_xml(signer, [("", root)], signature_id=RECEIPT_SIGNATURE_ID, enveloped=True)
    written = serialize_with(root, container, signature) if signature is not None else None
    if written is not None:
        return written
    lean_signature(signer, [("", root)], signature_id=RECEIPT_SIGNATURE_ID, enveloped=True, parent=container)
    return serialize(root)


async def verify_receipt(receipt_bytes: bytes, gateway: x509.Certificate | TrustStore) -> VerifiedReceipt:
    """Verify a receipt signed by :func:`sign_receipt`.

    ``gateway`` is either the gateway's certificate (pinned: the receipt must
    be signed by exactly that certificate) or a :class:`TrustStore` (the
    signer's certificate must validate for sealing).
    """
    raw = bytes(receipt_bytes)
    root = parse_for_verify(raw)
    parts = envelope_parts(root)
    container = parts.signatures
    signatures = container.findall(DS + "Signature") if container is not None else []
    if parts.body.tag != E + "Receipt" or container is None or len(signatures) != 1 or len(container) != 1:
        raise SignatureError("a receipt carries exactly one signature", code="signature.missing",
                             field="Signatures")
    signature = signatures[0]
    certs = keyinfo_certs(signature)
    cert = certs[0]
    refs = signature.findall(f"{DS}SignedInfo/{DS}Reference")
    if len(refs) != 1 or refs[0].get("URI") != "":
        raise SignatureError("a receipt signature covers the whole envelope (one reference, URI=\"\")",
                             code="signature.references", field="Signatures/SignedInfo")
    check_algorithms(signature, cert, allow_sha1=False, enveloped=True)
    if isinstance(gateway, TrustStore):
        await gateway.validate_signer(cert, usage="seal", intermediates=certs[1:])
    elif fingerprint(cert) != fingerprint(gateway):
        raise CertificateError("the receipt is not signed by the gateway's certificate",
                               code="certificate.untrusted", field="Signatures/KeyInfo")
    result = run_signxml(root, 0, cert, 1, xades=False, allow_sha1=False)[0]
    signed = result.signed_xml
    if signed is None or signed.tag != E + "Envelope":
        raise SignatureError("the signed data is not an envelope", code="signature.references")
    receipt = signed.find(E + "Receipt")
    if receipt is None:
        raise SignatureError("the signed envelope has no Receipt", code="signature.references")
    try:
        at = dt.datetime.fromisoformat((_text(receipt, "At") or "").replace("Z", "+00:00"))
    except ValueError:
        raise StructureError("receipt At is not a date-time", field="Receipt/At") from None
    return VerifiedReceipt(root=signed, receipt=receipt, kind=_text(receipt, "Kind") or "",
                           message_id=_text(receipt, "MessageId") or "",
                           sender=_text(receipt, "Sender") or "",
                           recipient=_text(receipt, "Recipient"),
                           delivery_id=_text(receipt, "DeliveryId"),
                           sha256=_text(receipt, "Sha256") or "", at=at, signer=cert, raw=raw)


async def verify_signed_ack(ack_bytes: bytes, trust: TrustStore, *, agency: str) -> VerifiedAck:
    """Verify an office's enveloped signature over its ``DeliveryAck``; raise the failing check's PkiError.

    The same rules as receipts: exactly one ``ds:Signature``, a direct child of
    ``env:DeliveryAck``; exactly one reference covering the whole ack (``URI=""``,
    or ``#Id`` of the DeliveryAck itself, which is what signxml writes when the
    root has an Id) with the enveloped-signature transform; the algorithm
    allow-list (no SHA-1); the certificate from KeyInfo validated by ``trust``
    for document signing and bound to ``agency`` (the acknowledging office) by
    the same :class:`pki.trust.AgencyBinding` as letters. The fields returned
    come from the tree signxml verified, never from the document as received.
    """
    root = parse_for_verify(bytes(ack_bytes))
    if root.tag != E + "DeliveryAck":
        raise StructureError("not a DeliveryAck", field="/")
    signatures = root.findall(DS + "Signature")
    if len(signatures) != 1 or len(root.findall(f".//{DS}Signature")) != 1:
        raise SignatureError("a signed DeliveryAck carries exactly one signature, a child of DeliveryAck",
                             code="signature.references", field="DeliveryAck/Signature")
    signature = signatures[0]
    certs = keyinfo_certs(signature)
    cert = certs[0]
    refs = signature.findall(f"{DS}SignedInfo/{DS}Reference")
    root_id = root.get("Id")
    whole = {""} | ({f"#{root_id}"} if root_id else set())
    if len(refs) != 1 or refs[0].get("URI") not in whole:
        raise SignatureError("a DeliveryAck signature covers the whole ack (one reference, URI=\"\" or #Id)",
                             code="signature.references", field="DeliveryAck/Signature/SignedInfo")
    if root_id and len(id_index(root).get(root_id, [])) != 1:
        raise SignatureError(f"Id {root_id!r} occurs more than once", code="signature.wrapping",
                             field="DeliveryAck/@Id")
    method = check_algorithms(signature, cert, allow_sha1=False, enveloped=True)
    result = run_signxml(root, 0, cert, 1, xades=False, allow_sha1=False)[0]
    signed = result.signed_xml
    if signed is None or signed.tag != E + "DeliveryAck":
        raise SignatureError("the signed data is not the DeliveryAck", code="signature.references",
                             field="DeliveryAck/Signature")
    validated = await trust.validate_signer(cert, usage="document-signing", intermediates=certs[1:])
    code = trust.check_agency(cert, agency)
    return VerifiedAck(root=signed, delivery_id=_text(signed, "DeliveryId"), sha256=_text(signed, "Sha256"),
                       signer=cert, validated=validated, agency_code=code,
                       signature_algorithm=alg_name(method))
