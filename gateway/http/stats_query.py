"""The statistics' questions, read once from a query and answered from the rollups.

Both edges use this module: the JSON API (:mod:`gateway.http.stats_api`) and the console pages
(:mod:`gateway.http.console.stats`). A question names a *scope* (the whole exchange, a ministry
and its subtree, a province, one agency), a period of Bangkok days (``since`` .. ``until``,
Gregorian or Buddhist era: ``2569-11-22``), a grain (day or hour) and a side (the agencies as
senders or as receivers). Every parameter is checked here and refused with 400
``request.invalid`` naming it; a day that does not exist (29 February 2569) is refused in Thai
and English.

Who sees what: staff (operator, auditor, admin) every scope; an agency its own subtree only
(a ministry its whole subtree, an office itself), asked as ``scope=agency`` or ``scope=ministry``
with a code inside it; any other scope is 403.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from gateway.core.clock import BANGKOK
from gateway.core.directory import Directory
from gateway.core.errors import AuthError
from gateway.http import params
from gateway.storage import stats
from pki import thaidate

SCOPES = ("exchange", "ministry", "province", "agency")
GRAINS = ("day", "hour")
SIDES = ("sender", "recipient")
#: The longest period a question may cover, per grain.
MAX_DAYS = {"day": 366, "hour": 31}
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class Question:
    """One checked question."""

    scope: str
    """exchange, ministry, province or agency."""
    code: str | None
    """The ministry's or agency's code."""
    province: str | None
    """The province code (2 digits)."""
    since: dt.date
    """First Bangkok day (inclusive)."""
    until: dt.date
    """Last Bangkok day (inclusive)."""
    grain: str
    """day or hour."""
    side: str
    """sender or recipient."""
    agencies: list[str] | None
    """The agencies of the scope (None: every agency)."""

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.since, dt.time(), BANGKOK)

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), BANGKOK)

    @property
    def side_code(self) -> str:
        return "s" if self.side == "sender" else "r"

    def echo(self) -> dict[str, Any]:
        return {"scope": self.scope, "code": self.code, "province": self.province, "since": self.since.isoformat(),
                "until": self.until.isoformat(), "grain": self.grain, "side": self.side}


def _choice(q: Any, field: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.optional(q, field, "enum")
    if value is None:
        return default
    if value not in allowed:
        raise params.invalid(f"{field} must be one of {', '.join(allowed)}", field)
    return value


def _day(q: Any, field: str) -> dt.date | None:
    value = params.optional(q, field, "day")
    if value is None:
        return None
    try:
        day = thaidate.parse_date(value)
        # the first and the last instant of the day must exist in UTC (PostgreSQL's range)
        dt.datetime.combine(day, dt.time(), BANGKOK).astimezone(dt.UTC)
        (dt.datetime.combine(day, dt.time(), BANGKOK) + dt.timedelta(days=1)).astimezone(dt.UTC)
    except thaidate.DateError as exc:
        raise params.invalid(f"{exc.thai} ({exc.english})", field) from None
    except OverflowError:
        raise params.invalid("วันที่นี้อยู่นอกช่วงที่ใช้ได้ (the date is out of range)", field) from None
    return day


async def read(q: Any, *, pool: asyncpg.Pool, today: dt.date, role: str, agency: str | None,
               default_side: str = "sender") -> Question:
    """The checked question of query ``q`` asked by ``role`` (``agency``: the caller's code)."""
    staff = role != "agency"
    scope = _choice(q, "scope", SCOPES, "exchange" if staff else "ministry")
    code = params.optional(q, "code", "agency")
    province = params.optional(q, "province", "province")
    grain = _choice(q, "grain", GRAINS, "day")
    side = _choice(q, "side", SIDES, default_side)
    since, until = _day(q, "since"), _day(q, "until")
    # a default is derived from the day given (the field a refusal names), else from today
    given = "until" if until is not None else "since"
    span = dt.timedelta(days=DEFAULT_DAYS - 1)
    try:
        if until is None:
            until = today if since is None else since + span
            dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), BANGKOK).astimezone(dt.UTC)
        if since is None:
            since = until - span
            dt.datetime.combine(since, dt.time(), BANGKOK).astimezone(dt.UTC)
    except OverflowError:
        raise params.invalid("วันที่นี้อยู่นอกช่วงที่ใช้ได้ (the date is out of range)", given) from None
    if since > until:
        raise params.invalid("วันเริ่มต้องไม่หลังวันสุดท้าย (since must not be after until)", given)
    if (until - since).days + 1 > MAX_DAYS[grain]:
        raise params.invalid(f"ช่วงเวลายาวเกิน {MAX_DAYS[grain]} วันสำหรับรายละเอียดนี้ "
                             f"(at most {MAX_DAYS[grain]} days per {grain})", given)
    if scope in ("ministry", "agency") and code is None:
        if staff:
            raise params.invalid(f"code is required for scope {scope}", "code")
        code = agency
    if scope == "province" and province is None:
        raise params.invalid("province is required for scope province", "province")
    agencies: list[str] | None = None
    if scope == "ministry" and code is not None:
        agencies = await stats.subtree(pool, code)
    elif scope == "agency" and code is not None:
        agencies = [code]
    elif scope == "province" and province is not None:
        agencies = await stats.province(pool, province)
    if not staff:
        mine = set(await stats.subtree(pool, agency)) if agency else set()
        if scope not in ("ministry", "agency") or code not in mine:
            raise AuthError("an agency sees the statistics of its own agencies only (scope=agency or ministry "
                            "with a code inside its subtree)", code="auth.forbidden")
    return Question(scope=scope, code=code if scope in ("ministry", "agency") else None,
                    province=province if scope == "province" else None, since=since, until=until, grain=grain,
                    side=side, agencies=agencies)


