"""``/v1/directory/...``: the agency directory, searched by anyone who takes part, changed by admins.

An agency sees every agency's names, kind, place and route kind (whom it can write to and how
it will travel); staff also see route settings and contacts. Credentials (token digests,
certificate fingerprints, e-CMS admission: URL key digests and source networks) are shown to admins only. A change (``PUT``) is a new directory
version and an audit event naming the admin, in force in every gateway process within a second.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.directory import KINDS, Agency, agency_from_dict
from gateway.core.directory_search import search
from gateway.core.errors import ConfigError, NotFound
from gateway.http import appstate, auth, params
from gateway.storage import directory as store

STAFF = (auth.OPERATOR, auth.AUDITOR, auth.ADMIN)
EVERYONE = (auth.AGENCY, *STAFF)
#: The largest agency entry a PUT may carry.
MAX_ENTRY_BYTES = 64 * 1024


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def view(a: Agency | dict[str, Any], role: str) -> dict[str, Any]:
    """An agency as ``role`` may see it."""
    entry = a.to_dict() if isinstance(a, Agency) else dict(a)
    route = dict(entry.get("route") or {"kind": "pull"})
    entry["kind_th"] = KINDS.get(str(entry.get("kind")), "")
    if role != auth.ADMIN:
        for key in ("token_sha256", "cert_fingerprints", "certificates", "ecms_admission"):
            entry.pop(key, None)
    if role == auth.AGENCY:
        entry.pop("contact", None)
        entry["route"] = {"kind": route["kind"], **({"agency": route["agency"]} if "agency" in route else {})}
    return entry


def _code(request: web.Request) -> str:
    return params.required(request.match_info, "code", "agency")


async def agencies(request: web.Request) -> web.Response:
    """Role: agency, operator, auditor, admin. Search by Thai or English name or code (``q``), ``kind``, ``province``."""
    principal = await auth.require(request, *EVERYONE)
    q = request.query
    text = params.optional(q, "q", "text")
    kind = params.optional(q, "kind", "enum")
    if kind is not None and kind not in KINDS:
        raise params.invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    province = params.optional(q, "province", "province")
    limit = params.limit(q, default=50, top=500)
    directory = request.app[keys.DIRECTORY]
    found = search(directory, q=text, kind=kind, province=province, limit=limit)
    return _json({"version": directory.version, "items": [view(a, principal.role) for a in found]})


async def agency(request: web.Request) -> web.Response:
    """Role: agency, operator, auditor, admin. One agency, now or at a past directory version (``at``)."""
    principal = await auth.require(request, *EVERYONE)
    code = _code(request)
    at = params.bigint(request.query.get("at"), "at")
    directory = request.app[keys.DIRECTORY]
    if at is None:
        found = directory.get(code)
        if found is None:
            raise NotFound(f"agency {code} is not in the directory", code="agency.not_found", field="code")
        return _json({"version": directory.version, "agency": view(found, principal.role)})
    entry = (await store.entries(request.app[keys.POOL], at=at)).get(code)
    if entry is None:
        raise NotFound(f"agency {code} was not in the directory at version {at}", code="agency.not_found",
                       field="code")
    return _json({"version": at, "agency": view(entry, principal.role)})


async def agency_history(request: web.Request) -> web.Response:
    """Role: operator, auditor, admin. Every change of one agency: version, when, who, why, before and after."""
    principal = await auth.require(request, *STAFF)
    code = _code(request)
    rows = await store.history(request.app[keys.POOL], code, limit=params.limit(request.query, default=100,
                                                                                 top=1000))
    return _json({"code": code, "items": [
        {"version": r["version"], "at": r["at"].isoformat(), "actor": r["actor"], "reason": r["reason"],
         "before": view(r["before"], principal.role) if r["before"] else None,
         "after": view(r["after"], principal.role) if r["after"] else None} for r in rows]})


async def put_agency(request: web.Request) -> web.Response:
    """Role: admin. Add or change one agency (its directory-file entry as JSON); credentials it does not
    name are kept. Answers the new directory version and what changed."""
    principal = await auth.require(request, auth.ADMIN)
    code = _code(request)
    if (request.content_length or 0) > MAX_ENTRY_BYTES:
        raise params.invalid(f"an agency entry is at most {MAX_ENTRY_BYTES} bytes", "body")
    raw = await request.content.read(MAX_ENTRY_BYTES + 1)
    if len(raw) > MAX_ENTRY_BYTES:
        raise params.invalid(f"an agency entry is at most {MAX_ENTRY_BYTES} bytes", "body")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise params.invalid("the body must be a JSON object (UTF-8)", "body") from None
    if not isinstance(body, dict):
        raise params.invalid("the body must be a JSON object", "body")
    reason = body.pop("reason", None)
    if reason is not None:
        reason = params.check(reason, "reason", "text")
    body.setdefault("code", code)
    if body["code"] != code:
        raise params.invalid("the body's code must be the code in the path", "code")
    try:
        entry = agency_from_dict(body, "body").to_dict()
        async with request.app[keys.POOL].acquire() as conn:
            version, changes = await store.apply(conn, {code: entry}, at=request.app[keys.CLOCK].now(),
                                                 actor=principal.subject, reason=reason or f"API: {code}",
                                                 only=False)
    except ConfigError as exc:
        raise params.invalid(str(exc).removeprefix("directory: "), str(exc.field or "body")) from None
    await appstate.exchange(request.app).live_directory.reload()
    return _json({"version": version or request.app[keys.DIRECTORY].version, **changes.summary()})
