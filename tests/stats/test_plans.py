"""The statistics pages' questions are planned for their own arguments.

asyncpg prepares every statement, and after five runs of one PostgreSQL may keep a generic plan for
all arguments. A generic plan of these questions cannot tell "every agency" (``$2`` NULL) from a
ministry's three, nor a period of 2 days from one of 30: at 1M letters the ministry's volumes took
40-60 ms with it instead of 0.4 ms (``bench/console.py``). No timing here: PostgreSQL says which
plans it used (``pg_prepared_statements``).
"""

from __future__ import annotations

import datetime as dt

from gateway.storage import db, stats
from gateway.storage.db import queries


async def test_the_pages_questions_never_run_a_generic_plan(database_url):
    day = dt.date(2026, 11, 20)
    start = dt.datetime(2026, 11, 19, 17, tzinfo=dt.UTC)
    pool = await db.create_pool(database_url, min_size=1, max_size=1)  # one session: its statements
    try:
        await pool.execute("INSERT INTO stats_daily (side, agency, day, letters) "
                           "SELECT 'r', (1550100000 + g)::text, $1, 1 FROM generate_series(1, 300) g", day)
        for i in range(12):
            agencies = None if i % 2 else ["1550100001", "1550100002"]
            rows = await stats.volumes(pool, side="r", agencies=agencies, since=day, until=day, grain="day",
                                       start=start, end=start + dt.timedelta(days=1))
            assert rows[0]["letters"] == (300 if agencies is None else 2)
            await stats.service(pool, side="r", agencies=agencies, since=day - dt.timedelta(days=i), until=day,
                                limit=10, slowest=5)
        plans = {r["statement"]: (r["generic_plans"], r["custom_plans"])
                 for r in await pool.fetch("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")}
        for name in ("stats_volumes_daily", "stats_service"):
            assert plans[queries[name]] == (0, 12), name
        # for those questions' transactions only
        assert await pool.fetchval("SELECT current_setting('plan_cache_mode')") == "auto"
    finally:
        await pool.close()
