"""Rollups (gateway.storage.stats): what letters, deliveries and answers make, equal to a full scan,
under concurrent rollers and writers, and after the rolling process is killed (SIGKILL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import re
import signal
import subprocess
import sys

import pytest

from gateway.core import appkeys as keys
from gateway.core.envelope import NotifierKind
from gateway.storage import stats
from gateway.storage.db import queries
from tests.stats.helpers import answer, auth, send, take
from tests.support import CMI, KKN, MOI, OPM, ROOT, letter_bytes


def test_buckets_and_percentiles_are_as_documented():
    assert [stats.bucket_of(s) for s in (0, 1, 1.2, 1.5, 2, 2.9, 3600)] == [0, 0, 1, 2, 2, 4, 24]
    for s in (1.5, 7, 90, 3600, 86400 * 3):
        b = stats.bucket_of(s)
        assert stats.bucket_upper(b - 1) < s <= stats.bucket_upper(b) <= s * 2 ** 0.5 + 1e-9
    hist = {2: 50, 10: 40, 20: 10}
    assert stats.percentile(hist, 50) == stats.bucket_upper(2)
    assert stats.percentile(hist, 90) == stats.bucket_upper(10)
    assert stats.percentile(hist, 99) == stats.bucket_upper(20)
    assert stats.percentile({}, 50) is None


async def test_letters_deliveries_answers_and_refusals_are_rolled_up(make_client, clock):
    client = await make_client()
    pool = client.app[keys.POOL]
    await send(client, OPM, (CMI, KKN), "s-1")
    await send(client, OPM, (CMI,), "s-2")
    await send(client, KKN, (CMI,), "s-3")
    r = await client.post("/v1/messages", data=letter_bytes(sender=OPM, recipients=("1999999999",)),
                          headers=auth(OPM))
    assert r.status == 422
    clock.advance(90)
    await take(client, CMI, "s-1")  # 90 s after acceptance
    clock.advance(30)
    await take(client, CMI, "s-2")  # 120 s
    clock.advance(600)
    await answer(client, CMI, OPM, "s-1", NotifierKind.RECEIVED)  # 690 s after delivery
    clock.advance(3000)
    await answer(client, CMI, OPM, "s-1", NotifierKind.ACCEPTED)  # 3690 s after delivery
    await client.app[keys.STATS_JOB].run_now()

    assert await stats.check_against_full_scan(pool) == []
    day = dt.date(2026, 11, 22)
    sent = await stats.agency_totals(pool, side="s", agencies=None, since=day, until=day)
    assert {a: (r["letters"], r["delivered"], r["answered"], r["registered"]) for a, r in sent.items()} == {
        OPM: (2, 2, 1, 1), KKN: (1, 0, 0, 0)}
    got = await stats.agency_totals(pool, side="r", agencies=[CMI], since=day, until=day)
    assert (got[CMI]["letters"], got[CMI]["delivered"], got[CMI]["answered"]) == (3, 2, 1)
    total, per = await stats.service_levels(pool, side="r", agencies=None, since=day, until=day)
    assert total["delivery"]["count"] == 2
    assert total["delivery"]["p50_s"] == stats.bucket_upper(stats.bucket_of(90))
    assert total["delivery"]["p99_s"] == stats.bucket_upper(stats.bucket_of(120))
    assert per[CMI]["answer"]["p50_s"] == stats.bucket_upper(stats.bucket_of(690))
    assert per[CMI]["registration"]["p90_s"] == stats.bucket_upper(stats.bucket_of(3690))
    refused, _ = await stats.refusals(pool, agencies=None, start=clock.now() - dt.timedelta(days=1),
                                      end=clock.now() + dt.timedelta(hours=1))
    assert [(r["agency"], r["code"], r["n"]) for r in refused] == [(OPM, "envelope.unknown_recipient", 1)]
    # the ministry of interior's subtree holds both provinces; its volumes count their letters
    assert set(await stats.subtree(pool, MOI)) == {MOI, CMI, KKN}
    rows = await stats.volumes(pool, side="r", agencies=await stats.subtree(pool, MOI), since=day, until=day,
                               grain="day", start=clock.now(), end=clock.now())
    assert [(r["letters"], r["delivered"]) for r in rows] == [(4, 2)]
    # rolled once: running again adds nothing
    before = await pool.fetch("SELECT * FROM stats_daily ORDER BY 1, 2, 3")
    await client.app[keys.STATS_JOB].run_now()
    assert await pool.fetch("SELECT * FROM stats_daily ORDER BY 1, 2, 3") == before


async def _counted_once(pool) -> None:
    events = await pool.fetchval("SELECT count(*) FROM audit_events WHERE kind IN ('message.accepted', "
                                 "'delivery.delivered', 'delivery.dead', 'message.rejected')")
    assert await pool.fetchval("SELECT events FROM stats_watermark") == events
    assert await stats.check_against_full_scan(pool) == []


async def test_concurrent_rollers_and_writers_count_every_event_once(make_client, clock):
    client = await make_client()
    pool = client.app[keys.POOL]
    stop = asyncio.Event()
    rounds = {"locked": 0, "skipped": 0}

    async def roller():
        while not stop.is_set():
            r = await stats.roll(pool, now=clock.now(), batch=7)
            rounds["locked" if r.locked else "skipped"] += 1
            await asyncio.sleep(0)

    async def writer(sender, n):
        for i in range(n):
            await send(client, sender, (CMI, KKN) if i % 2 else (MOI,), f"c-{sender}-{i}")

    rollers = [asyncio.create_task(roller()) for _ in range(4)]
    await asyncio.gather(*(writer(a, 25) for a in (OPM, KKN, CMI)))
    for i in range(0, 25, 2):
        await take(client, MOI, f"c-{OPM}-{i}")
    stop.set()
    await asyncio.gather(*rollers)
    assert rounds["locked"] > 0 and rounds["skipped"] > 0, rounds  # they really competed
    await stats.catch_up(pool, now=clock.now())
    await _counted_once(pool)


ROLLER = """
import asyncio, datetime as dt, sys
from gateway.storage import db, stats
async def main():
    pool = await db.create_pool(sys.argv[1], min_size=1, max_size=2)
    print("ready", flush=True)
    while True:
        await stats.roll(pool, now=dt.datetime.now(dt.UTC), batch=3)
asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_roller_killed_mid_round_loses_and_doubles_nothing(make_client, clock, database_url):
    client = await make_client()
    pool = client.app[keys.POOL]
    kills = 0
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", ROLLER, database_url], cwd=ROOT, stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        for i in range(8):
            await send(client, OPM, (CMI, KKN), f"k-{round_}-{i}")
        await asyncio.sleep(0.05 * round_)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills += 1
    assert kills == 6
    await stats.catch_up(pool, now=clock.now())
    await _counted_once(pool)


async def test_percentiles_in_sql_are_those_of_the_documented_rule(pool):
    """The service levels' SQL ranks (stats_levels_by_agency) agree with :func:`stats.percentile`."""


    rng = random.Random(18)
    day = dt.date(2026, 11, 22)
    hists = {f"{1550100000 + i}": {b: rng.randint(1, 50) for b in rng.sample(range(48), rng.randint(1, 9))}
             for i in range(30)}
    for agency, hist in hists.items():
        for b, n in hist.items():
            await pool.execute("INSERT INTO stats_latency (side, agency, day, metric, bucket, n) "
                               "VALUES ('r', $1, $2, 'd', $3, $4)", agency, day + dt.timedelta(days=b % 3), b, n)
    overall, per = await stats.service_levels(pool, side="r", agencies=None, since=day,
                                              until=day + dt.timedelta(days=2))
    whole: dict[int, int] = {}
    for agency, hist in hists.items():
        for q in (50, 90, 99):
            assert per[agency]["delivery"][f"p{q}_s"] == stats.percentile(hist, q), (agency, q)
        for b, n in hist.items():
            whole[b] = whole.get(b, 0) + n
    assert [overall["delivery"][f"p{q}_s"] for q in (50, 90, 99)] == [stats.percentile(whole, q) for q in (50, 90, 99)]
    assert overall["delivery"]["count"] == sum(whole.values())


