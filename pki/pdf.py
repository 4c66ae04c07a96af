"""PDF letters: PAdES validation, signing (tests and demo letters) and the receiving stamp (ตรารับ).

Everything here uses pyHanko's *async* API: the synchronous wrappers call
``asyncio.run`` and break inside aiohttp's running loop. Parsing the file (a
CPU-bound pass over the whole PDF) runs in a worker thread; validation stays
on the loop because certificate validation may fetch OCSP/CRLs with the
shared aiohttp session.

The receiving stamp is added as an **incremental update** holding one
``/Stamp`` annotation whose appearance is a form XObject drawn by pyHanko's
text stamp with a Thai TrueType font (shaped by HarfBuzz, so tone marks and
vowels sit where they belong). The signed revision is untouched, so the
author's signature still verifies.

Later modifications
-------------------
A signature over one revision says nothing about what later incremental
updates draw on the page, so each signature's report carries pyHanko's
difference analysis (``coverage``, ``modification_level``, ``docmdp_ok``) and
the bottom line :attr:`PdfSignatureReport.ok` requires
:attr:`PdfSignatureReport.modifications_allowed`. The rule:

* the signature covers the whole file (``ENTIRE_FILE``), or a whole revision
  (``ENTIRE_REVISION``) after which the later revisions change at most form
  fields and annotations (``NONE``, ``LTA_UPDATES``, ``FORM_FILLING``,
  ``ANNOTATIONS``; the PDF DocMDP levels 1-3), never page content or
  structure (``OTHER``);
* and, if the author certified the document with DocMDP permissions, pyHanko
  finds the changes compatible with them.

pyHanko's standard difference policy clears only form-field widgets added to a
page. This module adds one rule (:class:`_AddedAnnotationsRule`) that clears,
at level ``ANNOTATIONS``, new non-widget annotations appended to a page's
``/Annots`` (the page otherwise unchanged) together with the fresh objects
they draw with: this is what the receiving stamp is, so a stamped letter keeps
validating, while an update that rewrites a content stream or any other
existing object stays ``OTHER`` and fails the rule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos
from cryptography import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    ModificationLevel,
    QualifiedWhitelistRule,
    ReferenceUpdate,
    StandardDiffPolicy,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko.stamp import TextStamp, TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from pki.errors import CertificateError, PdfError, PkiError
from pki.keys import Signer, raw_to_der_ecdsa
from pki.thaidate import thai_date, thai_time
from pki.trust import (
    CAPTURE,
    TOLERATE_UNKNOWN,
    RevocationFact,
    RevocationMode,
    TrustStore,
    ValidatedCert,
    _to_asn1,
    agency_of,
    close_context,
    fingerprint,
)

__all__ = ["PdfSignatureReport", "PdfReport", "validate_pdf", "sign_pdf", "async_sign_pdf", "stamp_received",
           "make_demo_pdf", "find_thai_font", "THAI_FONT_CANDIDATES"]

#: Where Debian's fonts-thai-tlwg (and a few other distributions) put a Thai TrueType font.
THAI_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/tlwg/Garuda.ttf",
    "/usr/share/fonts/truetype/tlwg/Loma.ttf",
    "/usr/share/fonts/truetype/tlwg/Norasi.ttf",
    "/usr/share/fonts/truetype/thai-tlwg/Garuda.ttf",
    "/usr/share/fonts/tlwg/Garuda.ttf",
    "/usr/share/fonts/TTF/Garuda.ttf",
)


@dataclass(frozen=True)
class PdfSignatureReport:
    """Facts about one embedded PDF signature."""

    #: Name of the signature field.
    field_name: str
    #: The signed byte ranges hash to the signed digest.
    intact: bool
    #: The CMS signature value verifies with the signer's key.
    valid: bool
    #: The signer's certificate chains to the trust store's anchors and passes its checks.
    trusted: bool
    #: Signer subject (RFC 4514).
    signer_subject: str
    #: Agency code of the signer's certificate, if it carries one.
    agency_code: str | None
    #: Signing time claimed by the signer (not a timestamp), if any.
    signing_time: dt.datetime | None
    #: ``ENTIRE_FILE`` or ``ENTIRE_REVISION`` (later incremental updates exist).
    coverage: str
    #: What later revisions changed: ``NONE``, ``LTA_UPDATES``, ``FORM_FILLING``, ``ANNOTATIONS``, ``OTHER``;
    #: None when unknown.
    modification_level: str | None
    #: pyHanko's bottom line (includes its judgement of later modifications).
    pyhanko_bottom_line: bool
    #: Human-readable summary from pyHanko.
    summary: str
    #: Later revisions change at most form fields and annotations (see the module docstring's rule).
    modifications_allowed: bool = False
    #: pyHanko's verdict on the changes against the author's DocMDP permissions (None: not certified).
    docmdp_ok: bool | None = None
    #: The signer's certificate (for the agency binding), when the signature names one.
    signer: x509.Certificate | None = None
    #: What the check established about the signer's revocation: ``ok``, ``unknown`` (soft-fail),
    #: ``off``, or ``pending`` (hard-fail could not reach the responders and the caller tolerated it:
    #: validation-pending, see :func:`pki.ltv.tolerating_unknown_revocation`).
    revocation: RevocationFact = "ok"

    @property
    def signature_holds(self) -> bool:
        """The signature itself: intact, valid and trusted (whatever came after it)."""
        return self.intact and self.valid and self.trusted

    @property
    def ok(self) -> bool:
        """The signature holds and what was changed after it is allowed (a stamp yes, new page content no)."""
        return self.signature_holds and self.modifications_allowed


@dataclass(frozen=True)
class PdfReport:
    """Validation of every signature in a PDF, with a bottom line."""

    signatures: tuple[PdfSignatureReport, ...]

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    @property
    def ok(self) -> bool:
        """At least one signature and all of them hold. An unsigned PDF is not ok, but it is not an error."""
        return self.signed and all(s.ok for s in self.signatures)

    @property
    def status(self) -> str:
        """``unsigned``, ``valid`` or ``invalid``."""
        if not self.signed:
            return "unsigned"
        return "valid" if self.ok else "invalid"


def _reader(pdf_bytes: bytes) -> tuple[PdfFileReader, list[EmbeddedPdfSignature]]:
    try:
        reader = PdfFileReader(io.BytesIO(pdf_bytes), strict=False)
        sigs = list(reader.embedded_signatures)
    except Exception as exc:  # pyHanko raises PdfReadError and others for broken files
        raise PdfError(f"cannot read the PDF: {type(exc).__name__}: {exc}") from None
    return reader, sigs


async def validate_pdf(pdf_bytes: bytes, trust: TrustStore) -> PdfReport:
    """Validate every signature in ``pdf_bytes`` against ``trust``; raise only for an unreadable PDF, or
    ``certificate.revocation_unknown`` when, under hard-fail, a signer's responders did not answer and
    all else holds (inside :func:`pki.ltv.tolerating_unknown_revocation` that signature is reported
    with ``revocation="pending"`` instead). Inside :func:`pki.ltv.capturing` each signer's path, OCSP
    answers and CRLs are recorded (role ``pdf``) for long-term validation."""
    _, sigs = await asyncio.to_thread(_reader, bytes(pdf_bytes))
    reports = []
    for sig in sigs:
        try:
            status, context, revocation = await _validate_one(sig, trust)
        except PkiError:
            raise
        except Exception as exc:  # a broken signature dictionary is a fact about the file, not a crash
            reports.append(PdfSignatureReport(
                field_name=str(sig.field_name), intact=False, valid=False, trusted=False, signer_subject="",
                agency_code=None, signing_time=None, coverage="UNKNOWN", modification_level=None,
                pyhanko_bottom_line=False, summary=f"unreadable signature: {type(exc).__name__}: {exc}"))
            continue
        cert = status.signing_cert
        crypto_cert = None
        if cert is not None:
            crypto_cert = x509.load_der_x509_certificate(cert.dump())
            _capture(crypto_cert, status, context, revocation)
        reports.append(PdfSignatureReport(
            field_name=str(sig.field_name),
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            signer_subject=crypto_cert.subject.rfc4514_string() if crypto_cert else "",
            agency_code=agency_of(crypto_cert) if crypto_cert else None,
            signing_time=status.signer_reported_dt,
            coverage=status.coverage.name if status.coverage else "UNKNOWN",
            modification_level=status.modification_level.name if status.modification_level else None,
            pyhanko_bottom_line=bool(status.bottom_line),
            summary=status.summary(),
            modifications_allowed=_modifications_allowed(status),
            docmdp_ok=status.docmdp_ok,
            signer=crypto_cert,
            revocation=revocation,
        ))
    return PdfReport(tuple(reports))


_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False)


async def _run(sig: EmbeddedPdfSignature, trust: TrustStore, mode: RevocationMode | None,
               ) -> tuple[PdfSignatureStatus, ValidationContext, int]:
    """One validation of ``sig``; its context and how many fetches found the responder unreachable."""
    context, backend = trust.fetching_context(revocation=mode)
    try:
        status = await async_validate_pdf_signature(sig, signer_validation_context=context,
                                                    key_usage_settings=_USAGE, diff_policy=_DIFF_POLICY)
    finally:
        await close_context(context)
    return status, context, backend.unreachable if backend is not None else 0


async def _validate_one(sig: EmbeddedPdfSignature, trust: TrustStore,
                        ) -> tuple[PdfSignatureStatus, ValidationContext, RevocationFact]:
    """The status, its context and the revocation fact; under hard-fail an outage (the responders did not
    answer) is told from a real failure by checking again under soft-fail (see :func:`validate_pdf`)."""
    status, context, unreachable = await _run(sig, trust, None)
    if trust.revocation == "off":
        return status, context, "off"
    if status.trusted or trust.revocation != "hard-fail" or not unreachable:
        return status, context, "ok" if status.trusted and not context.soft_fail_exceptions else "unknown"
    soft, soft_context, _ = await _run(sig, trust, "soft-fail")
    if not soft.trusted:  # untrusted whatever the responders say: a fact about the signature, reported
        return soft, soft_context, "unknown"
    if not TOLERATE_UNKNOWN.get():
        raise CertificateError(f"the main PDF's signature ({sig.field_name}): the signer's revocation status "
                               "could not be established (the OCSP responder or CRL distribution point did "
                               "not answer)", code="certificate.revocation_unknown")
    return soft, soft_context, "pending"


def _capture(cert: x509.Certificate, status: PdfSignatureStatus, context: ValidationContext,
             revocation: RevocationFact) -> None:
    """Record what this signature's validation relied on (inside :func:`pki.ltv.capturing`): a signature
    that held only (or is pending); one that did not is a fact of the letter (``pdf_valid``), not evidence
    to judge again."""
    captured = CAPTURE.get()
    if captured is None or not (status.trusted and status.intact and status.valid):
        return
    path = status.validation_path
    chain = tuple(reversed([x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True)])
                  ) if path is not None else (cert,)
    moment = context.moment
    captured.append(ValidatedCert(
        cert=cert, path=chain, fingerprint=fingerprint(cert), agency_code=agency_of(cert), usage="document-signing",
        checked_at=moment, valid_until=moment, valid_from=moment,
        soft_failures=tuple(str(e) for e in context.soft_fail_exceptions),
        revocation=revocation,
        ocsp=tuple(r.dump() for r in context.ocsps), crls=tuple(c.dump() for c in context.crls), role="pdf"))


_ALLOWED_LEVELS = frozenset({"NONE", "LTA_UPDATES", "FORM_FILLING", "ANNOTATIONS"})


def _modifications_allowed(status: PdfSignatureStatus) -> bool:
    """The rule of the module docstring, over one pyHanko signature status."""
    coverage = status.coverage.name if status.coverage else None
    if coverage == "ENTIRE_FILE":
        return status.docmdp_ok is not False
    if coverage != "ENTIRE_REVISION" or status.modification_level is None:
        return False
    return status.modification_level.name in _ALLOWED_LEVELS and status.docmdp_ok is not False


class _AddedAnnotationsRule(QualifiedWhitelistRule):
    """Clear, at level ANNOTATIONS, annotations appended to a page (see the module docstring).

    For every page that the new
    revision rewrites: the page dictionary must equal the old one except for
    ``/Annots``; every old annotation must still be there; every added one
    must be a fresh object (an id the old revision could not have used) that
    is not a form widget. Then the page, its ``/Annots`` array and the added
    annotations with the *fresh* objects they reach (appearance streams,
    fonts) are cleared; an existing object rewritten on the way is not, so
    pyHanko reports it (``OTHER``).
    """

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver,
                        ) -> Iterator[tuple[ModificationLevel, ReferenceUpdate]]:
        level = ModificationLevel.ANNOTATIONS
        changed = new.explicit_refs_in_revision()

        def refs(value: generic.PdfObject | None) -> set[generic.Reference] | None:
            array = value.get_object() if value is not None else generic.ArrayObject()
            if not isinstance(array, generic.ArrayObject) or \
                    not all(isinstance(a, generic.IndirectObject) for a in array):
                return None
            return {a.reference for a in array}

        def pages(old_node: generic.DictionaryObject, new_node: generic.DictionaryObject, depth: int = 0,
                  ) -> Iterator[tuple[generic.Reference, generic.DictionaryObject, generic.DictionaryObject]]:
            if depth > 32:
                return
            old_kids, new_kids = refs(old_node.get("/Kids")), refs(new_node.get("/Kids"))
            if old_kids is None or old_kids != new_kids:
                return
            for kid in new_node["/Kids"]:
                old_kid, new_kid = old(kid.reference), kid.get_object()
                if old_kid.get("/Type") == "/Pages":
                    yield from pages(old_kid, new_kid, depth + 1)
                else:
                    yield kid.reference, old_kid, new_kid

        try:
            walk = list(pages(old.root["/Pages"], new.root["/Pages"]))
        except Exception:  # noqa: BLE001 - an unreadable page tree clears nothing
            return
        for page_ref, old_page, new_page in walk:
            if page_ref not in changed:
                continue
            try:
                if not compare_dicts(old_page, new_page, frozenset({"/Annots"}), raise_exc=False):
                    continue
            except Exception:  # noqa: BLE001
                continue
            old_annots, new_annots = refs(old_page.raw_get("/Annots") if "/Annots" in old_page else None), \
                refs(new_page.raw_get("/Annots") if "/Annots" in new_page else None)
            if old_annots is None or new_annots is None or not old_annots <= new_annots:
                continue
            added = new_annots - old_annots
            if not added or not all(old.is_ref_unassignable(a) for a in added):
                continue
            if any(new(a).get("/Subtype") == "/Widget" for a in added):
                continue  # form fields are the form rule's
            yield level, ReferenceUpdate(page_ref)
            annots_value = new_page.raw_get("/Annots")
            if isinstance(annots_value, generic.IndirectObject):
                yield level, ReferenceUpdate(annots_value.reference)
            for a in added:
                yield level, ReferenceUpdate(a)
                for dep in new.collect_dependencies(new(a), since_revision=new.revision):
                    if old.is_ref_unassignable(dep):
                        yield level, ReferenceUpdate(dep)


#: pyHanko's standard difference policy plus :class:`_AddedAnnotationsRule` (the receiving stamp).
_DIFF_POLICY = StandardDiffPolicy(global_rules=[*DEFAULT_DIFF_POLICY.global_rules, _AddedAnnotationsRule()],
                                  form_rule=DEFAULT_DIFF_POLICY.form_rule)


class _ProtocolPdfSigner(signers.Signer):
    """A pyHanko ``Signer`` over our :class:`pki.keys.Signer` (file key or HSM alike)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._is_ec = signer.key_algorithm.startswith("ecdsa")
        mechanism = algos.SignedDigestAlgorithm(
            {"algorithm": f"{signer.hash_name}_{'ecdsa' if self._is_ec else 'rsa'}"})
        super().__init__(signing_cert=_to_asn1(signer.certificate),
                         cert_registry=SimpleCertificateStore.from_certs([_to_asn1(c) for c in signer.chain]),
                         signature_mechanism=mechanism)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm.lower() != self._signer.hash_name:
            raise PdfError(f"this key signs with {self._signer.hash_name}, pyHanko asked for "
                           f"{digest_algorithm}")
        raw = await asyncio.to_thread(self._signer.sign, data)
        return raw_to_der_ecdsa(raw) if self._is_ec else raw


