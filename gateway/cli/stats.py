"""``gateway stats roll``: bring the statistics rollups up to date now (the job in ``gateway serve``
does it every few seconds; see :mod:`gateway.storage.stats`)."""

from __future__ import annotations

import argparse
import time

from gateway.cli.common import now, open_pool
from gateway.storage import stats


async def stats_roll(args: argparse.Namespace) -> int:
    _settings, pool = await open_pool(args)
    try:
        before = await pool.fetchval("SELECT events FROM stats_watermark")
        t0 = time.perf_counter()
        mark = await stats.catch_up(pool, now=now())
        events = await pool.fetchval("SELECT events FROM stats_watermark") - before
    finally:
        await pool.close()
    print(f"สถิติเป็นปัจจุบันแล้ว (statistics up to date): {events} audit events rolled up in "
          f"{time.perf_counter() - t0:.1f} s, watermark {mark}")
    return 0
