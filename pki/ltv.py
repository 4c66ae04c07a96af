"""Long-term validation material: what a signature's validation relied on, kept as it was.

A signature checked today must still be provable in 2040, after its certificates expired, a CA was
revoked and the responders are gone. So at acceptance the gateway keeps, for every certificate it
validated (the author's XML signature, the main PDF's PAdES signatures, an office's signed
acknowledgement), the full path, every OCSP answer and CRL the validation used (those covering the
OCSP responder's own certificate included: pyHanko fetches them into the same context), the facts
and the bottom line, and the trust-anchor snapshot in force (ETSI's B-LT material).

**Content addressed.** Each item (a certificate, an OCSP answer, a CRL, a report, a trust snapshot)
is named by the SHA-256 of its bytes and stored once however many letters rely on it: thousands of
letters signed with one agency key within one OCSP period share every item except their report, and
the report itself is shared while the trust store's cached result is reused. :class:`Record` is one
letter's set: ``items`` (sha256 hex -> (kind, bytes)) and the ``report`` naming them.

**Capture without plumbing.** :func:`capturing` sets a context variable that
:meth:`pki.trust.TrustStore.validate_signer`, :meth:`~pki.trust.TrustStore.validation_context` and
:func:`pki.pdf.validate_pdf` (each PAdES signer as a ``ValidatedCert`` of role ``pdf``: its path, OCSP
answers and CRLs) append to, so what intake validated is gathered wherever in the verifier it happened;
:func:`tolerating_unknown_revocation` lets hard-fail answer ``revocation="pending"`` instead of
refusing (the validation-pending state; the gateway re-checks later).

**A look-up per letter.** Letters signed with one key within one OCSP period give equal captures:
:class:`RecordCache` keeps the record of each distinct capture (its certificates by identity, held
so that no other object can take their ``id``; its OCSP answers, CRLs, facts and the rest by value,
each with its type) and hands it back instead of re-encoding, re-hashing and re-serialising the same
path for every letter (96 µs per letter, measured, to about 3).

The report is canonical JSON (sorted keys, no spaces): the same facts give the same bytes, hence
the same name, and the audit chain records that name (``validation_sha256``), so the signed chain
vouches for the report and the report for every item.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import ValidationContext

from pki.trust import CAPTURE, TOLERATE_UNKNOWN, ValidatedCert

__all__ = ["REPORT_FORMAT", "TRUST_FORMAT", "Capture", "Record", "RecordCache", "capturing", "canonical",
           "record_of", "sha256_hex", "trust_snapshot", "tolerating_unknown_revocation"]

REPORT_FORMAT = "saraban-validation/1"
TRUST_FORMAT = "saraban-trust-snapshot/1"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(obj: Any) -> bytes:
    """Canonical JSON: one byte string per value (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class Capture:
    """What the trust store validated while :func:`capturing` was active, in order."""

    validated: list[ValidatedCert] = field(default_factory=list)
    contexts: list[ValidationContext] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """Some certificate's revocation could not be established (validation-pending)."""
        return any(v.revocation == "pending" for v in self.validated)

    @property
    def empty(self) -> bool:
        return not self.validated and not self.contexts


@contextlib.contextmanager
def capturing() -> Iterator[Capture]:
    """Collect this task's validations (see the module docstring)."""
    found: list[Any] = []
    token = CAPTURE.set(found)
    cap = Capture()
    try:
        yield cap
    finally:
        CAPTURE.reset(token)
        for item in found:
            (cap.validated if isinstance(item, ValidatedCert) else cap.contexts).append(item)


@contextlib.contextmanager
def tolerating_unknown_revocation() -> Iterator[None]:
    token = TOLERATE_UNKNOWN.set(True)
    try:
        yield
    finally:
        TOLERATE_UNKNOWN.reset(token)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Record:
    """One letter's validation material: the items and the report that names them."""

    #: sha256 hex -> (kind, bytes); kinds: cert, ocsp, crl, report, trust.
    items: Mapping[str, tuple[str, bytes]]
    #: SHA-256 (hex) of the report, itself one of ``items``.
    report_sha256: str
    #: The report as a dict (what ``items[report_sha256]`` holds, decoded).
    report: Mapping[str, Any]


def trust_snapshot(anchors: Sequence[x509.Certificate], intermediates: Sequence[x509.Certificate],
                   ) -> tuple[dict[str, tuple[str, bytes]], str]:
    """Items of a trust-anchor set and the SHA-256 of its snapshot document (its identity)."""
    items: dict[str, tuple[str, bytes]] = {}
    names: dict[str, list[str]] = {"anchors": [], "intermediates": []}
    for role, certs in (("anchors", anchors), ("intermediates", intermediates)):
        for cert in certs:
            der = _der(cert)
            sha = sha256_hex(der)
            items[sha] = ("cert", der)
            names[role].append(sha)
    doc = canonical({"format": TRUST_FORMAT, "anchors": sorted(names["anchors"]),
                     "intermediates": sorted(names["intermediates"])})
    sha = sha256_hex(doc)
    items[sha] = ("trust", doc)
    return items, sha


def _put(items: dict[str, tuple[str, bytes]], kind: str, data: bytes) -> str:
    sha = sha256_hex(data)
    items.setdefault(sha, (kind, data))
    return sha


def record_of(capture: Capture, *, facts: Mapping[str, Any], trust_sha256: str,
              trust_version: int | None, roles: Sequence[str] = ()) -> Record:
    """The material of one acceptance: each validated certificate (``roles[i]`` names the i-th,
    else ``signer``), the revocation data of each other context (a PDF signature's), the facts
    (scalars only) and the bottom line."""
    items: dict[str, tuple[str, bytes]] = {}
    signatures = []
    for i, v in enumerate(capture.validated):
        signatures.append({
            "role": v.role or (roles[i] if i < len(roles) else "signer"),
            "usage": v.usage,
            "path": [_put(items, "cert", _der(c)) for c in v.path],
            "ocsp": sorted({_put(items, "ocsp", d) for d in v.ocsp}),
            "crls": sorted({_put(items, "crl", d) for d in v.crls}),
            "revocation": v.revocation,
            "checked_at": v.checked_at.astimezone(dt.UTC).isoformat(),
            "soft_failures": list(v.soft_failures),
        })
    for ctx in capture.contexts:
        ocsps = sorted({_put(items, "ocsp", r.dump()) for r in ctx.ocsps})
        crls = sorted({_put(items, "crl", c.dump()) for c in ctx.crls})
        if ocsps or crls:
            signatures.append({"role": "pdf", "usage": "document-signing", "path": [], "ocsp": ocsps,
                               "crls": crls, "revocation": "ok", "checked_at": ctx.moment.isoformat(),
                               "soft_failures": []})
    scalar = _scalar_facts(facts)
    pending = any(s["revocation"] == "pending" for s in signatures)
    report = {"format": REPORT_FORMAT, "trust_snapshot": trust_sha256, "trust_version": trust_version,
              "facts": scalar, "signatures": signatures,
              "bottom_line": "pending" if pending else "valid"}
    data = canonical(report)
    sha = _put(items, "report", data)
    return Record(items=items, report_sha256=sha, report=report)


def _scalar_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if isinstance(v, (str, bool, int)) or v is None}