async def test_gateway_stats_roll_brings_the_rollups_up_to_date(make_client, database_url, workdir):
    client = await make_client()
    await send(client, OPM, (CMI,), "cli-1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_DATA_DIR": str(workdir), "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway.cli.main", "stats", "roll"],
                                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # (the app's own job may have rolled the letter first: then the command had nothing left to do)
    assert re.search(r"สถิติเป็นปัจจุบันแล้ว .*: [01] audit events rolled up", done.stdout), done.stdout
    pool = client.app[keys.POOL]
    assert await pool.fetchval("SELECT letters FROM stats_daily WHERE side = 's' AND agency = $1", OPM) == 1


def test_a_period_is_covered_by_the_fewest_whole_months_weeks_and_days():
    d = dt.date
    for since, until in ((d(2026, 11, 1), d(2026, 11, 30)), (d(2026, 10, 17), d(2026, 11, 15)),
                         (d(2026, 11, 16), d(2026, 11, 22)), (d(2026, 11, 18), d(2026, 11, 24)),
                         (d(2025, 12, 20), d(2026, 3, 10)), (d(2026, 11, 22), d(2026, 11, 22)),
                         (d(2024, 2, 1), d(2024, 2, 29)), (d(2026, 1, 1), d(2026, 12, 31))):
        for sealed in (until, until - dt.timedelta(days=10), since, None):
            c = stats.cover(since, until, sealed)
            days: list[dt.date] = list(c.days)
            for m in c.months:
                nxt = (m.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
                assert m.day == 1 and nxt - dt.timedelta(days=1) <= sealed  # whole, and written
                days += [m + dt.timedelta(days=i) for i in range((nxt - m).days)]
            for w in c.weeks:
                assert w.weekday() == 0 and w + dt.timedelta(days=6) <= sealed
                days += [w + dt.timedelta(days=i) for i in range(7)]
            want = [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]
            assert sorted(days) == want, (since, until, sealed)  # every day exactly once, none outside
    assert stats.cover(d(2026, 11, 1), d(2026, 11, 30), d(2026, 12, 5)) == stats.Cover([d(2026, 11, 1)], [], [])
    assert stats.cover(d(2026, 11, 16), d(2026, 11, 22), d(2026, 11, 22)) == stats.Cover([], [d(2026, 11, 16)], [])
    # not sealed yet: the days
    assert stats.cover(d(2026, 11, 16), d(2026, 11, 22), d(2026, 11, 21)).days[6] == d(2026, 11, 22)
    month = stats.cover(d(2026, 10, 17), d(2026, 11, 15), d(2026, 12, 5))  # 1 + 2 weeks + 15 days, not 30
    assert len(month.months) + len(month.weeks) + len(month.days) <= 8, month
    year = stats.cover(d(2026, 1, 1), d(2026, 12, 31), d(2026, 12, 31))
    assert (len(year.months), year.weeks, year.days) == (12, [], [])


async def test_weeks_and_months_answer_as_their_days(make_client, clock):
    """Letters over six weeks across a month's end: every period read through whole weeks and months
    gives the rows that its single days give, and every span is the sum of its days."""

    client = await make_client()
    pool = client.app[keys.POOL]
    rng = random.Random(20)
    for i in range(30):  # from Sunday 22 November 2569 to mid-January, one letter every ~1.8 days
        await send(client, OPM if i % 3 else KKN, (CMI, KKN) if i % 2 else (CMI,), f"w-{i}")
        clock.advance(rng.randint(30, 4000))
        await take(client, CMI, f"w-{i}")
        if i % 4 == 0:
            clock.advance(rng.randint(60, 90000))
            await answer(client, CMI, OPM if i % 3 else KKN, f"w-{i}", NotifierKind.RECEIVED)
        clock.advance(rng.randint(86400, 2 * 86400))
    await client.app[keys.STATS_JOB].run_now()
    assert await stats.check_against_full_scan(pool) == []
    assert await pool.fetchval("SELECT count(DISTINCT first) FROM stats_spans WHERE span = 'm'") >= 2
    d = dt.date
    for since, until in ((d(2026, 11, 23), d(2026, 12, 31)), (d(2026, 12, 1), d(2026, 12, 31)),
                         (d(2026, 11, 20), d(2027, 1, 20)), (d(2026, 11, 30), d(2026, 12, 13))):
        c = stats.cover(since, until, await pool.fetchval("SELECT spans_through FROM stats_watermark"))
        assert c.months or c.weeks, (since, until)  # the spans are really read
        each_day = [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]
        for side in ("s", "r"):
            for name in ("stats_levels", "stats_agency_totals"):
                spanned = await pool.fetch(queries[name], side, None, c.days, c.weeks, c.months)
                daily = await pool.fetch(queries[name], side, None, each_day, [], [])
                assert spanned and sorted(map(tuple, spanned), key=repr) == sorted(map(tuple, daily), key=repr), (
                    name, side, since, until)


def _reference_service(overall, per, totals, *, limit, slowest):
    """The page's choice of agencies as the rule says it (the rule stats_service implements in SQL)."""

    def entry(code):
        t = totals.get(code, {})
        return {"agency": code, **{k: int(t.get(k) or 0) for k in stats.COUNTS},
                **(per.get(code) or stats.empty_levels())}

    codes = set(per) | set(totals)
    busiest = sorted(codes, key=lambda c: (-int(totals.get(c, {}).get("letters") or 0), c))[:limit]
    timed = [c for c in per if per[c]["delivery"]["p90_s"] is not None]
    slow = sorted(timed, key=lambda c: (-per[c]["delivery"]["p90_s"], -int(totals.get(c, {}).get("delivered") or 0),
                                        c))[:slowest]
    silent = sorted(c for c, t in totals.items() if t["delivered"] and not t["answered"] and not t["registered"])
    return stats.Service(overall=overall, busiest=[entry(c) for c in busiest], slowest=[entry(c) for c in slow],
                         silent=[entry(c) for c in silent[:limit]], agencies_total=len(codes),
                         silent_total=len(silent))


async def test_the_service_page_ranks_in_sql_as_the_rule_says(pool):
    """stats_service (one statement, only the agencies shown) chooses and ranks the busiest, the slowest
    and the silent as the rule written plainly over every agency's levels and counts, ties included."""
    rng = random.Random(2020)
    first = dt.date(2026, 10, 26)  # a Monday: the period below is read through weeks, a month and days
    days = [first + dt.timedelta(days=i) for i in range(45)]
    latency, daily = [], []
    for i in range(120):
        agency = f"{1550100000 + i}"
        for day in rng.sample(days, rng.randint(1, 6)):
            delivered = rng.choice((0, 1, 2, 3))
            answered = rng.choice((0, 0, 1))
            daily.append(("r", agency, day, rng.randint(0, 4), delivered, rng.choice((0, 0, 1)), answered,
                          rng.choice((0, 0, 0, 1))))
            for metric in ("d", "a", "g") if delivered else ():
                for b in rng.sample((3, 8, 8, 12, 20, 46, 47), rng.randint(1, 2)):
                    latency.append(("r", agency, day, metric, b, rng.randint(1, 3)))
    daily = list({(s, a, d): (s, a, d, *rest) for s, a, d, *rest in daily}.values())
    latency = list({(s, a, d, m, b): (s, a, d, m, b, n) for s, a, d, m, b, n in latency}.values())
    await pool.executemany("INSERT INTO stats_daily (side, agency, day, letters, delivered, dead, answered, "
                           "registered) VALUES ($1::text::\"char\", $2, $3, $4, $5, $6, $7, $8)", daily)
    await pool.executemany("INSERT INTO stats_latency (side, agency, day, metric, bucket, n) "
                           "VALUES ($1::text::\"char\", $2, $3, $4::text::\"char\", $5, $6)", latency)
    # every week and month written as the rollup job seals them: the sums of their days
    sealed = days[-1] + dt.timedelta(days=40)
    assert await pool.fetchval(queries["stats_seal_spans"], sealed) > 0
    assert await pool.fetch(queries["stats_spans_differences"]) == []
    for since, until, limit, slowest in ((days[0], days[-1], 100, 20), (days[3], days[40], 7, 5),
                                         (days[6], days[12], 10, 3), (days[0], days[-1], 1000, 1000)):
        c = stats.cover(since, until, sealed)
        assert bool(c.weeks or c.months) == (since != days[6]), c  # spans read (days only: the third)
        overall, per = await stats.service_levels(pool, side="r", agencies=None, since=since, until=until)
        totals = await stats.agency_totals(pool, side="r", agencies=None, since=since, until=until)
        want = _reference_service(overall, per, totals, limit=limit, slowest=slowest)
        got = await stats.service(pool, side="r", agencies=None, since=since, until=until, limit=limit,
                                  slowest=slowest)
        assert got.overall == want.overall
        assert [r["agency"] for r in got.slowest] == [r["agency"] for r in want.slowest], (since, until)
        assert got == want, (since, until, limit, slowest)
        assert want.busiest and want.slowest and want.silent  # the data makes each list


async def test_a_fact_that_comes_after_its_week_and_month_were_sealed_is_added_to_them(make_client, clock):
    """Sealing writes a week or month once from its days; a fact rolled up later (a backlog, a round
    across midnight) goes to its sealed spans too, so spans and days still agree."""
    client = await make_client()
    pool = client.app[keys.POOL]
    later = clock.now() + dt.timedelta(days=40)
    # nothing to roll yet: seals every week and month up to 39 days on (catch_up: a round that got the lock)
    await stats.catch_up(pool, now=later)
    sealed = await pool.fetchval("SELECT spans_through FROM stats_watermark")
    assert sealed == (later + dt.timedelta(hours=7)).date() - dt.timedelta(days=1)
    assert await pool.fetchval("SELECT count(*) FROM stats_spans") == 0
    await send(client, OPM, (CMI, KKN), "late-1")
    clock.advance(300)
    await take(client, CMI, "late-1")
    await answer(client, CMI, OPM, "late-1", NotifierKind.RECEIVED)
    await stats.catch_up(pool, now=later)
    assert await stats.check_against_full_scan(pool) == []
    week = await pool.fetch("SELECT side::text, agency, letters, delivered, answered FROM stats_spans "
                            "WHERE span = 'w' ORDER BY 1, 2")
    assert [tuple(r) for r in week] == [("r", CMI, 1, 1, 1), ("r", KKN, 1, 0, 0), ("s", OPM, 1, 1, 1)]
    assert await pool.fetchval("SELECT sum(n) FROM stats_latency_spans WHERE span = 'm' AND metric = 'd'") == 2
    # sealing never moves back, nor writes a span twice
    assert await pool.fetchval(queries["stats_seal_spans"], sealed - dt.timedelta(days=60)) == 0
    await stats.catch_up(pool, now=later + dt.timedelta(days=2))
    assert await pool.fetchval("SELECT spans_through FROM stats_watermark") == sealed + dt.timedelta(days=2)
    assert await stats.check_against_full_scan(pool) == []
