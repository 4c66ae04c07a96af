"""The agency directory (ทำเนียบหน่วยงาน): who exists, how each is reached, who may act for it.

Each agency has a code (5 or 10 digits; the ministry is the first two digits),
Thai and English names, a kind, a parent, province and district codes (geothai's
2- and 4-digit codes), a delivery route (the adapter kind and its settings, or
``via`` a named hub whose route serves it) and credentials: development bearer
tokens are kept only as SHA-256 digests, certificate bindings as fingerprints or
the agency code carried in the certificate subject.

The directory lives in PostgreSQL (``gateway.storage.directory``), seeded from a
JSON file on first start (``config/directory.example.json`` is the demo). Every
component holds the one :class:`Directory` object of its process; a change is
applied by :meth:`Directory.replace`, which swaps the whole snapshot in one
assignment, so a reader sees the old directory or the new one, never half of each.

A bad directory is a start-up error with a message that names the agency and
the field (operators' top complaint about access points is vague configuration
errors), never a failure on the first letter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gateway.core.errors import ConfigError

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
_CODE = re.compile(r"^(?:[0-9]{5}|[0-9]{10})$")
_PROVINCE = re.compile(r"^[0-9]{2}$")
_DISTRICT = re.compile(r"^[0-9]{4}$")


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
        if self.generated:
            out["generated"] = True
        if not self.active:
            out["active"] = False
        return out


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Snapshot:
    agencies: Mapping[str, Agency]
    by_token: Mapping[str, str]
    by_fingerprint: Mapping[str, str]
    pins: Mapping[str, frozenset[str]]
    version: int
    served: Mapping[str, tuple[str, ...]]
    """hub -> the agencies it serves through a ``via`` route (itself first)."""

    @classmethod
    def of(cls, agencies: Mapping[str, Agency], version: int) -> _Snapshot:
        served: dict[str, list[str]] = {}
        for a in sorted(agencies.values(), key=lambda a: a.code):
            if a.via is not None:
                served.setdefault(a.via, [a.via]).append(a.code)
        return cls(dict(agencies), {d: a.code for a in agencies.values() for d in a.token_sha256},
                   {f: a.code for a in agencies.values() for f in a.pinned},
                   {a.code: frozenset(a.pinned) for a in agencies.values() if a.pinned},
                   version, {k: tuple(v) for k, v in served.items()})


class _Pins(Mapping[str, frozenset[str]]):
    """The certificate pins of whatever snapshot is current (for pki.trust.AgencyBinding)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def __getitem__(self, code: str) -> frozenset[str]:
        return self._directory._snap.pins[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._directory._snap.pins)

    def __len__(self) -> int:
        return len(self._directory._snap.pins)