class RecordCache:
    """:func:`record_of` for repeated captures: the record of an equal capture, built once.

    Two captures are equal here when each validated certificate has the same role, usage, path (the
    very same certificate objects: a certificate's hash and equality cost more than the look-up saves,
    so the objects are held by the entry and compared by identity), OCSP answers, CRLs (bytes),
    revocation fact, check time and soft-fail notes, and the facts, trust snapshot and version are
    equal with their types (``True`` is not ``1`` here: they are written differently; a capture with
    an unhashable fact is not cached). A different OCSP answer, a renewed certificate, other facts:
    another key, another record. A capture with
    other validation contexts (a PDF signature's) is not cached. The records handed out are shared:
    read them, never change them."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._records: dict[tuple[Any, ...], tuple[tuple[x509.Certificate, ...], Record]] = {}
        self.hits = 0
        self.misses = 0

    def record(self, capture: Capture, *, facts: Mapping[str, Any], trust_sha256: str,
               trust_version: int | None, roles: Sequence[str] = ()) -> Record:
        """What ``record_of(capture, ...)`` returns (equal items, report and name), from the cache when it can."""
        if capture.contexts:
            return record_of(capture, facts=facts, trust_sha256=trust_sha256, trust_version=trust_version,
                             roles=roles)
        held: list[x509.Certificate] = []
        sigs = []
        for i, v in enumerate(capture.validated):
            held.extend(v.path)
            sigs.append((v.role or (roles[i] if i < len(roles) else "signer"), v.usage,
                         tuple(map(id, v.path)), v.ocsp, v.crls, v.revocation, v.checked_at, v.soft_failures))
        # every fact by value and type (non-scalar ones too: they only make the key stricter)
        key = (trust_sha256, type(trust_version), trust_version, tuple(facts.items()),
               tuple(map(type, facts.values())), tuple(sigs))
        try:
            found = self._records.get(key)
        except TypeError:  # an unhashable fact (a list, say): not cached
            return record_of(capture, facts=facts, trust_sha256=trust_sha256, trust_version=trust_version,
                             roles=roles)
        if found is not None:
            # The entry holds its certificates alive, so no other live object has their ids: equal ids in
            # the key are these very certificates.
            self.hits += 1
            return found[1]
        self.misses += 1
        rec = record_of(capture, facts=facts, trust_sha256=trust_sha256, trust_version=trust_version, roles=roles)
        if len(self._records) >= self.max_entries:
            self._records.clear()
        self._records[key] = (tuple(held), rec)
        return rec
