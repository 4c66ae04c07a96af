"""Staff API: auditors read (``/v1/audit/...``), operators act (``/v1/deliveries/...``).

Auditors and admins read everything and change nothing; operators and admins
requeue dead letters and read queues. Listings use keyset pagination: each
answer carries ``next`` (an opaque cursor) when there is more. Exports stream
page by page (``StreamResponse``), so memory stays bounded however many rows.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, TypedDict

from aiohttp import web

from gateway.audit import live
from gateway.audit.evidence import build_bundle
from gateway.core import appkeys as keys
from gateway.core.errors import NotFound
from gateway.http import appstate, auth, params
from gateway.storage import search

Query = Mapping[str, str]
"""A request's query (``request.query``)."""
Row = Mapping[str, Any]
"""A row as the search queries return it (column -> value)."""
READERS = (auth.AUDITOR, auth.ADMIN)
OPERATORS = (auth.OPERATOR, auth.ADMIN)
EXPORT_PAGE = 2000


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def _limit(q: Query, default: int = 100, top: int = 1000) -> int:
    return params.limit(q, default=default, top=top)


def _filter(q: Query) -> search.LetterFilter:
    return params.letter_filter(q, agency=params.optional(q, "agency", "agency"),
                                since=params.timestamp(q.get("since"), "since"),
                                until=params.timestamp(q.get("until"), "until"))


def _next(row: Row) -> str:
    return base64.urlsafe_b64encode(f"{row['accepted_at'].isoformat()}|{row['pk']}".encode()).decode()


LETTER_FIELDS = ("pk", "sender", "message_id", "message_type", "letter_number", "letter_date", "subject",
                 "accepted_at", "speed", "secrecy", "deliveries")


def _letter(row: Row) -> dict[str, Any]:
    out = {k: row[k] for k in LETTER_FIELDS}
    for k in ("letter_date", "accepted_at"):
        out[k] = out[k].isoformat() if out[k] else None
    return out


async def audit_letters(request: web.Request) -> web.Response:
    """Role: auditor, admin. Letters by agency, time, number, subject (substring, Thai), status; keyset pages."""
    await auth.require(request, *READERS)
    q = request.query
    limit = _limit(q)
    rows = await search.letters(request.app[keys.POOL], _filter(q), after=params.letter_cursor(q.get("after")),
                               limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return _json({"items": [_letter(r) for r in rows], "next": _next(rows[-1]) if more else None})


async def _start_export(request: web.Request, fmt: str, name: str, fields: Sequence[str]) -> web.StreamResponse:
    """Begin a streamed export; for CSV, a BOM (so spreadsheet programs read the Thai as UTF-8) and the header.

    Called once every parameter is checked and the first page is read: a refusal (400) or a
    database error can then still answer as itself, never as a 200 cut short."""
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}.{"csv" if fmt == "csv" else "jsonl"}"'})
    await resp.prepare(request)
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerow(fields)
        await resp.write(("\ufeff" + buf.getvalue()).encode("utf-8"))
    return resp


async def audit_letters_export(request: web.Request) -> web.StreamResponse:
    """Role: auditor, admin. Every matching letter, streamed as CSV (``format=csv``) or JSON Lines."""
    await auth.require(request, *READERS)
    q = request.query
    f = _filter(q)  # every parameter is checked before the answer starts: a 400 cannot follow a 200
    after = params.letter_cursor(q.get("after"))
    fmt = params.export_format(q)
    pool = request.app[keys.POOL]
    rows = await search.letters(pool, f, after=after, limit=EXPORT_PAGE)  # the first page, before the 200
    resp = await _start_export(request, fmt, "letters", LETTER_FIELDS)
    while rows:
        buf = io.StringIO()
        if fmt == "csv":
            w = csv.writer(buf)
            for r in rows:
                d = _letter(r)
                d["deliveries"] = " ".join(f"{x['recipient']}:{x['status']}" for x in d["deliveries"])
                w.writerow([d[k] for k in LETTER_FIELDS])
        else:
            for r in rows:
                buf.write(json.dumps(_letter(r), ensure_ascii=False) + "\n")
        await resp.write(buf.getvalue().encode("utf-8"))
        if len(rows) < EXPORT_PAGE:
            break
        rows = await search.letters(pool, f, after=(rows[-1]["accepted_at"], rows[-1]["pk"]), limit=EXPORT_PAGE)
    await resp.write_eof()
    return resp


class EventFilter(TypedDict):
    """The filter of :func:`gateway.storage.search.events`, from a query."""

    kind: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    message_pk: int | None
    agency: str | None
    number: str | None
    subject: str | None


