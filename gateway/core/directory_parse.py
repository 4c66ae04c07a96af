"""Reading the directory's file form: an agency entry (:func:`agency_from_dict`), the links between
entries (:func:`check_links`) and a directory file (:func:`read_directory_file`).

A bad entry is a :class:`ConfigError` that names the agency and the field, never a failure later.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gateway.core.admission import admission_from_dict, zoned_time
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
from gateway.core.errors import ConfigError

_CODE = re.compile(r"^(?:[0-9]{5}|[0-9]{10})$")
_PROVINCE = re.compile(r"^[0-9]{2}$")
_DISTRICT = re.compile(r"^[0-9]{4}$")


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
        ecms_admission=(admission_from_dict(raw["ecms_admission"], f"{where}.ecms_admission", code)
                        if raw.get("ecms_admission") is not None else None),
    )


_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


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
    return AgencyCertificate(sha256=sha, usage=usage, not_before=zoned_time(raw, "not_before", where, code),
                             not_after=zoned_time(raw, "not_after", where, code),
                             retired_at=zoned_time(raw, "retired_at", where, code),
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
