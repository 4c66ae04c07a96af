"""One root exception for the PKI library, each subclass a family of stable codes.

:class:`PkiError` is deliberately *not* a :class:`gateway.core.errors.GatewayError`:
this package is a library that the gateway wires in, and each of the gateway's edges
translates a ``PkiError``'s code to its wire form (this package knows nothing of HTTP).

Stable codes (documented; the API returns them verbatim):

============================== ==================================================
code                           meaning
============================== ==================================================
signature.missing              no author signature where one is required
signature.invalid              SignatureValue or a reference digest does not verify
signature.references           the signature does not cover exactly the expected parts
signature.algorithm            algorithm, digest or key size outside the allow-list
signature.wrapping             a signed Id is duplicated, misplaced or not the verified node
signature.sealed               the envelope already carries a gateway seal
signature.structure            ``env:Signatures`` holds what no signature may carry (:mod:`pki.sigzone`)
certificate.untrusted          no path to a trust anchor (unknown issuer)
certificate.expired            the signer (or a CA in its path) has expired
certificate.not_yet_valid      the signer (or a CA in its path) is not valid yet
certificate.revoked            revoked according to a CRL or an OCSP response
certificate.revocation_unknown revocation status could not be established (hard-fail)
certificate.key_usage          keyUsage / extendedKeyUsage do not allow this use
certificate.algorithm          the certificate path uses a weak algorithm (SHA-1, RSA<2048)
certificate.invalid            any other path validation failure
certificate.wrong_agency       valid certificate, but not one that may sign for the sender
attachment.digest_mismatch     an attachment's Size or Sha256 does not match its Content (reported
                               instead of signature.invalid when that is why the signature fails)
attachment.content_invalid     an attachment's Content is not valid base64
envelope.structure             the envelope lacks a part the signature needs (body Id ...)
<what>.not_xml                 not well-formed XML (``<what>`` is ``envelope``, ``ack`` ...: the
                               caller's word)
<what>.dtd_forbidden           the document declares a DTD or entities
<what>.too_large               the document is larger than the caller's limit
envelope.encoding_unsupported  an envelope that is not UTF-8 (or US-ASCII)
pdf.unreadable                 the PDF cannot be parsed
pdf.font_missing               the Thai TrueType font for the receiving stamp is missing
key.unavailable                a signing key (file or HSM token) cannot be used
============================== ==================================================
"""

from __future__ import annotations


class PkiError(Exception):
    """Root of every error raised by :mod:`pki`."""

    #: Default stable code of this family.
    code: str = "pki.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, field={self.field!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:  # reports compare by content, not identity
        if not isinstance(other, PkiError):
            return NotImplemented
        return (type(self), self.code, self.field, self.message) == (type(other), other.code, other.field,
                                                                     other.message)

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.field, self.message))


class SignatureError(PkiError):
    """The XML signature is missing, broken, or does not cover what it must."""

    code = "signature.invalid"


class CertificateError(PkiError):
    """The signer's certificate is not trusted for this use."""

    code = "certificate.untrusted"


class AgencyError(CertificateError):
    """A valid certificate that may not sign for the claimed sending agency."""

    code = "certificate.wrong_agency"


class AttachmentError(PkiError):
    """An attachment's declared size or digest does not match its content."""

    code = "attachment.digest_mismatch"


class StructureError(PkiError):
    """The envelope lacks a part that signing or verification needs."""

    code = "envelope.structure"


class XmlError(PkiError):
    """Untrusted bytes that :func:`pki.xmlparse.parse` refuses (not XML, a DTD, too large, not UTF-8)."""

    code = "envelope.not_xml"


class PdfError(PkiError):
    """A PDF could not be read, validated or stamped."""

    code = "pdf.unreadable"


class KeyUnavailable(PkiError):
    """A signing key cannot be loaded or used (configuration, HSM token)."""

    code = "key.unavailable"
