"""An agency's directory entry as the gateway holds it: who it is, how it is reached, who may act for it.

The records of :mod:`gateway.core.directory` (the directory as a whole, its look-ups) and of
:mod:`gateway.core.directory_parse` (reading an entry from its file form, with errors that name the
field). Credentials are kept as digests and fingerprints, never as secrets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.core.admission import EcmsAdmission

ROUTE_KINDS = ("push", "pull", "ecms", "folder", "via")
#: The setting each route kind must name: where it goes (a pull route needs none).
ROUTE_TARGET: Mapping[str, str] = MappingProxyType({"push": "url", "ecms": "url", "folder": "path", "via": "agency"})
#: Kinds of agency (ประเภทหน่วยงาน), with their Thai labels.
KINDS: Mapping[str, str] = MappingProxyType({
    "ministry": "กระทรวง",
    "department": "กรม",
    "division": "กอง/สำนัก",
    "provincial_administration": "ศาลากลางจังหวัด",
    "district_office": "ที่ว่าการอำเภอ",
    "ministry_provincial_office": "สำนักงานส่วนภูมิภาคระดับจังหวัด",
    "ministry_district_office": "สำนักงานส่วนภูมิภาคระดับอำเภอ",
    "local_administration": "องค์กรปกครองส่วนท้องถิ่น",
    "school": "โรงเรียน",
    "state_enterprise": "รัฐวิสาหกิจ",
})


@dataclass(frozen=True)
class Route:
    """How deliveries reach an agency."""

    kind: str
    """push (HTTPS POST to ``url``), pull (the agency fetches its inbox), ecms (a legacy
    e-CMS node at ``url``), folder (files dropped in ``path``), via (served through the
    route of the hub agency named in ``agency``, e.g. a district office through its
    provincial hall's inbox)."""
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Adapter settings, e.g. ``url``, ``timeout_s``, ``path``."""


CERT_USAGES = ("signing", "tls")


@dataclass(frozen=True)
class AgencyCertificate:
    """A certificate registered for an agency, with its validity (copied from the certificate)."""

    sha256: str
    """SHA-256 fingerprint (hex, lower case, no colons)."""
    usage: tuple[str, ...] = CERT_USAGES
    """What it is for: ``signing`` (letters, receipts) and/or ``tls`` (client certificate)."""
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    """When the operator retired it (after a rotation): no longer accepted from then on."""
    subject: str = ""

    def accepted(self, now: dt.datetime | None = None) -> bool:
        """Still pinned: not retired (validity itself is judged by the trust store)."""
        return self.retired_at is None or (now is not None and now < self.retired_at)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "usage": list(self.usage)}
        for key in ("not_before", "not_after", "retired_at"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.isoformat()
        if self.subject:
            out["subject"] = self.subject
        return out


@dataclass(frozen=True)
class Agency:
    code: str
    """Agency code: 5 digits (e-CMS: 2 ministry + 3 department) or 10 digits."""
    name_th: str
    """Thai name (ชื่อหน่วยงาน)."""
    name_en: str
    """English name."""
    route: Route
    """Delivery route."""
    parent: str | None = None
    """Code of the parent agency (a department's ministry), if any."""
    province: str | None = None
    """Province code (จังหวัด; geothai's 2 digits, e.g. ``50`` Chiang Mai)."""
    kind: str = "department"
    """One of :data:`KINDS`."""
    district: str | None = None
    """District code (อำเภอ; geothai's 4 digits)."""
    generated: bool = False
    """Invented by the example generator (a code from the reserved range), not an official code."""
    contact: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Who operators call: ``name``, ``email``, ``phone``."""
    certificates: tuple[AgencyCertificate, ...] = ()
    """Registered certificates with validity; during a rotation old and new are both here
    until the old one is retired. Their fingerprints are pinned like ``cert_fingerprints``."""

    @property
    def pinned(self) -> tuple[str, ...]:
        """Signing fingerprints accepted for this agency now: ``cert_fingerprints`` and unretired
        certificates registered for signing (a TLS-only certificate signs nothing)."""
        return tuple(dict.fromkeys([*self.cert_fingerprints, *(c.sha256 for c in self.certificates
                                                               if c.retired_at is None and "signing" in c.usage)]))
    token_sha256: tuple[str, ...] = ()
    """SHA-256 (hex) of the development bearer tokens that authenticate this agency."""
    cert_fingerprints: tuple[str, ...] = ()
    """SHA-256 fingerprints of certificates pinned to this agency (optional; the code in the
    certificate subject also binds)."""
    active: bool = True
    ecms_admission: EcmsAdmission | None = None
    """How its e-CMS client may come in without a credential (URL keys, source networks): admins only see it."""

    @property
    def ministry(self) -> str:
        """The ministry part of the code (first two digits)."""
        return self.code[:2]

    @property
    def via(self) -> str | None:
        """The hub whose route serves this agency, for a ``via`` route."""
        return str(self.route.settings["agency"]) if self.route.kind == "via" else None

    def to_dict(self) -> dict[str, Any]:
        """The agency as a directory-file entry (digests, never tokens)."""
        out: dict[str, Any] = {"code": self.code, "name_th": self.name_th, "name_en": self.name_en,
                               "kind": self.kind, "route": {"kind": self.route.kind, **self.route.settings}}
        for key in ("parent", "province", "district"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.token_sha256:
            out["token_sha256"] = list(self.token_sha256)
        if self.cert_fingerprints:
            out["cert_fingerprints"] = list(self.cert_fingerprints)
        if self.contact:
            out["contact"] = dict(self.contact)
        if self.certificates:
            out["certificates"] = [c.to_dict() for c in self.certificates]
        if self.ecms_admission is not None:
            out["ecms_admission"] = self.ecms_admission.to_dict()
        if self.generated:
            out["generated"] = True
        if not self.active:
            out["active"] = False
        return out


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
