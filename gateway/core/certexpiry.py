"""Which agency certificates expire soon (ใบรับรองที่ใกล้หมดอายุ), registering one from its PEM, and
which registered TLS client certificates an agency may log in with.

A pure reading of the directory at an instant: no I/O, the time is passed in.
The metrics job (:mod:`gateway.exchange.certificates`), the console page and a
CLI or API that registers certificates all use these functions.

Buckets. A certificate is *expired* when its ``not_after`` is at or before
``now``; otherwise it is *within* 7, 30 or 60 days when ``not_after - now`` is at
most that long. The ``within`` counts are cumulative, as the label reads: a
certificate 5 days from expiry counts in 7d, 30d and 60d; expired ones count only
as expired. Each entry also names its tightest bucket (``bucket``), which is what
a person reads on the page.

Only certificates the gateway accepts now are reported: those pinned for an
active agency (:attr:`Agency.pinned`: a retired certificate is refused whatever its
dates, so its expiry is nobody's concern). Certificates registered without a
``not_after`` (bare fingerprints) cannot be judged and are left out. An entry whose
agency already has an accepted successor covering the same usages beyond the 60-day
horizon is marked ``replaced``: the rotation is done, only retiring the old
certificate is left.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.core.directory import CERT_USAGES, Agency, AgencyCertificate, Directory
from gateway.core.errors import GatewayError
from pki.errors import AgencyError
from pki.trust import agency_of

#: Windows before expiry, tightest first, as (label, length).
WINDOWS: tuple[tuple[str, dt.timedelta], ...] = (
    ("7d", dt.timedelta(days=7)), ("30d", dt.timedelta(days=30)), ("60d", dt.timedelta(days=60)))
#: Every bucket label, in the order people read them (most urgent first).
BUCKETS: tuple[str, ...] = ("expired", *(label for label, _ in WINDOWS))
HORIZON = WINDOWS[-1][1]
#: Thai (then English) label of each bucket, for pages and log readers.
BUCKET_LABELS: Mapping[str, str] = MappingProxyType({
    "expired": "หมดอายุแล้ว (expired)", "7d": "ภายใน 7 วัน (within 7 days)",
    "30d": "ภายใน 30 วัน (within 30 days)", "60d": "ภายใน 60 วัน (within 60 days)"})
_DAY = dt.timedelta(days=1)


class CertificateEntryError(GatewayError):
    """A certificate offered for registration cannot be read or does not fit.

    The code is ``request.invalid`` (a bad field of what was sent, as for any other bad parameter) and
    ``field`` says which: ``certificate`` (not a PEM certificate, or one naming another agency) or
    ``usage``. The ``certificate.*`` codes stay those of a signer refused while it signs."""

    code = "request.invalid"


@dataclass(frozen=True)
class ExpiringCertificate:
    """One accepted certificate that is expired or expires within the horizon."""

    agency: str
    """Agency code."""
    name_th: str
    """Thai name of the agency."""
    name_en: str
    """English name of the agency."""
    sha256: str
    """Certificate fingerprint (hex)."""
    usage: tuple[str, ...]
    """``signing`` and/or ``tls``."""
    not_after: dt.datetime
    """End of validity."""
    days_left: int
    """Whole days until ``not_after``, negative once expired: whole days since then (both rounded toward
    zero, so a certificate that ends in 6 days 23 hours has 6 left, one that ended 2 days and a second
    ago has -2)."""
    bucket: str
    """Tightest bucket: ``expired``, ``7d``, ``30d`` or ``60d``."""
    replaced: bool
    """The agency already has an accepted certificate for the same usages valid beyond the horizon."""
    subject: str = ""
    """Subject as registered (RFC 4514), if known."""

    def to_dict(self) -> dict[str, Any]:
        return {"agency": self.agency, "name_th": self.name_th, "sha256": self.sha256, "usage": list(self.usage),
                "not_after": self.not_after.isoformat(), "days_left": self.days_left, "bucket": self.bucket,
                "replaced": self.replaced}


@dataclass(frozen=True)
class ExpiryReport:
    """Certificates expiring or expired at :attr:`at`, soonest first, with counts per bucket."""

    at: dt.datetime
    """The instant the directory was read at."""
    entries: tuple[ExpiringCertificate, ...]
    """Soonest ``not_after`` first (the longest expired at the top), then agency code."""
    counts: Mapping[str, int]
    """Per bucket label: ``expired``; ``7d``, ``30d``, ``60d`` cumulative (see the module docstring)."""
    directory_version: int
    """Version of the directory snapshot read."""

    def in_bucket(self, bucket: str) -> tuple[ExpiringCertificate, ...]:
        """The entries whose tightest bucket is ``bucket``."""
        return tuple(e for e in self.entries if e.bucket == bucket)

    def within(self, label: str) -> tuple[ExpiringCertificate, ...]:
        """The entries counted under ``label`` (``expired``; ``7d``/``30d``/``60d`` cumulative, as the gauge)."""
        if label == "expired":
            return self.in_bucket("expired")
        window = dict(WINDOWS)[label]
        return tuple(e for e in self.entries if e.bucket != "expired" and e.not_after - self.at <= window)

    def agencies(self, bucket: str | None = None) -> list[str]:
        """Codes of the agencies affected (in ``bucket`` only, if given), soonest first, each once."""
        return list(dict.fromkeys(e.agency for e in self.entries if bucket is None or e.bucket == bucket))

    def soonest(self, n: int = 5) -> list[dict[str, Any]]:
        """The first ``n`` entries in a short form (for the log line)."""
        return [{"agency": e.agency, "name_th": e.name_th, "days_left": e.days_left, "usage": list(e.usage),
                 "sha256": e.sha256[:16], "not_after": e.not_after.isoformat()} for e in self.entries[:n]]


def bucket_of(not_after: dt.datetime, now: dt.datetime) -> str | None:
    """The tightest bucket of a certificate ending at ``not_after``; None beyond the horizon."""
    left = not_after - now
    if left <= dt.timedelta(0):
        return "expired"
    return next((label for label, window in WINDOWS if left <= window), None)


def _replaced(cert: AgencyCertificate, others: Iterable[AgencyCertificate], now: dt.datetime) -> bool:
    horizon = now + HORIZON
    return any(o.sha256 != cert.sha256 and set(cert.usage) <= set(o.usage)
               and (o.not_after is None or o.not_after > horizon)
               and (o.not_before is None or cert.not_after is None or o.not_before <= cert.not_after)
               for o in others)


def _entries(agency: Agency, now: dt.datetime) -> Iterable[ExpiringCertificate]:
    # the certificates Agency.pinned admits: unretired, or pinned by fingerprint besides
    accepted = [c for c in agency.certificates if c.retired_at is None or c.sha256 in agency.cert_fingerprints]
    horizon = now + HORIZON
    for cert in accepted:
        if cert.not_after is None or cert.not_after > horizon:
            continue
        bucket = bucket_of(cert.not_after, now)
        if bucket is None:
            continue
        yield ExpiringCertificate(
            agency=agency.code, name_th=agency.name_th, name_en=agency.name_en, sha256=cert.sha256,
            usage=cert.usage, not_after=cert.not_after,
            days_left=math.trunc((cert.not_after - now) / _DAY), bucket=bucket,
            replaced=_replaced(cert, accepted, now), subject=cert.subject)


def expiring(directory: Directory, now: dt.datetime) -> ExpiryReport:
    """Every accepted certificate of an active agency that is expired or expires within 60 days of ``now``."""
    version = directory.version  # read before the agencies: a report never claims a newer version than it read
    entries = sorted((e for a in directory.all() if a.active and a.certificates for e in _entries(a, now)),
                     key=lambda e: (e.not_after, e.agency, e.sha256))
    counts = dict.fromkeys(BUCKETS, 0)
    for e in entries:
        if e.bucket == "expired":
            counts["expired"] += 1
            continue
        for label, window in WINDOWS:
            if e.not_after - now <= window:
                counts[label] += 1
    return ExpiryReport(at=now, entries=tuple(entries), counts=MappingProxyType(counts),
                        directory_version=version)


def certificate_entry(pem: bytes, usage: str | Iterable[str] = CERT_USAGES, *,
                      agency: str | None = None) -> AgencyCertificate:
    """The directory entry for a certificate given as PEM (the first certificate, if a chain follows).

    Fingerprint, validity and subject are read from the certificate itself, never typed in by hand.
    ``usage`` is ``signing``, ``tls`` or both. With ``agency``, the certificate must name that agency
    in its subject (``organizationIdentifier GOVTH-<code>``), as :class:`pki.trust.AgencyBinding`
    will demand when it signs. Raises :class:`CertificateEntryError` naming the field at fault.
    """
    usages = (usage,) if isinstance(usage, str) else tuple(usage)
    if not usages or any(u not in CERT_USAGES for u in usages) or len(set(usages)) != len(usages):
        raise CertificateEntryError(f"usage must be one or both of {', '.join(CERT_USAGES)}",
                                    field="usage")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except (ValueError, TypeError):
        certs = []
    if not certs:
        raise CertificateEntryError("not a PEM certificate (-----BEGIN CERTIFICATE-----)", field="certificate")
    cert = certs[0]
    if agency is not None:
        named = agency_of(cert)
        if named != agency:
            raise CertificateEntryError(f"the certificate names agency {named or 'none'}, not {agency} "
                                        "(organizationIdentifier GOVTH-<code>)",
                                        field="certificate")
    return AgencyCertificate(sha256=cert.fingerprint(hashes.SHA256()).hex(), usage=usages,
                             not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                             subject=cert.subject.rfc4514_string())


def check_tls_client(agency: Agency, sha256: str) -> None:
    """Raise ``certificate.wrong_agency`` unless a TLS client certificate may authenticate ``agency``.

    An agency that registers TLS certificates (``usage`` containing ``tls``) logs in only with one of
    them that is not retired (or one pinned in ``cert_fingerprints``): during a rotation old and new
    both work, after retiring the old one only the new. An agency that registers none is bound, as
    before, by the code in the certificate's subject alone (checked by the caller). Validity and
    revocation are the trust store's, checked before this.
    """
    tls = [c for c in agency.certificates if "tls" in c.usage]
    if not tls or sha256 in agency.cert_fingerprints:
        return
    if any(c.sha256 == sha256 and c.retired_at is None for c in tls):
        return
    retired = any(c.sha256 == sha256 for c in tls)
    raise AgencyError(f"this TLS client certificate {'was retired' if retired else 'is not registered'} "
                      f"for agency {agency.code}", field="certificate")