def _event_filter(q: Query) -> EventFilter:
    return {"kind": params.optional(q, "kind", "kind"), "since": params.timestamp(q.get("since"), "since"),
            "until": params.timestamp(q.get("until"), "until"), "message_pk": params.bigint(q.get("letter"), "letter"),
            "agency": params.optional(q, "agency", "agency"), "number": params.optional(q, "number", "text"),
            "subject": params.optional(q, "subject", "text")}


def _event(r: Row) -> dict[str, Any]:
    return {**r, "at": r["at"].isoformat(), "delivery_id": str(r["delivery_id"]) if r["delivery_id"] else None}


EVENT_FIELDS = ("seq", "at", "actor", "kind", "message_pk", "delivery_id", "details")


async def audit_events(request: web.Request) -> web.Response:
    """Role: auditor, admin. Audit events by kind, time, letter, agency, letter number, subject;
    keyset pages newest first (``before`` = seq)."""
    await auth.require(request, *READERS)
    q = request.query
    limit = _limit(q)
    rows = await search.events(request.app[keys.POOL], **_event_filter(q),
                               before_seq=params.bigint(q.get("before"), "before"), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return _json({"items": [_event(r) for r in rows], "next": rows[-1]["seq"] if more else None})


async def audit_events_export(request: web.Request) -> web.StreamResponse:
    """Role: auditor, admin. Every matching event, newest first, streamed as CSV (``format=csv``) or JSON Lines."""
    await auth.require(request, *READERS)
    q = request.query
    f = _event_filter(q)  # checked before the answer starts
    before = params.bigint(q.get("before"), "before")
    fmt = params.export_format(q)
    pool = request.app[keys.POOL]
    rows = await search.events(pool, **f, before_seq=before, limit=EXPORT_PAGE)  # the first page, before the 200
    resp = await _start_export(request, fmt, "events", EVENT_FIELDS)
    while True:
        buf = io.StringIO()
        w = csv.writer(buf)
        for r in rows:
            e = _event(r)
            if fmt == "csv":
                w.writerow([json.dumps(e[k], ensure_ascii=False, sort_keys=True) if k == "details" else e[k]
                            for k in EVENT_FIELDS])
            else:
                buf.write(json.dumps(e, ensure_ascii=False, default=str) + "\n")
        await resp.write(buf.getvalue().encode("utf-8"))
        if len(rows) < EXPORT_PAGE:
            break
        rows = await search.events(pool, **f, before_seq=rows[-1]["seq"], limit=EXPORT_PAGE)
    await resp.write_eof()
    return resp


async def audit_status(request: web.Request) -> web.Response:
    """Role: auditor, admin, operator. The chain head, sealing lag and last checkpoint."""
    await auth.require(request, auth.AUDITOR, auth.ADMIN, auth.OPERATOR)
    st = asdict(await live.status(request.app[keys.POOL]))
    return _json({k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in st.items()})


async def evidence(request: web.Request) -> web.Response:
    """Role: auditor, admin. Evidence bundle of one letter (ZIP), verifiable offline with ``gateway audit verify``."""
    await auth.require(request, *READERS)
    signer = request.app.get(keys.AUDIT_SIGNER)
    pk = params.parse_bigint(request.match_info["pk"], "pk")
    data = await build_bundle(request.app[keys.POOL], pk,
                              certificate=signer.certificate if signer else None)
    if data is None:
        raise NotFound("no such letter", code="letter.not_found")
    return web.Response(body=data, content_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="evidence-{pk}.zip"'})


async def dead(request: web.Request) -> web.Response:
    """Role: operator, auditor, admin. Dead letters, newest first (keyset: ``after_at`` + ``after_id``)."""
    await auth.require(request, auth.OPERATOR, auth.AUDITOR, auth.ADMIN)
    q = request.query
    after = params.dead_keyset(q.get("after_at"), q.get("after_id"))
    rows = await search.dead_letters(request.app[keys.POOL], after=after, limit=_limit(q))
    return _json({"items": [{**r, "id": str(r["id"]), "created_at": r["created_at"].isoformat()} for r in rows]})


async def requeue(request: web.Request) -> web.Response:
    """Role: operator, admin. Requeue a dead or waiting delivery (audited with the operator's name)."""
    principal = await auth.require(request, *OPERATORS)
    delivery_id = params.path_delivery_id(request.match_info)
    await appstate.exchange(request.app).operators.requeue(delivery_id, actor=principal.subject)
    return _json({"delivery_id": str(delivery_id), "status": "requeued"})


async def queues(request: web.Request) -> web.Response:
    """Role: operator, auditor, admin. Queue depth and backoff per destination."""
    await auth.require(request, auth.OPERATOR, auth.AUDITOR, auth.ADMIN)
    rows = await search.queue_by_destination(request.app[keys.POOL])
    return _json({"items": [{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()}
                            for r in rows]})
