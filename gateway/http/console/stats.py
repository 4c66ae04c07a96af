"""Console statistics pages (สถิติ): volumes, service levels, failures. Server-rendered, no JavaScript;
charts are SVG drawn by the templates (``stats_chart.html``). Thai first, Buddhist-era dates.

The questions and answers are :mod:`gateway.http.stats_query`'s, as in the JSON API. A user of an
agency sees its own subtree (a ministry's user the whole ministry); staff see everything.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.clock import BANGKOK
from gateway.http import stats_query
from gateway.http.console import THAI_MONTHS
from gateway.http.console.views import EVERYONE, need
from gateway.http.stats_query import Question

Page = dict[str, Any]

SCOPES_TH = {"exchange": "ทั้งระบบ", "ministry": "กระทรวง/หน่วยงานในสังกัด", "province": "จังหวัด",
             "agency": "หน่วยงาน"}
SIDES_TH = {"sender": "ในฐานะผู้ส่ง", "recipient": "ในฐานะผู้รับ"}
GRAINS_TH = {"day": "รายวัน", "hour": "รายชั่วโมง"}


def duration_th(seconds: float | None) -> str:
    """A duration as a person reads it, rounded up (a percentile is an upper edge): "≤ 45 วินาที",
    "≤ 3 นาที", "≤ 3.5 ชม.", "≤ 2.5 วัน"."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"≤ {math.ceil(seconds)} วินาที"
    if seconds < 3600:
        return f"≤ {math.ceil(seconds / 60)} นาที"
    if seconds < 86400:
        return f"≤ {math.ceil(seconds / 360) / 10:.1f} ชม."
    return f"≤ {math.ceil(seconds / 8640) / 10:.1f} วัน"


def short_label(at: dt.date | dt.datetime, grain: str) -> str:
    """A chart's axis label: "22 พ.ย." for a day, "22 พ.ย. 10 น." for an hour (Bangkok)."""
    if isinstance(at, dt.datetime):
        t = at.astimezone(BANGKOK)
        return f"{t.day} {THAI_MONTHS[t.month - 1]} {t.hour:02d} น."
    return f"{at.day} {THAI_MONTHS[at.month - 1]}"


def be_day(day: dt.date) -> str:
    """A day as the form takes it back, Buddhist era: 2569-11-22."""
    return f"{day.year + 543:04d}-{day.month:02d}-{day.day:02d}"


async def _question(request: web.Request, default_side: str) -> tuple[Question, Any]:
    user = await need(request, *EVERYONE)
    app = request.app
    qn = await stats_query.read(request.query, pool=app[keys.POOL], today=stats_query.today(app[keys.CLOCK].now()),
                                role=user.role.value, agency=user.agency, default_side=default_side)
    return qn, user


def _common(request: web.Request, qn: Question, user: Any) -> Page:
    return {"qn": qn, "user": user, "directory": request.app[keys.DIRECTORY], "scopes": SCOPES_TH, "sides": SIDES_TH,
            "grains": GRAINS_TH, "since_be": be_day(qn.since), "until_be": be_day(qn.until), "dur": duration_th,
            "label": short_label, "q": dict(request.query)}


@aiohttp_jinja2.template("stats_volumes.html")
async def volumes_page(request: web.Request) -> Page:
    """Agency (its own subtree), operator, auditor, admin. Volumes over time: letters accepted, deliveries
    completed, dead letters, registry answers, per day or hour, for the exchange, a ministry, a province or
    an agency."""
    qn, user = await _question(request, "sender")
    rows = await stats_query.filled_volumes(request.app[keys.POOL], qn)
    data = {"totals": {k: sum(int(r[k]) for r in rows) for k in stats_query.COUNTS}}
    points = {k: [(short_label(r["at"], qn.grain), int(r[k])) for r in rows] for k in ("letters", "delivered", "dead")}
    return {**_common(request, qn, user), "data": data, "rows": rows, "points": points}


@aiohttp_jinja2.template("stats_service.html")
async def service_page(request: web.Request) -> Page:
    """Agency (its own subtree), operator, auditor, admin. Service levels per agency (p50/p90/p99 from
    acceptance to delivery, and from delivery to the registry's answer), the slowest offices and the
    offices whose registry never answers."""
    qn, user = await _question(request, "recipient")
    data = await stats_query.service_levels(request.app[keys.POOL], qn, request.app[keys.DIRECTORY])

    def levels(level: dict[str, Any]) -> str:
        return " / ".join(duration_th(level[k]) for k in ("p50_s", "p90_s", "p99_s"))

    # the tables' cells formatted here, once: looking each one up in the template was most of the page's time
    # (a Jinja attribute lookup on a dict tries the attribute first and fails; ~3,000 a page)
    return {**_common(request, qn, user), "data": data,
            "agency_rows": [(a["agency"], a["name_th"] or "", a["letters"], a["delivered"], levels(a["delivery"]),
                             levels(a["answer"]), levels(a["registration"]), a["dead"]) for a in data["agencies"]],
            "slowest_rows": [(a["agency"], a["name_th"] or "", a["delivered"],
                              *(duration_th(a["delivery"][k]) for k in ("p50_s", "p90_s", "p99_s")))
                             for a in data["slowest"]],
            "silent_rows": [(a["agency"], a["name_th"] or "", a["delivered"]) for a in data["never_answering"]]}


@aiohttp_jinja2.template("stats_failures.html")
async def failures_page(request: web.Request) -> Page:
    """Agency (its own subtree), operator, auditor, admin. Offices with open circuits or dead letters and
    since when, the dead-letter trend, refused submissions by code per sending agency."""
    qn, user = await _question(request, "recipient")
    data = await stats_query.failures(request.app[keys.POOL], qn, request.app[keys.DIRECTORY])
    parse = dt.datetime.fromisoformat
    for r in data["open"]:
        for k in ("failing_since", "backoff_until", "dead_since"):
            r[k] = parse(r[k]) if r[k] else None
    for r in data["refusals"]:
        r["first"], r["last"] = parse(r["first"]), parse(r["last"])
    now = request.app[keys.CLOCK].now()
    return {**_common(request, qn, user), "data": data, "now": now,
            "dead_points": [(short_label(dt.date.fromisoformat(r["day"]), "day"), r["dead"])
                            for r in data["dead_trend"]],
            "refused_points": [(short_label(dt.date.fromisoformat(r["day"]), "day"), r["refused"])
                               for r in data["refusal_trend"]]}