async def async_sign_pdf(pdf_bytes: bytes, signer: Signer, *, field_name: str = "AuthorSignature",
                         reason: str | None = None) -> bytes:
    """Sign a PDF (PAdES baseline B, approval signature) and return the new bytes."""
    writer = IncrementalPdfFileWriter(io.BytesIO(bytes(pdf_bytes)), strict=False)
    meta = signers.PdfSignatureMetadata(field_name=field_name, subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm=signer.hash_name, reason=reason)
    out = await signers.async_sign_pdf(writer, meta, signer=_ProtocolPdfSigner(signer))
    return out.getvalue()


def sign_pdf(pdf_bytes: bytes, signer: Signer, *, field_name: str = "AuthorSignature",
             reason: str | None = None) -> bytes:
    """Synchronous :func:`async_sign_pdf` for scripts and tests; inside a running loop, await the async
    one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(async_sign_pdf(pdf_bytes, signer, field_name=field_name, reason=reason))
    raise RuntimeError("sign_pdf() called inside a running event loop; await async_sign_pdf() instead")


def find_thai_font(explicit: str | os.PathLike | None = None) -> Path:
    """A Thai TrueType font: ``explicit``, ``$SARABAN_THAI_FONT``, or a known fonts-thai-tlwg path."""
    candidates: Sequence[str | os.PathLike] = [c for c in (explicit, os.environ.get("SARABAN_THAI_FONT"))
                                               if c]
    candidates = [*candidates, *THAI_FONT_CANDIDATES]
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    raise PkiError("no Thai TrueType font found for the receiving stamp; install the Debian package "
                   "fonts-thai-tlwg (Garuda.ttf) or set SARABAN_THAI_FONT", code="pdf.font_missing")


def stamp_received(pdf_bytes: bytes, *, agency_name: str, registry_number: str, received_at: dt.datetime,
                   font_path: str | os.PathLike | None = None, margin: float = 24.0) -> bytes:
    """Add the receiving stamp (ตรารับ) to the top right of page 1 as an incremental update.

    Four lines, in Thai: the receiving agency, ``เลขรับ`` registry number,
    ``วันที่`` Buddhist-era date and ``เวลา`` time (UTC+7). CPU-bound (font
    subsetting); call it through ``asyncio.to_thread`` from the event loop.
    """
    font = find_thai_font(font_path)
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(bytes(pdf_bytes)), strict=False)
        page_ref, _ = writer.find_page_for_modification(0)
    except Exception as exc:
        raise PdfError(f"cannot open the PDF for stamping: {type(exc).__name__}: {exc}") from None
    lines = [agency_name, f"เลขรับ {registry_number}", f"วันที่ {thai_date(received_at)}",
             f"เวลา {thai_time(received_at)} น."]
    style = TextStampStyle(
        stamp_text="\n".join(line.replace("%", "%%") for line in lines),
        text_box_style=TextBoxStyle(font=GlyphAccumulatorFactory(str(font), font_size=11), font_size=11,
                                    leading=15),
        border_width=1,
        border_color=(0.1, 0.2, 0.6),
    )
    stamp = TextStamp(writer, style, text_params={})
    appearance = stamp.register()
    width, height = stamp.box.width, stamp.box.height
    page = page_ref.get_object()
    box = [float(v) for v in page.get("/CropBox", page.get("/MediaBox", [0, 0, 595, 842]))]
    x1, y1 = box[2] - margin, box[3] - margin
    rect = [x1 - width, y1 - height, x1, y1]
    annotation = generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Annot"),
        pdf_name("/Subtype"): pdf_name("/Stamp"),
        pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in rect),
        pdf_name("/F"): generic.NumberObject(4),  # print
        pdf_name("/P"): page_ref,
        pdf_name("/NM"): pdf_string(f"saraban-received-{registry_number}"),
        pdf_name("/Contents"): pdf_string(" / ".join(lines)),
        pdf_name("/AP"): generic.DictionaryObject({pdf_name("/N"): appearance}),
    })
    writer.register_annotation(page_ref, writer.add_object(annotation))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_demo_pdf(lines: Sequence[str] = ("Official letter", "No. 0105/123"), *,
                  media_box: tuple[float, float, float, float] = (0, 0, 595, 842)) -> bytes:
    """A one-page A4 PDF with a few Latin lines (Helvetica), for tests and demo letters."""
    writer = PdfFileWriter()
    font = writer.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica"), pdf_name("/Encoding"): pdf_name("/WinAnsiEncoding")}))
    ops = [b"BT /F1 16 Tf 72 700 Td 22 TL"]
    for line in lines:
        escaped = (line.encode("cp1252", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(")
                   .replace(b")", b"\\)"))
        ops.append(b"(" + escaped + b") Tj T*")
    ops.append(b"ET")
    content = writer.add_object(generic.StreamObject(stream_data=b"\n".join(ops)))
    resources = generic.DictionaryObject({pdf_name("/Font"):
                                          generic.DictionaryObject({pdf_name("/F1"): font})})
    writer.insert_page(PageObject(contents=content, media_box=list(media_box), resources=resources))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
