"""The agency directory (ทำเนียบหน่วยงาน): who exists, how each is reached, who may act for it.

Loaded once from a JSON file at start-up (``config/directory.example.json`` is
the demo). Each agency has a code (5 or 10 digits; the ministry is the first two
digits), Thai and English names, a parent, a province, a delivery route (the
adapter kind and its settings) and credentials: development bearer tokens are
kept only as SHA-256 digests, certificate bindings as fingerprints or the
agency code carried in the certificate subject.

A bad directory is a start-up error with a message that names the agency and
the field (operators' top complaint about access points is vague configuration
errors), never a failure on the first letter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.core.errors import ConfigError

ROUTE_KINDS = ("push", "pull", "ecms", "folder")
_CODE = re.compile(r"^(?:[0-9]{5}|[0-9]{10})$")


@dataclass(frozen=True)
class Route:
    """How deliveries reach an agency."""

    kind: str
    """push (HTTPS POST to ``url``), pull (the agency fetches its inbox), ecms (a legacy
    e-CMS node at ``url``), folder (files dropped in ``path``)."""
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Adapter settings, e.g. ``url``, ``timeout_s``, ``path``."""


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
    """Province (จังหวัด) for provincial and district offices."""
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


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Directory:
    """An immutable view of the agencies; replace the whole object to change it."""

    def __init__(self, agencies: Mapping[str, Agency]) -> None:
        self._agencies = dict(agencies)
        self._by_token = {d: a.code for a in self._agencies.values() for d in a.token_sha256}

    def __contains__(self, code: object) -> bool:
        return code in self._agencies

    def __len__(self) -> int:
        return len(self._agencies)

    def get(self, code: str) -> Agency | None:
        return self._agencies.get(code)

    def __getitem__(self, code: str) -> Agency:
        return self._agencies[code]

    def all(self) -> list[Agency]:
        return sorted(self._agencies.values(), key=lambda a: a.code)

    def ministries(self) -> list[Agency]:
        return [a for a in self.all() if a.parent is None]

    def digest(self) -> str:
        """SHA-256 of the directory's content (order-independent), for the audit log."""
        rows = [[a.code, a.name_th, a.name_en, a.parent, a.province, a.route.kind,
                 sorted(a.route.settings.items()), sorted(a.token_sha256), sorted(a.cert_fingerprints),
                 a.active] for a in self.all()]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True,
                                         default=str).encode()).hexdigest()

    def agency_for_token(self, token: str) -> str | None:
        """The agency a bearer token authenticates.

        A dict look-up by the token's SHA-256, not a scan: with thousands of agencies a
        constant-time comparison against each would cost milliseconds per request, and a
        timing difference in looking up a digest tells an attacker nothing usable (steering
        the digest's prefix would need SHA-256 preimages)."""
        return self._by_token.get(token_digest(token))

    def agency_for_fingerprint(self, fingerprint: str) -> str | None:
        fp = fingerprint.lower()
        for a in self._agencies.values():
            if fp in a.cert_fingerprints:
                return a.code
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Directory:
        agencies: dict[str, Agency] = {}
        items = data.get("agencies")
        if not isinstance(items, list):
            raise ConfigError("directory: 'agencies' must be a list", field="agencies")
        for i, raw in enumerate(items):
            where = f"agencies[{i}]"
            if not isinstance(raw, dict):
                raise ConfigError(f"directory: {where} must be an object", field=where)
            code = str(raw.get("code", ""))
            if not _CODE.match(code):
                raise ConfigError(f"directory: {where}.code {code!r} must be 5 or 10 digits",
                                  field=f"{where}.code")
            if code in agencies:
                raise ConfigError(f"directory: agency {code} appears twice", field=f"{where}.code")
            route_raw = raw.get("route") or {"kind": "pull"}
            kind = route_raw.get("kind")
            if kind not in ROUTE_KINDS:
                raise ConfigError(f"directory: agency {code}: route.kind {kind!r} must be one of "
                                  f"{ROUTE_KINDS}", field=f"{where}.route.kind")
            settings = {k: v for k, v in route_raw.items() if k != "kind"}
            if kind in ("push", "ecms") and not settings.get("url"):
                raise ConfigError(f"directory: agency {code}: route {kind} needs a url",
                                  field=f"{where}.route.url")
            if kind == "folder" and not settings.get("path"):
                raise ConfigError(f"directory: agency {code}: route folder needs a path",
                                  field=f"{where}.route.path")
            tokens = tuple(token_digest(t) for t in raw.get("tokens", ())) + tuple(
                str(d).lower() for d in raw.get("token_sha256", ()))
            for name in ("name_th", "name_en"):
                if not raw.get(name):
                    raise ConfigError(f"directory: agency {code}: {name} is required",
                                      field=f"{where}.{name}")
            agencies[code] = Agency(
                code=code, name_th=raw["name_th"], name_en=raw["name_en"],
                route=Route(kind=kind, settings=MappingProxyType(settings)),
                parent=raw.get("parent"), province=raw.get("province"), token_sha256=tokens,
                cert_fingerprints=tuple(str(f).lower().replace(":", "")
                                        for f in raw.get("cert_fingerprints", ())),
                active=bool(raw.get("active", True)),
            )
        for a in agencies.values():
            if a.parent is not None and a.parent not in agencies:
                raise ConfigError(f"directory: agency {a.code}: parent {a.parent} is not in the directory",
                                  field="parent")
        return cls(agencies)

    @classmethod
    def load(cls, path: str | Path) -> Directory:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"directory file {p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"directory file {p} is not valid JSON: {exc}") from None
        return cls.from_dict(data)
