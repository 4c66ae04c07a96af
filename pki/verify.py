"""Verifying an envelope's author signature: "see what is signed".

The cryptography is checked in place (:mod:`pki.xmlsig_inplace`), with signxml
under a pinned configuration (:mod:`pki.xmlsig_signxml`) judging every shape the
fast path does not accept. Around it, this module defends against signature
wrapping:

1. The tree is parsed once by :func:`pki.xmlparse.parse` and comments and
   processing instructions are removed (c14n drops them, so a comment inside
   a signed text node would otherwise let ``.text`` read something other than
   what was signed).
   Then ``env:Signatures`` may hold only validated signatures and nothing they
   do not sign (:func:`pki.sigzone.check_signature_zone`), signed or not: what a
   signature carries beyond its references travels to receivers too.
2. Before any cryptography, the algorithms are allow-listed and the reference
   list is checked against the document (:mod:`pki.xmlsig_policy`): every
   ``URI`` a bare ``#id`` naming exactly one element, in the place the standard
   puts it, the set covering exactly the body and every attachment (plus,
   optionally, the header).
3. After signxml, the canonical bytes of each in-tree element are compared
   with the bytes signxml digested (``VerifyResult.signed_data``). Equal bytes
   prove that the element instances handed downstream (``VerifiedEnvelope.body``
   and ``.attachments``) are exactly what was signed.

Trust is not signxml's job here: :class:`pki.trust.TrustStore` decides whether
the KeyInfo certificate is trusted, valid now, not revoked and allowed to sign
for the sender.

Validation returns a :class:`ValidationReport` of separate facts (like
pyHanko's status objects); :func:`verify_envelope` raises the failing fact's
:class:`PkiError`.
"""

from __future__ import annotations

import binascii
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from cryptography import x509
from lxml import etree

from pki.digests import check_content
from pki.errors import AttachmentError, CertificateError, PkiError, SignatureError, StructureError
from pki.sigzone import check_signature_zone
from pki.trust import TrustStore, Usage, ValidatedCert, agency_of, fingerprint, per_certificate
from pki.xmlsig_inplace import verify_detached
from pki.xmlsig_parts import (
    DS,
    XADES,
    E,
    Parts,
    author_signature,
    child,
    children,
    envelope_parts,
    id_index,
    parse_for_verify,
    signature_index,
    strip_comments,
)
from pki.xmlsig_policy import alg_name, check_algorithms, check_references, keyinfo_certs

_OBJECT = DS + "Object"
_CONTENT, _SIZE, _SHA256, _CONTENT_REF = E + "Content", E + "Size", E + "Sha256", E + "ContentRef"
_QUALIFYING_PROPERTIES = XADES + "QualifyingProperties"

__all__ = ["ValidationReport", "VerifiedEnvelope", "validate_envelope", "verify_envelope"]


