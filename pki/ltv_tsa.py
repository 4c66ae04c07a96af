"""Revocation data for a time-stamping authority's certificate, kept inside its own tokens.

A time-stamp proves *when* only while its TSA certificate can be shown good at the time it stamped; years
later the TSA's OCSP responder and CRL are gone. So right after a token arrives (before it is stored,
before any record or renewal covers it) the gateway fetches the revocation information of the TSA's
certificate (its OCSP answer and the CRLs of its distribution points, through :mod:`pki.fetch`'s guarded
fetcher: only the hosts the token's own certificates name, within a time budget; the OCSP responder's own
certificate's data comes along, pyHanko fetches it into the same context) and keeps it in the token, as
CAdES keeps a signer's: the unsigned attribute ``revocation-values`` (id-aa-ets-revocationValues,
1.2.840.113549.1.9.16.2.24, RFC 5126 §6.3.4) of the token's SignerInfo::

    RevocationValues ::= SEQUENCE {
        crlVals    [0] SEQUENCE OF CertificateList OPTIONAL,
        ocspVals   [1] SEQUENCE OF BasicOCSPResponse OPTIONAL }

An unsigned attribute is outside what the TSA signed: the token still verifies (``openssl ts -verify``
included) and its message imprint is unchanged, so a hash tree's path to it holds. The ATS's ``timeStamp``
field is the augmented token, so an RFC 4998 time-stamp renewal (which hashes that field) covers the
revocation data too, and every Evidence Record in an evidence bundle carries it. :func:`revocation_values`
reads it back for the verifier (:mod:`pki.ers_verify`).

Fetching is best effort: a TSA certificate that names no source, or sources that do not answer, leaves the
token as it came (the stamp is never lost for it), and the verifier says what it relied on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.fetchers import OwnedFetcherBackend

from pki import ers
from pki.fetch import FetchPolicy, GuardedFetcherBackend, allow_list_of
from pki.trust import close_context

__all__ = ["REVOCATION_VALUES", "augmenting", "fetch_tsa_revocation", "revocation_values", "with_revocation_values"]

#: id-aa-ets-revocationValues (RFC 5126).
REVOCATION_VALUES = ers.REVOCATION_VALUES_OID

DigestStamper = Callable[[bytes, str], Awaitable[bytes]]


async def fetch_tsa_revocation(token: bytes, *, session: Any = None, timeout: float = 2.0, budget: float = 5.0,
                               ) -> tuple[list[bytes], list[bytes]]:
    """(OCSP responses, CRLs) as DER for the token's TSA certificate (and its OCSP responder's), fetched now
    from the sources its certificates name; ([], []) when there are none or none answered."""
    sd = cms.ContentInfo.load(token)["content"]
    signer = ers.token_signer(sd)
    if signer is None:
        return [], []
    embedded = [c.chosen for c in sd["certificates"] or []]
    chain = [x509.load_der_x509_certificate(c.dump()) for c in embedded]
    allow = allow_list_of(chain)
    if not allow:
        return [], []
    # asn1crypto answers "yes", "maybe" or "no" (a truthy string): the TSA itself must not be its anchor
    roots = [c for c in embedded if c.self_signed != "no" and c != signer] or [
        c for c in embedded if c.subject == signer.issuer and c != signer]
    gen_time = sd["encap_content_info"]["content"].parsed["gen_time"].native
    backend = GuardedFetcherBackend(FetchPolicy.parse(",".join(allow), timeout=timeout, budget=budget),
                                    session=session)
    context = ValidationContext(trust_roots=roots, other_certs=embedded, moment=gen_time, allow_fetching=True,
                                revocation_mode="soft-fail", fetcher_backend=OwnedFetcherBackend(backend))
    try:
        await CertificateValidator(signer, validation_context=context).async_validate_usage(set())
    except Exception:  # noqa: BLE001 - whatever it concluded, what it fetched is what is kept
        pass
    finally:
        await close_context(context)
    return [r.dump() for r in context.ocsps], [c.dump() for c in context.crls]


def with_revocation_values(token: bytes, ocsps: list[bytes], crls: list[bytes]) -> bytes:
    """``token`` with a ``revocation-values`` unsigned attribute holding ``ocsps`` and ``crls`` (see module)."""
    basics = []
    for der in ocsps:
        response = asn1_ocsp.OCSPResponse.load(der)
        if response["response_status"].native == "successful":
            basics.append(response["response_bytes"]["response"].parsed)
    if not basics and not crls:
        return token
    values: dict[str, Any] = {}
    if crls:
        values["crl_vals"] = [asn1_crl.CertificateList.load(d) for d in crls]
    if basics:
        values["ocsp_vals"] = basics
    attr = cms.CMSAttribute({"type": "revocation_values", "values": [ers.RevocationValues(values)]})
    info = cms.ContentInfo.load(token)
    signer_info = info["content"]["signer_infos"][0]
    kept = [a for a in (signer_info["unsigned_attrs"] or []) if a["type"].dotted != REVOCATION_VALUES]
    signer_info["unsigned_attrs"] = cms.CMSAttributes([*kept, attr])
    return bytes(info.dump(force=False))


def revocation_values(token: bytes) -> tuple[list[asn1_ocsp.OCSPResponse], list[asn1_crl.CertificateList]]:
    """The OCSP responses and CRLs a token keeps for its TSA (:func:`with_revocation_values`)."""
    return ers.kept_revocation(cms.ContentInfo.load(token)["content"])


def augmenting(stamper: DigestStamper, *, session: Any = None,
               on_error: Callable[[Exception], None] | None = None) -> DigestStamper:
    """A stamper whose every token carries its TSA's revocation data (best effort, see the module)."""
    async def stamp(digest: bytes, alg: str) -> bytes:
        token = await stamper(digest, alg)
        try:
            ocsps, crls = await fetch_tsa_revocation(token, session=session)
            return with_revocation_values(token, ocsps, crls)
        except Exception as exc:  # noqa: BLE001 - the token stands without it; the verifier says so
            if on_error is not None:
                on_error(exc)
            return token
    return stamp

