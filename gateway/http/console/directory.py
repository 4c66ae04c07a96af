"""Console pages of the agency directory: search, one agency with its history, and an admin's edit form."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.directory import KINDS, ROUTE_KINDS, ROUTE_TARGET, agency_from_dict
from gateway.core.directory_search import search
from gateway.core.errors import ConfigError, NotFound
from gateway.http import appstate, params
from gateway.http.console.views import STAFF, Page, _form, need
from gateway.storage import directory as store
from gateway.storage.users import Role


@aiohttp_jinja2.template("directory.html")
async def directory_page(request: web.Request) -> Page:
    """Operator, auditor, admin. The agency directory (ทำเนียบหน่วยงาน): search by name, code, kind, province."""
    user = await need(request, *STAFF)
    q = request.query
    text = (params.optional(q, "q", "text") or "").strip()
    kind = params.optional(q, "kind", "enum")
    if kind is not None and kind not in KINDS:
        raise params.invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    province = params.optional(q, "province", "province")
    directory = request.app[keys.DIRECTORY]
    agencies = search(directory, q=text or None, kind=kind, province=province, limit=500)
    return {"agencies": agencies, "shown": len(agencies), "total": len(directory), "q": text, "kind": kind or "",
            "province": province or "", "kinds": KINDS, "version": directory.version, "user": user}


@aiohttp_jinja2.template("agency.html")
async def agency_page(request: web.Request) -> Page:
    """Operator, auditor, admin. One agency: its entry, its route (through a hub, if so), its history; admins edit."""
    user = await need(request, *STAFF)
    code = params.required(request.match_info, "code", "agency")
    directory = request.app[keys.DIRECTORY]
    agency = directory.get(code)
    history = await store.history(request.app[keys.POOL], code, limit=100)
    if agency is None and not history:
        raise NotFound(f"agency {code} is not in the directory", code="agency.not_found", field="code")
    served = directory.route_of(code)
    return {"a": agency, "code": code, "history": history, "kinds": KINDS, "route_kinds": ROUTE_KINDS,
            "hub": directory.get(served[0]) if served and served[0] != code else None,
            "target": (agency.route.settings.get(ROUTE_TARGET.get(agency.route.kind, ""), "") if agency else ""),
            "can_edit": user.role is Role.ADMIN, "version": directory.version, "user": user,
            "error": request.query.get("error", "")[:300]}


def entry_from_form(code: str, form: Any, current: dict[str, Any]) -> dict[str, Any]:
    entry = dict(current)
    entry["code"] = code
    for name, kind in (("name_th", "name"), ("name_en", "name"), ("kind", "enum"), ("parent", "agency"),
                       ("province", "province"), ("district", "text")):
        value = (params.optional(form, name, kind) or "").strip()
        entry[name] = value or None
    route_kind = params.optional(form, "route_kind", "enum") or "pull"
    target = (params.optional(form, "route_target", "text") or "").strip()
    entry["route"] = {"kind": route_kind, **({ROUTE_TARGET[route_kind]: target} if route_kind in ROUTE_TARGET else {})}
    contact = {k: (params.optional(form, f"contact_{k}", "text") or "").strip() for k in ("name", "email", "phone")}
    entry["contact"] = {k: v for k, v in contact.items() if v}
    entry["active"] = form.get("active") == "yes"
    return {k: v for k, v in entry.items() if v is not None}


async def agency_edit(request: web.Request) -> web.Response:
    """Role: admin. Change one agency from the form; a new directory version and an audit event naming the admin."""
    user = await need(request, Role.ADMIN.value)
    form = await _form(request)
    code = params.required(request.match_info, "code", "agency")
    reason = (params.optional(form, "reason", "text") or "").strip() or f"console: {code}"
    pool = request.app[keys.POOL]
    current = (await store.entries(pool)).get(code) or {}
    try:
        entry = agency_from_dict(entry_from_form(code, form, current), "form").to_dict()
        async with pool.acquire() as conn:
            await store.apply(conn, {code: entry}, at=request.app[keys.CLOCK].now(), actor=f"user:{user.username}",
                              reason=reason, only=False)
    except ConfigError as exc:
        raise params.invalid(str(exc).removeprefix("directory: "),
                             str(exc.field or "form").removeprefix("form.")) from None
    await appstate.exchange(request.app).live_directory.reload()
    raise web.HTTPSeeOther(f"/console/directory/{code}")
