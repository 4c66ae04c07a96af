"""Statistics and service levels (สถิติและระดับการให้บริการ), kept as rollups.

Design
------
Every state change of a letter is already an audit event (``message.accepted``,
``delivery.delivered``, ``delivery.dead``, ``message.rejected``), so the intake path pays
nothing for statistics: a rollup job (:func:`roll`, run every few seconds by
:mod:`gateway.exchange.stats` in every gateway process, and on demand) reads the events after
its watermark and adds them up, per agency and side (sending ``s`` / receiving ``r``), into
hourly and daily counts and daily latency histograms, and moves the watermark, in one
transaction (SQL function ``stats_roll``). A process killed half-way rolls back both: no event
is counted twice or lost. Concurrent processes take an advisory lock; the one that gets it
rolls, the others skip the round.

Audit sequence numbers are taken before their transaction commits, so a number can become
visible after a larger one. The watermark therefore passes a number only once it is final:
the job reads the sequence's last value and then the transactions that hold an xid (the
*fence*); once none of those runs any more, every event up to the fence is committed or
never will be. This is the audit sealer's fence (``gateway.audit.sealer``), kept separately
so statistics never wait for the chain.

Per ministry and per province are not rolled up: a ministry is its subtree in the directory
(``agencies.parent``, SQL ``stats_subtree``) and a province its agencies (``agencies.province``),
summed when asked, so a directory change shows at once and costs no re-roll.

Weekly and monthly spans (migration 0020): an ISO week (Monday to Sunday) or a calendar month that
has ended is written once from its days (``stats_spans``, ``stats_latency_spans``; SQL
``stats_seal_spans``), by the rollup job in its round's transaction, up to yesterday in Bangkok
(``stats_watermark.spans_through``), so the job's upserts per fact stay those of hours and days. A
fact that comes after its span was sealed (a backlog, a round that crossed midnight) is added to
the span too, by ``stats_roll``: sealing is correct whenever it runs. A backlog is rolled up first
and sealed once it has caught up. A question about a period of days reads the fewest whole sealed
months and weeks and single days that cover the period exactly (:func:`cover`): a 30-day period
is about 5 pieces instead of 30 days, a calendar month one. The figures are the same as the
days' sums (checked by :func:`check_against_full_scan`).

Latency histograms: fixed log-scale buckets, factor √2 apart. Bucket ``b`` holds durations in
``(2^((b-1)/2), 2^(b/2)]`` seconds; bucket 0 is one second or less, bucket 47 everything above
2^23 s (97 days). A percentile is reported as the upper edge of the bucket it falls in: never
below the true value, at most 41 % (√2) above it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.core.clock import BANGKOK
from gateway.storage import Connection
from gateway.storage.db import queries

BUCKETS = 48
"""Latency buckets: 0 .. 47."""
METRICS = {"d": "delivery", "a": "answer", "g": "registration"}
"""Latency metric codes: acceptance -> delivery, delivery -> received answer, delivery -> registered."""
PERCENTILES = (50, 90, 99)
COUNTS = ("letters", "delivered", "dead", "answered", "registered")
"""The counts of a rollup row."""


def bucket_of(seconds: float) -> int:
    """The bucket of a duration (as SQL ``stats_bucket``)."""
    if seconds <= 1:
        return 0
    return min(BUCKETS - 1, math.ceil(2 * math.log(seconds) / math.log(2.0)))


def bucket_upper(bucket: int) -> float:
    """The upper edge of a bucket, in seconds (the last bucket has none: its lower edge, 2^23 s)."""
    return 2.0 ** (min(bucket, BUCKETS - 2) / 2)


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of a histogram ``{bucket: count}`` as its bucket's upper edge."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = math.ceil(q / 100 * total)
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= max(rank, 1):
            return bucket_upper(b)
    return bucket_upper(max(hist))


@dataclass(frozen=True)
class RollResult:
    """What one round of the rollup job did."""

    locked: bool
    """False when another process held the job's lock (nothing done)."""
    events: int = 0
    """Audit events read and counted in this round."""
    watermark: int = 0
    """The watermark after the round."""
    more: bool = False
    """Final events remain beyond this round's batch: run again at once."""


