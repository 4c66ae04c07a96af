"""Judging the main PDF's PAdES signatures years later, offline, from the material kept at acceptance.

The XML signatures are judged by :mod:`pki.ltv_verify` (pyHanko's past validation of the certificate
path, applied to XML-DSig by hand). A PDF signature is CMS, so pyHanko's own AdES machinery applies
whole: :func:`pyhanko.sign.validation.ades.ades_lta_validation` (ETSI EN 319 102-1 §5.6.3) validates the
signature at the verifier's "now" (``at``), and, where that fails only for reasons time explains (the
signer's certificate expired, a CA revoked since), runs *past signature validation* (§5.6.2.4,
``ades_past_signature_validation``): the control time slides back over later revocations and expiries,
and the signature holds if its proof of existence is not after the moment the path was last known good
and falls within the signer's validity.

Only what the caller hands in is used: the trust snapshot's anchors, the kept certificates, OCSP answers
and CRLs, each with a proof of existence at ``signing_time`` (the earliest time-stamp over the letter,
else its event in the signed audit chain), and that same proof for the signature value itself (the PDF
travelled inside the letter the proof covers). Fetching is off (``LOCAL_ONLY``); nothing reads today's
clock. The revocation policy is the one :mod:`pki.ltv_verify` applies: revocation information is
required for every certificate that declares a source.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed, AdESSubIndic
from pyhanko.sign.validation.ades import ades_lta_validation, ades_past_signature_validation
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.poe import KnownPOE, POEManager, POEType, digest_for_poe
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from pki.errors import PdfError, PkiError
from pki.ltv_verify import POLICY, past_validate_cert
from pki.pdf import _DIFF_POLICY, _modifications_allowed
from pki.trust import _from_asn1, _to_asn1

__all__ = ["PdfPastVerdict", "past_validate_pdf"]

_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False)


@dataclass(frozen=True)
class PdfPastVerdict:
    """The outcome for one embedded signature judged at ``at`` from the kept material."""

    #: The signature field's name.
    field_name: str
    #: The signature holds (AdES ``PASSED``).
    ok: bool
    #: The AdES indication and sub-indication (``PASSED/OK``, ``INDETERMINATE/...``, ``FAILED/...``).
    indication: str
    #: pyHanko's words for a failure ("" when it holds).
    detail: str
    #: The signer's certificate, when the signature names one.
    signer: x509.Certificate | None
    #: The proof of existence the verdict rests on (the earliest pyHanko found for the signature).
    best_signature_time: dt.datetime | None


#: Current-time outcomes that no proof of existence can improve (the signature itself is broken or fails
#: a permanent constraint): no past validation for these.
_FINAL = (AdESFailure.HASH_FAILURE, AdESFailure.SIG_CRYPTO_FAILURE, AdESFailure.REVOKED,
          AdESFailure.FORMAT_FAILURE, AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND)


async def _past(sig: EmbeddedPdfSignature, spec: SignatureValidationSpec, poes: Sequence[KnownPOE],
                current: AdESSubIndic, signer: x509.Certificate | None, kept: _Kept, signing_time: dt.datetime,
                at: dt.datetime) -> tuple[AdESSubIndic, str]:
    """pyHanko's ``ades_past_signature_validation`` from the kept proofs of existence (§5.6.2.4), and the
    path past-validated from ``at`` itself.

    Two things pyHanko 0.38 leaves open, closed here. It reports a CA certificate expired at ``at`` as
    ``CERTIFICATE_CHAIN_GENERAL_FAILURE`` (only the signer's own expiry is ``OUT_OF_BOUNDS_NO_POE``: a TODO
    in its ``generic_cms``) and then declines past validation; ETSI EN 319 102-1 §5.2.6 makes any
    certificate of the chain expired at the validation time ``OUT_OF_BOUNDS_NO_POE``, so that is what is
    handed on. And its path step starts the time sliding at the machine's clock (``init_control_time=None``
    in ``_build_and_past_validate_cert``), so the path is also past-validated from the verifier's "now"
    with the same pyHanko block the XML signatures use (:func:`pki.ltv_verify.past_validate_cert`): the
    signature holds only when both do."""
    if current == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE and any(
            c.not_valid_after_utc < at for c in (*kept.certs, *((signer,) if signer is not None else ()))):
        current = AdESIndeterminate.OUT_OF_BOUNDS_NO_POE
    if not isinstance(current, AdESIndeterminate) or signer is None:
        return current, "failed at the verifier's date"
    manager = POEManager(current_dt_override=at)
    for known in poes:
        manager.register_known_poe(known)
    sub = await ades_past_signature_validation(sig.signed_data, spec, manager, current, init_control_time=at)
    if sub != AdESPassed.OK:
        return sub, f"past signature validation: {_name(sub)}"
    try:
        await past_validate_cert(signer, anchors=kept.anchors, certs=kept.certs, ocsps=kept.ocsps, crls=kept.crls,
                                 poe_time=signing_time, signing_time=signing_time, at=at)
    except PkiError as exc:
        return AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE, f"{exc.code}: {exc.message}"
    return sub, ""


def _name(sub: AdESSubIndic) -> str:
    """``INDICATION/SUB_INDICATION`` (every member of the three enums has both)."""
    return f"{sub.status.name}/{getattr(sub, 'name', sub)}"


@dataclass(frozen=True)
class _Kept:
    anchors: Sequence[x509.Certificate]
    certs: Sequence[x509.Certificate]
    ocsps: Sequence[bytes]
    crls: Sequence[bytes]


def _signatures(pdf_bytes: bytes) -> list[EmbeddedPdfSignature]:
    try:
        return list(PdfFileReader(io.BytesIO(pdf_bytes), strict=False).embedded_signatures)
    except Exception as exc:  # pyHanko raises PdfReadError and others for broken files
        raise PdfError(f"cannot read the PDF: {type(exc).__name__}: {exc}") from None


async def past_validate_pdf(pdf_bytes: bytes, *, anchors: Sequence[x509.Certificate], certs: Iterable[x509.Certificate],
                            ocsps: Iterable[bytes], crls: Iterable[bytes], signing_time: dt.datetime,
                            at: dt.datetime) -> list[PdfPastVerdict]:
    """Every signature of ``pdf_bytes`` judged at ``at`` (see the module docstring); raises only for a PDF
    that cannot be read at all."""
    with _quiet_pyhanko():
        return await _past_validate_pdf(pdf_bytes, anchors=anchors, certs=certs, ocsps=ocsps, crls=crls,
                                        signing_time=signing_time, at=at)


@contextlib.contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    """Judging in 2040 fails at "now" by design (certificates expired) before past validation holds: pyHanko
    logs each such step as a warning with its traceback, which an auditor's terminal should not show (the
    verdict names what failed). Its validation loggers are raised to ERROR for the call."""
    loggers = [logging.getLogger(name) for name in ("pyhanko.sign.validation", "pyhanko_certvalidator")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


async def _past_validate_pdf(pdf_bytes: bytes, *, anchors: Sequence[x509.Certificate],
                             certs: Iterable[x509.Certificate], ocsps: Iterable[bytes], crls: Iterable[bytes],
                             signing_time: dt.datetime, at: dt.datetime) -> list[PdfPastVerdict]:
    sigs = await asyncio.to_thread(_signatures, bytes(pdf_bytes))
    kept = _Kept(tuple(anchors), tuple(certs), tuple(ocsps), tuple(crls))
    certs, ocsps, crls = kept.certs, kept.ocsps, kept.crls
    known = LocalKnowledge(
        known_ocsps=[c for d in ocsps for c in OCSPContainer.load_multi(asn1_ocsp.OCSPResponse.load(d))],
        known_crls=[CRLContainer(asn1_crl.CertificateList.load(d)) for d in crls],
        known_certs=[_to_asn1(c) for c in (*certs, *anchors)])
    trust = SimpleTrustManager.build(trust_roots=[_to_asn1(a) for a in anchors])
    policy = CertValidationPolicySpec(trust_manager=trust, revinfo_policy=POLICY)
    out = []
    for sig in sigs:
        signature_value = sig.signer_info["signature"].native
        poes = [*known.assert_existence_known_at(signing_time),
                KnownPOE(POEType.PROVIDED, digest_for_poe(signature_value), signing_time)]
        spec = SignatureValidationSpec(
            cert_validation_policy=policy, key_usage_settings=_USAGE,
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
            local_knowledge=LocalKnowledge(known_ocsps=known.known_ocsps, known_crls=known.known_crls,
                                           known_certs=known.known_certs, known_poes=poes))
        timing = ValidationTimingInfo(validation_time=at, best_signature_time=at, point_in_time_validation=True)
        signer = None
        try:
            signer = _from_asn1(sig.signer_cert)
        except Exception:  # noqa: BLE001 - a signature that names no certificate is judged (and fails) below
            pass
        try:
            result = await ades_lta_validation(sig, PdfSignatureValidationSpec(spec, diff_policy=_DIFF_POLICY),
                                               timing_info=timing)
            sub = result.ades_subindic
            status = result.api_status
            detail = result.failure_msg or ""
            if sub not in (AdESPassed.OK, *_FINAL) and status is not None:
                sub, detail = await _past(sig, spec, poes, sub, signer, kept, signing_time, at)
        except Exception as exc:  # noqa: BLE001 - a broken signature is a fact about the file
            out.append(PdfPastVerdict(str(sig.field_name), False, "FAILED", f"{type(exc).__name__}: {exc}",
                                      signer, None))
            continue
        intact = status is not None and bool(status.intact and status.valid)
        allowed = status is not None and _modifications_allowed(status)
        ok = sub == AdESPassed.OK and intact and allowed
        if not intact:
            detail = "the signed bytes changed, or the signature value does not verify"
        elif not allowed:
            level = status.modification_level if status is not None else None
            detail = f"changed after signing beyond form filling and annotations ({level})"
        out.append(PdfPastVerdict(
            field_name=str(sig.field_name), ok=ok, indication=_name(sub),
            detail="" if ok else (detail or _name(sub)), signer=signer, best_signature_time=signing_time))
    return out