@dataclass(frozen=True)
class ValidationReport:
    """Separate facts about one envelope's author signature, and a computed bottom line.

    A fact is ``True`` (checked, holds), ``False`` (checked, fails) or ``None``
    (not checked, usually because an earlier fact failed). ``failure`` is the
    first failing fact's error.
    """

    #: XSD validity, recorded by the caller (``dataclasses.replace(report, schema_valid=...)``);
    #: ``None`` = not recorded here, does not block :attr:`ok`.
    schema_valid: bool | None = None
    #: Whether the envelope carries an author signature at all.
    signed: bool = False
    #: Whether a signature was required (``require_signature``).
    signature_required: bool = True
    #: The signature value and every reference digest verify, over exactly the expected parts,
    #: and the verified parts are the elements in place (no wrapping).
    signature_intact: bool | None = None
    #: The signer's certificate chains to a trust anchor, is valid, not revoked, fit for document signing.
    signer_trusted: bool | None = None
    #: The certificate may sign for the sending agency.
    signer_authorised: bool | None = None
    #: Every attachment's Size and Sha256 match its decoded Content.
    digests_ok: bool | None = None
    #: Algorithms, key type and key size are on the allow-list.
    policy_ok: bool | None = None
    #: The first failing fact's error (None when everything checked holds).
    failure: PkiError | None = None
    #: Agency code of the signer's certificate, when known.
    agency_code: str | None = None
    #: Signer subject (RFC 4514), when known.
    signer_subject: str | None = None
    #: ``"ecdsa-sha256"``, ``"rsa-sha256"`` ... when known.
    signature_algorithm: str | None = None

    @property
    def ok(self) -> bool:
        """The bottom line: everything checked holds and nothing required is missing."""
        if self.failure is not None or self.schema_valid is False or self.digests_ok is not True:
            return False
        if not self.signed:
            return not self.signature_required
        return all(f is True for f in (self.signature_intact, self.signer_trusted, self.signer_authorised,
                                       self.policy_ok))

    def summary(self) -> str:
        if self.ok:
            return f"valid, signed by {self.signer_subject}" if self.signed else "valid, unsigned"
        return f"invalid: {self.failure.code if self.failure else 'schema'}"


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An envelope whose author signature verified; downstream code takes only this type.

    ``body`` and ``attachments`` are element instances *inside* ``root``
    whose canonical form was proven equal to what the signature covers. The
    header is **not** covered by the author's signature unless
    ``"#Header"`` is in :attr:`references`: the caller checks it (sender, recipients)
    against the authenticated client and :attr:`agency_code`.
    """

    #: The parsed tree that was verified (comments and processing instructions removed).
    root: etree._Element
    #: The verified body element (env:Letter, env:Notifier or env:Receipt).
    body: etree._Element
    #: The verified env:Attachment elements, in document order.
    attachments: tuple[etree._Element, ...]
    #: The signer's certificate (None only for an unsigned envelope accepted with require_signature=False).
    signer: x509.Certificate | None
    #: The agency the signer's certificate belongs to.
    agency_code: str | None
    #: ``"ecdsa-sha256"`` ... (None when unsigned).
    signature_algorithm: str | None
    #: The exact bytes that were verified (store and forward these).
    raw: bytes
    #: The separate facts.
    report: ValidationReport
    #: Decoded content of each attachment by its Id (sizes and digests checked).
    contents: Mapping[str, bytes] = field(default_factory=dict)
    #: Those of :attr:`contents` whose text was strict base64 with no white space: decoded as
    #: ``base64.b64decode(text, validate=True)`` (the envelope reader's first way) decodes it.
    strict_contents: Mapping[str, bytes] = field(default_factory=dict)
    #: The reference URIs the signature covers, e.g. ("#Letter", "#att-1").
    references: tuple[str, ...] = ()
    #: The trust store's verdict on the signer (path, validity window).
    validated: ValidatedCert | None = None
    #: XAdES SigningTime claimed by the signer (signed, but only a claim), if present.
    signing_time: dt.datetime | None = None
    #: The id index of :attr:`root` the references were resolved in (:func:`pki.xmlsig_parts.id_index`),
    #: for :func:`pki.seal.seal_tree` on this very tree (read only; the seal copies it).
    ids: Mapping[str, list[etree._Element]] = field(default_factory=dict)
    #: ``URI -> SHA-256`` of the exclusive c14n of the referenced element, for the references that name
    #: exclusive c14n and SHA-256 and were checked in place (:func:`pki.xmlsig_inplace.verify_in_place`):
    #: what the seal would compute again for the same elements of this tree.
    exclusive_sha256: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def header(self) -> etree._Element | None:
        """The header element (unsigned by the author unless ``#Header`` is referenced)."""
        return self.root.find(E + "Header")


@dataclass
class SignatureCheck:
    """Outcome of verifying one detached signature (the author's, or the seal in :mod:`pki.seal`)."""

    report: ValidationReport
    cert: x509.Certificate | None = None
    extra_certs: list[x509.Certificate] = field(default_factory=list)
    references: tuple[str, ...] = ()
    algorithm: str | None = None
    signing_time: dt.datetime | None = None
    exclusive_sha256: dict[str, bytes] = field(default_factory=dict)


_REPORT_FIELDS = frozenset(f.name for f in fields(ValidationReport))


def _evolve(report: ValidationReport, **changes: object) -> ValidationReport:
    """``dataclasses.replace(report, **changes)`` without its per-call field introspection.

    A verification records its facts one by one, seven updates a letter;
    ``replace`` re-reads the dataclass fields and runs the frozen ``__init__``
    each time (~9 us, against ~2 us here). The report has no ``__post_init__``
    and no derived fields, so a copy of its ``__dict__`` with the changes is
    the very object ``replace`` builds; unknown names are refused as there.
    """
    if not changes.keys() <= _REPORT_FIELDS:
        raise TypeError(f"ValidationReport has no field(s) {sorted(changes.keys() - _REPORT_FIELDS)}")
    new = object.__new__(ValidationReport)
    new.__dict__.update(report.__dict__, **changes)
    return new


def _fail(report: ValidationReport, error: PkiError, **facts: object) -> ValidationReport:
    return _evolve(report, **facts, failure=report.failure or error)


@per_certificate()
def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _signing_time(signed_signature_properties: etree._Element) -> dt.datetime | None:
    el = child(signed_signature_properties, XADES + "SigningTime")
    if el is None or not el.text:
        return None
    try:
        return dt.datetime.fromisoformat(el.text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def check_signature(parts: Parts, signature: etree._Element, index: dict[str, list[etree._Element]], *,
                    required: Sequence[etree._Element], optional: Sequence[etree._Element] = (),
                    allow_sha1: bool, report: ValidationReport,
                    pinned_cert: x509.Certificate | None = None, schema_checked: bool = False) -> SignatureCheck:
    """Structure, algorithms, signxml and in-place identity of one detached signature.

    ``schema_checked``: the whole tree was just validated against the envelope XSD (see
    :func:`pki.xmlsig_inplace.verify_in_place`), so the signature's own schema check is not repeated.

    The facts are gathered as they are established and the report is made once, where the check ends
    (each :func:`_evolve` copies the report).
    """
    check = SignatureCheck(report=report)
    facts: dict[str, object] = {"signed": True}
    try:
        certs = keyinfo_certs(signature)
        cert, check.cert, check.extra_certs = certs[0], certs[0], certs[1:]
        facts["agency_code"], facts["signer_subject"] = agency_of(cert), _subject(cert)
        if pinned_cert is not None and fingerprint(cert) != fingerprint(pinned_cert):
            raise CertificateError("the signature is not by the expected certificate", code="certificate.untrusted",
                                   field="Signatures/KeyInfo")
        uris, resolved = check_references(signature, index, required=required, optional=optional)
        check.references = tuple(uris)
    except PkiError as exc:
        check.report = _fail(report, exc, **facts, signature_intact=False)
        return check
    try:
        method = check_algorithms(signature, cert, allow_sha1=allow_sha1)
        check.algorithm = facts["signature_algorithm"] = alg_name(method)
        facts["policy_ok"] = True
    except PkiError as exc:
        check.report = _fail(report, exc, **facts, policy_ok=False)
        return check
    xades = any(child(obj, _QUALIFYING_PROPERTIES) is not None for obj in children(signature, _OBJECT))
    try:
        results = verify_detached(parts.root, signature, signature_index(parts, signature), cert, uris,
                                  {u[1:]: e for u, e in resolved.items()}, xades=xades, allow_sha1=allow_sha1,
                                  certs=[cert, *check.extra_certs], schema_checked=schema_checked,
                                  exclusive_sha256=check.exclusive_sha256)
        # The elements handed downstream must be the very ones whose bytes were digested.
        for uri, result in zip(uris, results, strict=False):
            if result.signed_xml is not resolved[uri]:
                raise SignatureError(f"the element in place of {uri} is not the one that was verified",
                                     code="signature.wrapping", field=uri)
            props = getattr(result, "signed_properties", None)
            if props is not None:
                check.signing_time = _signing_time(props)
    except PkiError as exc:
        check.report = _fail(report, exc, **facts, signature_intact=False)
        return check
    check.report = _evolve(report, **facts, signature_intact=True)
    return check


def _check_attachments(attachments: Iterable[etree._Element],
                       strict: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Each attachment's decoded content by Id; ``strict`` also gets those decoded with no white-space pass."""
    contents: dict[str, bytes] = {}
    for att in attachments:
        att_id = att.get("Id")
        where = f"Attachments/Attachment[@Id='{att_id}']"
        content_el = size_el = sha_el = ref_el = None
        for el in att[:]:  # one pass; the first of each counts (as ``child`` finds it)
            tag = el.tag
            if tag == _CONTENT:
                content_el = content_el if content_el is not None else el
            elif tag == _SIZE:
                size_el = size_el if size_el is not None else el
            elif tag == _SHA256:
                sha_el = sha_el if sha_el is not None else el
            elif tag == _CONTENT_REF:
                ref_el = ref_el if ref_el is not None else el
        if content_el is None and size_el is not None and sha_el is not None and ref_el is not None:
            # The file travels as a MIME part: the signature covers its declared Size and Sha256,
            # and the gateway's intake checks the part's bytes against those signed values.
            continue
        if content_el is None or size_el is None or sha_el is None:
            raise StructureError("an Attachment needs Size, Sha256 and Content", field=where)
        text = content_el.text or ""
        plain = True
        try:  # base64.b64decode(validate=True) is this strict decoding; whitespace (line breaks) only if any
            try:
                data = binascii.a2b_base64(text, strict_mode=True)
            except (ValueError, binascii.Error):
                plain = False
                data = binascii.a2b_base64("".join(text.split()), strict_mode=True)
        except (ValueError, binascii.Error):
            raise AttachmentError("Content is not valid base64", code="attachment.content_invalid",
                                  field=f"{where}/Content") from None
        check_content(where, data, declared_size=size_el.text, declared_sha256=sha_el.text)
        contents[att_id] = data
        if plain and strict is not None and att_id is not None:
            strict[att_id] = data
    return contents


async def _trust_and_bind(check: SignatureCheck, cert: x509.Certificate, trust: TrustStore, sender: str,
                          usage: Usage = "document-signing") -> ValidatedCert | None:
    validated = None
    failure: PkiError | None = None
    try:
        validated = await trust.validate_signer(cert, usage=usage, intermediates=check.extra_certs)
        trusted = True
    except PkiError as exc:
        failure, trusted = exc, False
    try:
        trust.check_agency(cert, sender)
        authorised = True
    except PkiError as exc:
        failure, authorised = failure or exc, False
    facts = {"signer_trusted": trusted, "signer_authorised": authorised}
    check.report = _evolve(check.report, **facts) if failure is None else _fail(check.report, failure, **facts)
    return validated


async def validate_author(raw: bytes, root: etree._Element, trust: TrustStore, *, sender: str, allow_sha1: bool,
                          require_signature: bool, zone_checked: bool = False, schema_checked: bool = False,
                          ) -> tuple[ValidationReport, VerifiedEnvelope | None]:
    """The report on ``root``'s author signature, and the verified envelope when it holds.

    ``zone_checked``: the caller has just run :func:`pki.sigzone.check_signature_zone` on this very
    tree (the gateway's intake does, with ``seal=False``, stricter than the check here), so the zone
    is not walked a second time. ``schema_checked``: that tree was validated against the envelope XSD
    (``schemas/envelope-v1.xsd``) just before, as intake does (see :func:`check_signature`).
    """
    # Every element's proxy, made once and held while the envelope is checked: the id index, the zone
    # check and the signature's checks reach the same elements several times, and lxml hands back a
    # living proxy where it would otherwise make (and free) a new one on every visit.
    elements = list(root.iter(etree.Element))
    parts = envelope_parts(root)
    report = ValidationReport(signature_required=require_signature)
    if not zone_checked:
        try:
            check_signature_zone(root)
        except PkiError as exc:
            return _fail(report, exc), None
    found = author_signature(parts)
    index = id_index(root, elements)
    if found is None:
        if require_signature:
            return _fail(report, SignatureError("the envelope carries no author signature",
                                                code="signature.missing", field="Signatures")), None
        try:
            unsigned_contents = _check_attachments(parts.attachments)
        except PkiError as exc:
            return _fail(report, exc, digests_ok=False), None
        report = _evolve(report, digests_ok=True)
        return report, VerifiedEnvelope(root=root, body=parts.body, attachments=tuple(parts.attachments),
                                        signer=None, agency_code=None, signature_algorithm=None, raw=raw,
                                        report=report, contents=MappingProxyType(unsigned_contents))
    _, signature = found
    optional = [parts.header] if parts.header is not None and parts.header.get("Id") else []
    check = check_signature(parts, signature, index, required=[parts.body, *parts.attachments], optional=optional,
                            allow_sha1=allow_sha1, report=report, schema_checked=schema_checked)
    if check.report.signature_intact is not True or check.cert is None:
        if check.report.failure is not None and check.report.failure.code == "signature.invalid":
            # An attachment whose bytes no longer match its declared Size/Sha256 also breaks its
            # reference; name that fact (attachment.digest_mismatch, the code an unsigned envelope or a
            # multipart part gets) rather than the signature it took down with it.
            try:
                _check_attachments(parts.attachments)
            except AttachmentError as exc:
                check.report = _evolve(check.report, failure=exc, digests_ok=False)
        return check.report, None
    validated = await _trust_and_bind(check, check.cert, trust, sender)
    contents: dict[str, bytes] = {}
    strict: dict[str, bytes] = {}
    try:
        contents = _check_attachments(parts.attachments, strict)
        check.report = _evolve(check.report, digests_ok=True)
    except PkiError as exc:
        check.report = _fail(check.report, exc, digests_ok=False)
    if not check.report.ok:
        return check.report, None
    return check.report, VerifiedEnvelope(
        root=root, body=parts.body, attachments=tuple(parts.attachments), signer=check.cert,
        agency_code=check.report.agency_code, signature_algorithm=check.algorithm, raw=raw, report=check.report,
        contents=MappingProxyType(contents), strict_contents=MappingProxyType(strict), references=check.references,
        validated=validated, signing_time=check.signing_time, ids=index,
        exclusive_sha256=MappingProxyType(check.exclusive_sha256))


async def validate_envelope(envelope_bytes: bytes, trust: TrustStore, *, sender: str, allow_sha1: bool = False,
                            require_signature: bool = True) -> ValidationReport:
    """Check an envelope's author signature and attachments; return the facts, never raise for bad signatures.

    Raises only for input it cannot read: not XML (:class:`pki.errors.XmlError` from
    :func:`pki.xmlparse.parse`) or not a gateway envelope (``envelope.structure``).
    """
    report, _ = await validate_author(bytes(envelope_bytes), parse_for_verify(envelope_bytes), trust,
                                      sender=sender, allow_sha1=allow_sha1, require_signature=require_signature)
    return report


async def verify_envelope(envelope_bytes: bytes, trust: TrustStore, *, sender: str, allow_sha1: bool = False,
                          require_signature: bool = True, root: etree._Element | None = None,
                          zone_checked: bool = False, schema_checked: bool = False) -> VerifiedEnvelope:
    """Verify an envelope (see :func:`validate_envelope`) and return only verified data, or raise.

    ``sender`` is the agency code the envelope claims to come from (the
    authenticated client's agency); the signer's certificate must belong to it.
    ``root``: the tree :func:`pki.xmlparse.parse` (or :func:`gateway.core.xml.parse`)
    already made of exactly these bytes (saves a second parse on the hot path); comments and
    processing instructions are stripped from it in place, as from a fresh parse.
    ``zone_checked`` (with ``root`` only): the caller checked that tree's signature zone just before
    (see :func:`validate_author`). ``schema_checked`` (with ``root`` only): that tree was validated
    against ``schemas/envelope-v1.xsd`` just before (see :func:`validate_author`).
    """
    if root is None:
        root, zone_checked, schema_checked = parse_for_verify(envelope_bytes), False, False
    else:
        strip_comments(root)
    report, verified = await validate_author(bytes(envelope_bytes), root, trust,
                                             sender=sender, allow_sha1=allow_sha1,
                                             require_signature=require_signature, zone_checked=zone_checked,
                                             schema_checked=schema_checked)
    if verified is None or not report.ok:
        raise report.failure or SignatureError("the envelope did not verify")
    return verified