async def roll(pool: asyncpg.Pool, *, now: dt.datetime, batch: int = 50_000) -> RollResult:
    """One round: add the final audit events after the watermark (at most ``batch`` sequence
    numbers) to the rollups and move the watermark, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        # Reads first, and no xid of our own while taking the fence (an advisory lock takes none).
        if not await conn.fetchval(queries["stats_lock"]):
            return RollResult(locked=False)
        wm = await conn.fetchrow(queries["stats_watermark"])
        if wm is None:
            raise RuntimeError("stats_watermark has no row: the schema is incomplete")
        seq = wm["seq"]
        fence = (wm["fence_seq"], list(wm["fence_xids"])) if wm["fence_seq"] is not None else None
        bound = seq
        if fence is not None and await conn.fetchval(queries["audit_fence_ready"], fence[1]):
            bound, fence = max(bound, fence[0]), None
        last = await conn.fetchval(queries["audit_seq_last"])
        running = await conn.fetchval(queries["audit_running_xids"])  # after `last`, never before
        if not running:
            bound, fence = max(bound, last), None
        elif fence is None and last > bound:
            fence = (last, list(running))
        upto = min(bound, seq + batch)
        more = upto < bound
        if more:
            fence = (bound, [])  # the rest of this final range, next round (its fence has passed)
        events = await conn.fetchval(queries["stats_roll"], seq, upto) if upto > seq else 0
        old = (wm["fence_seq"], list(wm["fence_xids"])) if wm["fence_seq"] is not None else None
        if upto > seq or fence != old:
            await conn.execute(queries["stats_watermark_update"], upto, fence[0] if fence else None,
                               fence[1] if fence else None, events, now)
        # the weeks and months that ended by yesterday, once the backlog is in (never half-way through it)
        yesterday = now.astimezone(BANGKOK).date() - dt.timedelta(days=1)
        if not more and (wm["spans_through"] is None or wm["spans_through"] < yesterday):
            await conn.fetchval(queries["stats_seal_spans"], yesterday)
    return RollResult(locked=True, events=events, watermark=upto, more=more)


async def catch_up(pool: asyncpg.Pool, *, now: dt.datetime, timeout_s: float = 120.0) -> int:
    """Roll until every event numbered before this call is counted (on demand: tests, the benchmark,
    ``gateway stats roll``); the watermark. Waits for the transactions that hold such numbers to end,
    and for another process's round, at most ``timeout_s`` without progress."""
    target = await pool.fetchval(queries["audit_seq_last"])
    deadline = time.monotonic() + timeout_s
    while True:
        r = await roll(pool, now=now)
        if r.locked and r.watermark >= target and not r.more:
            return r.watermark
        if r.more:  # a backlog (a first start on a large log): progress, so no deadline yet
            deadline = time.monotonic() + timeout_s
        elif time.monotonic() > deadline:
            raise TimeoutError(f"the statistics did not catch up with event {target} in {timeout_s:.0f} s "
                               f"(watermark {r.watermark}): a transaction that holds an audit number still runs")
        if not r.more:
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- what the pages read


@dataclass(frozen=True)
class Cover:
    """A period of Bangkok days as whole calendar months, ISO weeks and single days (disjoint)."""

    months: list[dt.date]
    """The first day of each whole month."""
    weeks: list[dt.date]
    """The Monday of each whole week."""
    days: list[dt.date]
    """The days left over."""


def _month_end(day: dt.date) -> dt.date:
    nxt = day.replace(year=day.year + 1, month=1) if day.month == 12 else day.replace(month=day.month + 1)
    return nxt - dt.timedelta(days=1)


def cover(since: dt.date, until: dt.date, sealed: dt.date | None) -> Cover:
    """The fewest months, weeks and days that cover ``since`` .. ``until`` (inclusive) exactly, months
    and weeks only among those that end by ``sealed`` (``spans_through``: written; None: none): each
    row of a rollup is read once whichever span holds it, so fewer pieces are fewer rows."""
    n = (until - since).days + 1
    if n <= 0:
        return Cover([], [], [])
    # best[i]: (pieces, next index, kind) covering days i .. n-1, from the last day back
    best: list[tuple[int, int, str]] = [(0, n, "")] * (n + 1)
    for i in range(n - 1, -1, -1):
        day = since + dt.timedelta(days=i)
        options = [(best[i + 1][0] + 1, i + 1, "d")]
        if sealed is not None and day.weekday() == 0 and i + 7 <= n and day + dt.timedelta(days=6) <= sealed:
            options.append((best[i + 7][0] + 1, i + 7, "w"))
        if sealed is not None and day.day == 1 and _month_end(day) <= sealed:
            end = (_month_end(day) - since).days + 1
            if end <= n:
                options.append((best[end][0] + 1, end, "m"))
        best[i] = min(options)
    out = Cover([], [], [])
    i = 0
    while i < n:
        _, nxt, kind = best[i]
        {"m": out.months, "w": out.weeks, "d": out.days}[kind].append(since + dt.timedelta(days=i))
        i = nxt
    return out