class Directory:
    """The agencies as one snapshot; :meth:`replace` swaps in another one whole."""

    def __init__(self, agencies: Mapping[str, Agency], *, version: int = 0) -> None:
        self._snap = _Snapshot.of(agencies, version)
        self._listeners: list[Callable[[Directory], None]] = []

    def __contains__(self, code: object) -> bool:
        return code in self._snap.agencies

    def __len__(self) -> int:
        return len(self._snap.agencies)

    @property
    def version(self) -> int:
        """The directory version in force (0: loaded from a file, not from the database)."""
        return self._snap.version

    def get(self, code: str) -> Agency | None:
        return self._snap.agencies.get(code)

    def __getitem__(self, code: str) -> Agency:
        return self._snap.agencies[code]

    def all(self) -> list[Agency]:
        return sorted(self._snap.agencies.values(), key=lambda a: a.code)

    def ministries(self) -> list[Agency]:
        return [a for a in self.all() if a.parent is None]

    def route_of(self, code: str) -> tuple[str, Route] | None:
        """The agency whose route serves ``code`` and that route (a ``via`` route resolved to its hub)."""
        agency = self._snap.agencies.get(code)
        if agency is None:
            return None
        hub = agency.via
        if hub is None:
            return code, agency.route
        target = self._snap.agencies.get(hub)
        return (hub, target.route) if target is not None else None

    def served_by(self, code: str) -> tuple[str, ...]:
        """The agencies whose letters ``code`` receives: itself and those routed ``via`` it (a hub's inbox)."""
        return self._snap.served.get(code, (code,))

    def pins(self) -> Mapping[str, frozenset[str]]:
        """A live view of the certificate pins: always those of the current snapshot."""
        return _Pins(self)

    def replace(self, other: Directory) -> None:
        """Put ``other``'s agencies and version in force, in one assignment; then tell the listeners."""
        self._snap = other._snap
        for fn in list(self._listeners):
            fn(self)

    def on_change(self, fn: Callable[[Directory], None]) -> None:
        self._listeners.append(fn)

    def digest(self) -> str:
        """SHA-256 of the directory's content (order-independent), for the audit log."""
        rows = [a.to_dict() for a in self.all()]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True,
                                         default=str).encode()).hexdigest()

    def agency_for_token(self, token: str) -> str | None:
        """The agency a bearer token authenticates.

        A dict look-up by the token's SHA-256, not a scan: with thousands of agencies a
        constant-time comparison against each would cost milliseconds per request, and a
        timing difference in looking up a digest tells an attacker nothing usable (steering
        the digest's prefix would need SHA-256 preimages)."""
        return self._snap.by_token.get(token_digest(token))

    def agency_for_fingerprint(self, fingerprint: str) -> str | None:
        return self._snap.by_fingerprint.get(fingerprint.lower().replace(":", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"agencies": [a.to_dict() for a in self.all()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, version: int = 0) -> Directory:
        items = data.get("agencies")
        if not isinstance(items, list):
            raise ConfigError("directory: 'agencies' must be a list", field="agencies")
        agencies: dict[str, Agency] = {}
        for i, raw in enumerate(items):
            agency = agency_from_dict(raw, f"agencies[{i}]")
            if agency.code in agencies:
                raise ConfigError(f"directory: agency {agency.code} appears twice", field=f"agencies[{i}].code")
            agencies[agency.code] = agency
        check_links(agencies)
        return cls(agencies, version=version)

    @classmethod
    def load(cls, path: str | Path) -> Directory:
        return cls.from_dict(read_directory_file(path))


def read_directory_file(path: str | Path) -> Mapping[str, Any]:
    """A directory file's JSON object (agencies, lists); a :class:`ConfigError` says what is wrong with it."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"directory file {p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"directory file {p} is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"directory file {p} is not a JSON object", field="/")
    return data


def _text(raw: Mapping[str, Any], name: str, where: str, code: str, *, required: bool = False,
          pattern: re.Pattern[str] | None = None, limit: int = 300) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise ConfigError(f"directory: agency {code}: {name} is required", field=f"{where}.{name}")
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value or not value.strip():
        raise ConfigError(f"directory: agency {code}: {name} must be text of at most {limit} characters",
                          field=f"{where}.{name}")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(f"directory: agency {code}: {name} {value!r} is not a valid code", field=f"{where}.{name}")
    return value.strip()


def _storable(value: Any, where: str, depth: int = 0) -> None:
    """Only what PostgreSQL's jsonb holds: no NUL, no lone surrogate, no NaN or infinity, shallow."""
    if depth > 4:
        raise ConfigError(f"directory: {where} is nested too deeply", field=where)
    if isinstance(value, str):
        if "\x00" in value or len(value) > 2000:
            raise ConfigError(f"directory: {where} must be text without NUL, at most 2000 characters", field=where)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"directory: {where} is not valid Unicode text", field=where) from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"directory: {where} must be a finite number", field=where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _storable(k, f"{where}.{k!s:.40}", depth + 1)
            _storable(v, f"{where}.{k!s:.40}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _storable(v, f"{where}[{i}]", depth + 1)


def agency_from_dict(raw: Any, where: str) -> Agency:
    """One agency from its directory-file form; a :class:`ConfigError` names the field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"directory: {where} must be an object", field=where)
    _storable(raw, where)
    code = str(raw.get("code", ""))
    if not _CODE.match(code):
        raise ConfigError(f"directory: {where}.code {code!r} must be 5 or 10 digits", field=f"{where}.code")
    if len(code) == 5 and code.startswith("99"):
        raise ConfigError(f"directory: {where}.code {code}: 5-digit codes 99xxx are reserved for distribution "
                          "lists (their e-CMS pseudo-organization codes)", field=f"{where}.code")
    route_raw = raw.get("route") or {"kind": "pull"}
    if not isinstance(route_raw, dict):
        raise ConfigError(f"directory: agency {code}: route must be an object", field=f"{where}.route")
    kind = route_raw.get("kind")
    if kind not in ROUTE_KINDS:
        raise ConfigError(f"directory: agency {code}: route.kind {kind!r} must be one of {ROUTE_KINDS}",
                          field=f"{where}.route.kind")
    settings = {k: v for k, v in route_raw.items() if k != "kind"}
    needs = ROUTE_TARGET.get(kind)
    if needs and not settings.get(needs):
        raise ConfigError(f"directory: agency {code}: route {kind} needs {needs}", field=f"{where}.route.{needs}")
    if needs == "url":
        try:
            url = urlsplit(str(settings["url"]))
            bad = (url.scheme not in ("http", "https") or not url.hostname or bool(url.username or url.password)
                   or url.port == 0)
        except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
            bad = True
        if bad:
            raise ConfigError(f"directory: agency {code}: route url must be an http(s) URL with a host and no "
                              "user or password in it", field=f"{where}.route.url")
    agency_kind = raw.get("kind") or ("ministry" if raw.get("parent") is None else "department")
    if agency_kind not in KINDS:
        raise ConfigError(f"directory: agency {code}: kind {agency_kind!r} must be one of {tuple(KINDS)}",
                          field=f"{where}.kind")
    tokens = tuple(token_digest(t) for t in raw.get("tokens", ())) + tuple(
        str(d).lower() for d in raw.get("token_sha256", ()))
    contact = raw.get("contact") or {}
    if not isinstance(contact, dict) or not all(isinstance(v, str) and len(v) <= 300 for v in contact.values()):
        raise ConfigError(f"directory: agency {code}: contact must map names to short text", field=f"{where}.contact")
    return Agency(
        code=code, name_th=str(_text(raw, "name_th", where, code, required=True)),
        name_en=str(_text(raw, "name_en", where, code, required=True)),
        route=Route(kind=kind, settings=MappingProxyType(settings)),
        parent=_text(raw, "parent", where, code, pattern=_CODE),
        province=_text(raw, "province", where, code, pattern=_PROVINCE),
        district=_text(raw, "district", where, code, pattern=_DISTRICT),
        kind=agency_kind, token_sha256=tokens,
        cert_fingerprints=tuple(str(f).lower().replace(":", "") for f in raw.get("cert_fingerprints", ())),
        active=bool(raw.get("active", True)), generated=bool(raw.get("generated", False)),
        contact=MappingProxyType({str(k): v for k, v in contact.items()}),
        certificates=tuple(_certificate(c, f"{where}.certificates[{j}]", code)
                           for j, c in enumerate(raw.get("certificates") or ())),
    )


_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def _instant(raw: Mapping[str, Any], name: str, where: str, code: str) -> dt.datetime | None:
    value = raw.get(name)
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(f"directory: agency {code}: {name} {value!r} must be an ISO 8601 time with a zone",
                          field=f"{where}.{name}")
    return when


def _certificate(raw: Any, where: str, code: str) -> AgencyCertificate:
    if not isinstance(raw, dict):
        raise ConfigError(f"directory: agency {code}: a certificate must be an object", field=where)
    sha = str(raw.get("sha256", "")).lower().replace(":", "")
    if not _FINGERPRINT.match(sha):
        raise ConfigError(f"directory: agency {code}: certificate sha256 must be 64 hex digits",
                          field=f"{where}.sha256")
    usage = tuple(raw.get("usage") or CERT_USAGES)
    if not usage or any(u not in CERT_USAGES for u in usage):
        raise ConfigError(f"directory: agency {code}: certificate usage must be among {CERT_USAGES}",
                          field=f"{where}.usage")
    subject = raw.get("subject", "")
    return AgencyCertificate(sha256=sha, usage=usage, not_before=_instant(raw, "not_before", where, code),
                             not_after=_instant(raw, "not_after", where, code),
                             retired_at=_instant(raw, "retired_at", where, code),
                             subject=subject if isinstance(subject, str) else "")


def check_links(agencies: Mapping[str, Agency]) -> None:
    """Every parent and every ``via`` hub exists; a hub is served by its own route (one hop)."""
    for a in agencies.values():
        if a.parent is not None and a.parent not in agencies:
            raise ConfigError(f"directory: agency {a.code}: parent {a.parent} is not in the directory",
                              field="parent")
        hub = a.via
        if hub is not None:
            target = agencies.get(hub)
            if target is None:
                raise ConfigError(f"directory: agency {a.code}: route via {hub}, which is not in the directory",
                                  field="route.agency")
            if target.via is not None:
                raise ConfigError(f"directory: agency {a.code}: route via {hub}, which is itself served via "
                                  f"{target.via}; name the hub that has a route of its own", field="route.agency")