def today(now: dt.datetime) -> dt.date:
    return now.astimezone(BANGKOK).date()


# ---------------------------------------------------------------------------- answers


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in r.items()}


COUNTS = ("letters", "delivered", "dead", "answered", "registered")


async def filled_volumes(pool: asyncpg.Pool, qn: Question) -> list[dict[str, Any]]:
    """The counts of every day (or hour) of the period, zeros included, in order."""
    rows = await stats.volumes(pool, side=qn.side_code, agencies=qn.agencies, since=qn.since, until=qn.until,
                               grain=qn.grain, start=qn.start, end=qn.end)
    if qn.grain == "hour":
        hours = int((qn.end - qn.start).total_seconds() // 3600)
        slots: list[Any] = [(qn.start + dt.timedelta(hours=i)).astimezone(dt.UTC) for i in range(hours)]
    else:
        slots = [qn.since + dt.timedelta(days=i) for i in range((qn.until - qn.since).days + 1)]
    have = {r["at"]: r for r in rows}
    return [have.get(at) or {"at": at, **dict.fromkeys(COUNTS, 0)} for at in slots]


async def volumes(pool: asyncpg.Pool, qn: Question) -> dict[str, Any]:
    rows = await filled_volumes(pool, qn)
    totals = {k: sum(int(r[k]) for r in rows) for k in COUNTS}
    return {"question": qn.echo(), "items": [_row(r) for r in rows], "totals": totals}


async def service_levels(pool: asyncpg.Pool, qn: Question, directory: Directory, *, limit: int = 100,
                         slowest: int = 20) -> dict[str, Any]:
    """Overall and per-agency levels; ``agencies`` lists the ``limit`` agencies with the most letters
    (``agencies_total`` says how many there are); the slowest and the silent are found among all (in
    SQL: :func:`gateway.storage.stats.service`)."""
    found = await stats.service(pool, side=qn.side_code, agencies=qn.agencies, since=qn.since, until=qn.until,
                                limit=limit, slowest=slowest)

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        agency = directory.get(row["agency"])
        return {"agency": row["agency"], "name_th": agency.name_th if agency else None,
                **{k: v for k, v in row.items() if k != "agency"}}

    return {"question": qn.echo(), "overall": found.overall, "agencies": [entry(r) for r in found.busiest],
            "agencies_total": found.agencies_total, "slowest": [entry(r) for r in found.slowest],
            "never_answering": [entry(r) for r in found.silent], "never_answering_total": found.silent_total,
            "resolution": "log-scale buckets, factor √2 apart; a percentile is its bucket's upper edge, "
                          "at most 41% above the true value"}


async def failures(pool: asyncpg.Pool, qn: Question, directory: Directory) -> dict[str, Any]:
    open_rows = await stats.open_failures(pool, agencies=qn.agencies)
    trend = await filled_volumes(pool, replace(qn, grain="day", side="recipient"))
    refused, refused_days = await stats.refusals(pool, agencies=qn.agencies, start=qn.start, end=qn.end)
    per_day = {r["day"]: r["n"] for r in refused_days}
    refused_trend = [{"day": r["at"], "n": per_day.get(r["at"], 0)} for r in trend]
    for r in open_rows:
        entry = directory.get(r["agency"])
        r["name_th"] = entry.name_th if entry else None
    return {"question": qn.echo(), "open": [_row(r) for r in open_rows],
            "dead_trend": [{"day": r["at"].isoformat(), "dead": int(r["dead"])} for r in trend],
            "refusals": [_row(r) for r in refused],
            "refusal_trend": [{"day": r["day"].isoformat(), "refused": int(r["n"])} for r in refused_trend]}