@asynccontextmanager
async def reading(pool: asyncpg.Pool) -> AsyncIterator[tuple[Connection, dt.date | None]]:
    """A connection for the pages' questions, in a read-only transaction whose statements are planned
    for their own arguments; and ``spans_through`` (for :func:`cover`), read in the same round trip.

    asyncpg prepares every statement, and after five runs PostgreSQL may keep one generic plan for
    all arguments. For these questions a generic plan cannot tell "every agency" (``$2`` NULL) from a
    list of three, nor a period of 2 days from one of 30: at 1M letters it read a ministry's volumes
    in 40-60 ms instead of 0.4 ms and ranked the service page in 150-195 ms instead of 70-110
    (``bench/console.py``: the page's first request fast, its repeats slow). Planning each time costs
    a few milliseconds."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        row = await conn.fetchrow(queries["stats_custom_plans"])
        yield conn, row["spans_through"] if row is not None else None


async def subtree(pool: asyncpg.Pool, code: str) -> list[str]:
    """An agency and every agency below it (a ministry's subtree)."""
    return list(await pool.fetchval(queries["stats_subtree"], code) or [])


async def province(pool: asyncpg.Pool, code: str) -> list[str]:
    return list(await pool.fetchval(queries["stats_province"], code) or [])


Row = dict[str, Any]


async def volumes(pool: asyncpg.Pool, *, side: str, agencies: Sequence[str] | None, since: dt.date,
                  until: dt.date, grain: str, start: dt.datetime, end: dt.datetime) -> list[Row]:
    """Counts per day (``grain`` day: ``since`` .. ``until`` inclusive) or per hour (``start`` ..
    ``end``, end exclusive)."""
    async with reading(pool) as (conn, _):
        if grain == "hour":
            rows = await conn.fetch(queries["stats_volumes_hourly"], side, agencies, start, end)
        else:
            rows = await conn.fetch(queries["stats_volumes_daily"], side, agencies, since, until)
    return [dict(r) for r in rows]


async def agency_totals(pool: asyncpg.Pool, *, side: str, agencies: Sequence[str] | None, since: dt.date,
                        until: dt.date) -> dict[str, Row]:
    async with reading(pool) as (conn, sealed):
        c = cover(since, until, sealed)
        rows = await conn.fetch(queries["stats_agency_totals"], side, agencies, c.days, c.weeks, c.months)
    return {r["agency"]: dict(r) for r in rows}


_KEYS = tuple((q, f"b{q}", f"p{q}_s") for q in PERCENTILES)
_EMPTY = {"count": 0, **{key: None for _q, _b, key in _KEYS}}


def empty_levels() -> Row:
    """The levels of an agency with no duration measured."""
    return {name: _EMPTY.copy() for name in METRICS.values()}


async def service_levels(pool: asyncpg.Pool, *, side: str, agencies: Sequence[str] | None, since: dt.date,
                         until: dt.date) -> tuple[Row, dict[str, Row]]:
    """The percentiles over the days for the whole scope, and per agency: ranked in SQL from the
    histograms in one pass (``stats_levels``, the rule of :func:`percentile`)."""
    whole = empty_levels()
    per: dict[str, Row] = {}
    async with reading(pool) as (conn, sealed):
        c = cover(since, until, sealed)
        rows = await conn.fetch(queries["stats_levels"], side, agencies, c.days, c.weeks, c.months)
    for r in rows:
        agency = r["agency"]
        levels = whole if agency is None else per.get(agency) or per.setdefault(agency, empty_levels())
        level = levels[METRICS[r["metric"]]]
        level["count"] = r["count"]
        for _q, b, key in _KEYS:
            level[key] = bucket_upper(r[b]) if r[b] is not None else None
    return whole, per


@dataclass(frozen=True)
class Service:
    """The service-levels page's figures (``stats_service``)."""

    overall: Row
    """The levels of the whole scope."""
    busiest: list[Row]
    """The busiest agencies, most letters first: each its counts and levels."""
    slowest: list[Row]
    """The slowest agencies by p90 to delivery."""
    silent: list[Row]
    """Agencies that received letters and never answered, by code."""
    agencies_total: int
    silent_total: int


def _levels(r: asyncpg.Record) -> Row:
    out: Row = {}
    for code, name in METRICS.items():
        n = r[f"{code}_n"]
        level: Row = {"count": int(n or 0)}
        for q, _b, key in _KEYS:
            b = r[f"{code}_b{q}"]
            level[key] = bucket_upper(b) if b is not None else None
        out[name] = level
    return out


async def service(pool: asyncpg.Pool, *, side: str, agencies: Sequence[str] | None, since: dt.date,
                  until: dt.date, limit: int, slowest: int) -> Service:
    """The service levels of a scope and period, and of the agencies a page shows (``limit`` busiest,
    ``slowest`` slowest, ``limit`` silent), ranked in SQL so that only those are read."""
    async with reading(pool) as (conn, sealed):
        c = cover(since, until, sealed)
        rows = await conn.fetch(queries["stats_service"], side, agencies, c.days, c.weeks, c.months, limit, slowest)
    overall = empty_levels()
    busiest: list[tuple[int, Row]] = []
    slow: list[tuple[int, Row]] = []
    silent: list[tuple[int, Row]] = []
    total = silent_total = 0
    for r in rows:
        if r["agency"] is None:
            overall = _levels(r)
            continue
        total, silent_total = r["agencies_total"], r["silent_total"]
        entry = {"agency": r["agency"], **{k: int(r[k]) for k in COUNTS}, **_levels(r)}
        for rank, into in ((r["busy_rank"], busiest), (r["slow_rank"], slow), (r["silent_rank"], silent)):
            if rank is not None:
                into.append((rank, entry))
    return Service(overall=overall, busiest=[e for _, e in sorted(busiest, key=lambda x: x[0])],
                   slowest=[e for _, e in sorted(slow, key=lambda x: x[0])],
                   silent=[e for _, e in sorted(silent, key=lambda x: x[0])], agencies_total=int(total),
                   silent_total=int(silent_total))


async def refusals(pool: asyncpg.Pool, *, agencies: Sequence[str] | None, start: dt.datetime, end: dt.datetime,
                   limit: int = 200) -> tuple[list[Row], list[Row]]:
    """Refused submissions per sending agency and code, and per day (the trend)."""
    async with reading(pool) as (conn, _):
        rows = await conn.fetch(queries["stats_refusals"], agencies, start, end, limit)
        trend = await conn.fetch(queries["stats_refusals_daily"], agencies, start, end)
    return [dict(r) for r in rows], [dict(r) for r in trend]


async def open_failures(pool: asyncpg.Pool, *, agencies: Sequence[str] | None, limit: int = 200) -> list[Row]:
    """Offices with an open (or opening) circuit or dead letters now, oldest failure first."""
    async with reading(pool) as (conn, _):
        return [dict(r) for r in await conn.fetch(queries["stats_open_failures"], agencies, limit)]


async def check_against_full_scan(pool: asyncpg.Pool) -> list[str]:
    """Differences between the rollups and a count of the letters and deliveries themselves (empty:
    they agree): letters per side, agency and day; deliveries delivered per latency bucket and dead
    per side and agency; and every weekly and monthly span against the sums of its days. (A dead
    letter that was requeued since is dead in the rollup, not in the table: run it where no delivery
    was requeued.)"""
    out: list[str] = []

    def table(rows: Sequence[asyncpg.Record], keys: tuple[str, ...], value: str) -> dict[tuple[Any, ...], int]:
        return {tuple(r[k] for k in keys): int(r[value]) for r in rows if r[value]}

    for scan, rolled, keys, value in (
            ("stats_scan_letters", "stats_rolled_letters", ("side", "agency", "day"), "letters"),
            ("stats_scan_deliveries", "stats_rolled_deliveries", ("side", "agency", "status", "bucket"), "n")):
        want = table(await pool.fetch(queries[scan]), keys, value)
        if scan == "stats_scan_deliveries":  # dead letters are counted per agency only
            dead: dict[tuple[Any, ...], int] = defaultdict(int)
            for k, n in list(want.items()):
                if k[2] == "dead":
                    del want[k]
                    dead[(*k[:3], None)] += n
            want.update(dead)
        have = table(await pool.fetch(queries[rolled]), keys, value)
        for k in sorted(set(want) | set(have), key=repr):
            if want.get(k, 0) != have.get(k, 0):
                out.append(f"{value} {k}: full scan {want.get(k, 0)}, rollup {have.get(k, 0)}")
    # the weekly and monthly spans: each the sums of its days
    for r in await pool.fetch(queries["stats_spans_differences"]):
        out.append(f"{r['what']} ({r['span']}, {r['side']}, {r['agency']}, {r['first']}): days {r['days']}, "
                   f"span {r['span_rows']}")
    return out
