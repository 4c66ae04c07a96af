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

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.admission import AdmissionIndex
from gateway.core.agency import (
    CERT_USAGES,
    KINDS,
    ROUTE_KINDS,
    ROUTE_TARGET,
    Agency,
    AgencyCertificate,
    Route,
    token_digest,
)
from gateway.core.directory_parse import agency_from_dict, check_links, read_directory_file
from gateway.core.errors import ConfigError

__all__ = ["CERT_USAGES", "KINDS", "ROUTE_KINDS", "ROUTE_TARGET", "Agency", "AgencyCertificate", "Directory", "Route",
           "agency_from_dict", "check_links", "read_directory_file", "token_digest"]


@dataclass(frozen=True)
class _Snapshot:
    agencies: Mapping[str, Agency]
    by_token: Mapping[str, str]
    by_fingerprint: Mapping[str, str]
    pins: Mapping[str, frozenset[str]]
    version: int
    served: Mapping[str, tuple[str, ...]]
    """hub -> the agencies it serves through a ``via`` route (itself first)."""
    admission: AdmissionIndex
    """URL keys and source networks of the e-CMS admission modes (active agencies only)."""

    @classmethod
    def of(cls, agencies: Mapping[str, Agency], version: int) -> _Snapshot:
        served: dict[str, list[str]] = {}
        for a in sorted(agencies.values(), key=lambda a: a.code):
            if a.via is not None:
                served.setdefault(a.via, [a.via]).append(a.code)
        return cls(dict(agencies), {d: a.code for a in agencies.values() for d in a.token_sha256},
                   {f: a.code for a in agencies.values() for f in a.pinned},
                   {a.code: frozenset(a.pinned) for a in agencies.values() if a.pinned},
                   version, {k: tuple(v) for k, v in served.items()},
                   AdmissionIndex.of((a.code, a.ecms_admission) for a in agencies.values()
                                     if a.ecms_admission is not None and a.active))


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

    @property
    def admission(self) -> AdmissionIndex:
        """The e-CMS admission look-ups (URL key, source network) of the snapshot in force."""
        return self._snap.admission

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
