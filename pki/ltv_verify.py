"""Judging a signature years later, offline, from the material kept at acceptance.

This is ETSI EN 319 102-1's *past signature validation* (§5.6.2.4) for the gateway's XML signatures,
built on pyHanko's implementation of its certificate block: :func:`pyhanko_certvalidator.ltv.ades_past.
past_validate` (time-sliding from the verifier's "now" back to the last moment the path is known
good, CA revocations and algorithm sunsets included), with the decision pyHanko's
``ades_past_signature_validation`` takes for CMS signatures (that one needs a CMS ``SignedData``;
ours is XML-DSig, so the same rule is applied here): the signature holds if its proven signing time
(``best_signature_time``) is not after that control time and falls inside the signer's validity.

Only what the caller hands in is used (``allow_fetching`` is off: no fetcher exists), and every item
gets a proof of existence at ``poe_time`` (the moment the signed audit chain, or a time-stamp over
it, proves the material was held). Nothing is fetched; today's clock is never read.

:class:`PastTrust` is a :class:`pki.trust.TrustStore` whose ``validate_signer`` does that, so the very
code that verified the signature at intake (:func:`pki.verify.validate_author`: structure,
references, algorithms, crypto, in-place identity) verifies it again in 2040.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.context import CertValidationPolicySpec, bootstrap_validation_data_handlers
from pyhanko_certvalidator.ltv.ades_past import past_validate
from pyhanko_certvalidator.ltv.poe import POEManager, POEType
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import PathBuilder, SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from pki.errors import CertificateError, PkiError
from pki.trust import (
    AgencyBinding,
    TrustStore,
    Usage,
    ValidatedCert,
    _from_asn1,
    _to_asn1,
    agency_of,
    fingerprint,
)

__all__ = ["POLICY", "PastTrust", "PastVerdict", "past_validate_cert"]

#: Revocation information is required for every certificate in the path that declares a source
#: (OCSP or CRL); the responder's own certificate is exempt when it carries ocsp-nocheck.
POLICY = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED))


@dataclass(frozen=True)
class PastVerdict:
    """The outcome for one certificate judged at a signing time."""

    #: The path leaf -> anchor (empty when none could be built).
    path: tuple[x509.Certificate, ...]
    #: The last time the path is known good (pyHanko's control time after time sliding).
    control_time: dt.datetime | None
    #: The proven signing time the signature was judged at.
    signing_time: dt.datetime


async def past_validate_cert(cert: x509.Certificate, *, anchors: Sequence[x509.Certificate],
                             certs: Iterable[x509.Certificate], ocsps: Iterable[bytes], crls: Iterable[bytes],
                             poe_time: dt.datetime, signing_time: dt.datetime, at: dt.datetime) -> PastVerdict:
    """Past-validate ``cert`` (raise a ``certificate.*`` :class:`PkiError` naming the fact)."""
    poe = POEManager(current_dt_override=at)
    ocsp_objs = [asn1_ocsp.OCSPResponse.load(d) for d in ocsps]
    crl_objs = [asn1_crl.CertificateList.load(d) for d in crls]
    # the anchors too: a CA's CRL is matched to its issuer through the registry, not the trust manager
    cert_objs = [_to_asn1(c) for c in (*certs, *anchors)]
    leaf = _to_asn1(cert)
    for obj in (*ocsp_objs, *crl_objs, *cert_objs, leaf):
        poe.register(obj, POEType.PROVIDED, poe_time)
    handlers = bootstrap_validation_data_handlers(
        fetchers=None, crls=[CRLContainer(o) for o in crl_objs],
        ocsps=[c for o in ocsp_objs for c in OCSPContainer.load_multi(o)], certs=cert_objs, poe_manager=poe)
    trust = SimpleTrustManager.build(trust_roots=[_to_asn1(a) for a in anchors])
    spec = CertValidationPolicySpec(trust_manager=trust, revinfo_policy=POLICY)
    builder = PathBuilder(trust_manager=trust, registry=handlers.cert_registry)
    last: Exception | None = None
    paths = builder.async_build_paths_lazy(leaf)
    try:
        async for candidate in paths:
            try:
                control = await past_validate(candidate, spec, handlers, init_control_time=at,
                                              best_signature_time=signing_time)
            except (cv_errors.PathValidationError, cv_errors.ValidationError, cv_errors.PathBuildingError) as exc:
                last = exc
                continue
            chain = tuple(reversed([_from_asn1(c) for c in candidate.iter_certs(include_root=True)]))
            if signing_time > control:
                raise CertificateError(
                    f"signed at {signing_time.isoformat()}, but the path of {cert.subject.rfc4514_string()} is "
                    f"proven good only until {control.isoformat()}", code="certificate.revoked")
            if not cert.not_valid_before_utc <= signing_time <= cert.not_valid_after_utc:
                raise CertificateError(f"signed at {signing_time.isoformat()}, outside the certificate's validity "
                                       f"({cert.not_valid_before_utc.isoformat()} .. "
                                       f"{cert.not_valid_after_utc.isoformat()})", code="certificate.expired")
            return PastVerdict(path=chain, control_time=control, signing_time=signing_time)
    finally:
        await paths.cancel()
    if last is None:
        raise CertificateError(f"no path from {cert.subject.rfc4514_string()} to an anchor of the trust snapshot",
                               code="certificate.untrusted")
    raise _past_error(last)


def _past_error(exc: Exception) -> PkiError:
    cause = exc.__cause__ or exc
    text = f"{exc}: {cause}" if cause is not exc else str(exc)
    if isinstance(cause, cv_errors.RevokedError):
        return CertificateError(text, code="certificate.revoked")
    if isinstance(cause, cv_errors.InsufficientRevinfoError):
        return CertificateError(text, code="certificate.revocation_unknown")
    if isinstance(cause, cv_errors.InsufficientPOEError):
        return CertificateError(text, code="certificate.revocation_unknown")
    if isinstance(cause, cv_errors.DisallowedAlgorithmError):
        return CertificateError(text, code="certificate.algorithm")
    if isinstance(cause, (cv_errors.ExpiredError, cv_errors.NotYetValidError)):
        return CertificateError(text, code="certificate.expired")
    return CertificateError(text, code="certificate.invalid")


class PastTrust(TrustStore):
    """A trust store that judges every signer at ``signing_time`` from kept material only (see module)."""

    def __init__(self, anchors: Sequence[x509.Certificate], *, certs: Sequence[x509.Certificate],
                 ocsps: Sequence[bytes], crls: Sequence[bytes], poe_time: dt.datetime, signing_time: dt.datetime,
                 at: dt.datetime, binding: AgencyBinding | None = None) -> None:
        super().__init__(anchors, certs, revocation="hard-fail", ocsp=False, clock=lambda: at, binding=binding,
                         fetch_allow=[])
        self.kept_certs, self.kept_ocsps, self.kept_crls = tuple(certs), tuple(ocsps), tuple(crls)
        self.poe_time, self.signing_time, self.at = poe_time, signing_time, at
        #: Verdicts by signer fingerprint, for the caller's report.
        self.verdicts: dict[str, PastVerdict] = {}

    async def validate_signer(self, cert: x509.Certificate, *, at: dt.datetime | None = None,
                              usage: Usage = "document-signing",
                              intermediates: Sequence[x509.Certificate] = ()) -> ValidatedCert:
        verdict = await past_validate_cert(cert, anchors=self.anchors, certs=(*self.kept_certs, *intermediates),
                                           ocsps=self.kept_ocsps, crls=self.kept_crls, poe_time=self.poe_time,
                                           signing_time=self.signing_time, at=at or self.at)
        self.verdicts[fingerprint(cert)] = verdict
        return ValidatedCert(cert=cert, path=verdict.path, fingerprint=fingerprint(cert), agency_code=agency_of(cert),
                             usage=usage, checked_at=self.signing_time, valid_until=self.signing_time,
                             valid_from=self.signing_time)
