"""The statistics rollup job inside ``gateway serve`` (design in :mod:`gateway.storage.stats`).

Every gateway process runs one :class:`StatsJob`; they share the work through an advisory
lock (the process that holds it rolls, the others skip that round), so ``--workers N`` and
several machines roll each audit event exactly once. A round reads only events after the
watermark, so its cost follows the traffic since the last round, not the size of the tables.
:meth:`StatsJob.run_now` rolls on demand (tests, the benchmark, a console user who wants
figures that include the last few seconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.clock import Clock
from gateway.core.rounds import run_rounds
from gateway.storage import stats

log = structlog.get_logger(__name__)

#: Seconds between two rounds of the job.
INTERVAL_S = 5.0


class StatsJob:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, *, interval_s: float = INTERVAL_S) -> None:
        self.pool = pool
        self.clock = clock
        self.interval_s = interval_s
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    async def run_once(self) -> stats.RollResult:
        async with self._lock:
            return await stats.roll(self.pool, now=self.clock.now())

    async def run_now(self) -> int:
        """Roll until every final event is counted; the watermark."""
        async with self._lock:
            return await stats.catch_up(self.pool, now=self.clock.now())

    async def _round(self) -> bool:
        r = await self.run_once()
        if r.events:
            log.debug("statistics rolled up", events=r.events, watermark=r.watermark)
        return r.more

    async def run(self) -> None:
        await run_rounds(self._round, self._stop, interval_s=self.interval_s, what="statistics rollup", log=log)

    def stop(self) -> None:
        self._stop.set()


async def stats_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: start the job after the database, stop it at exit."""
    job = StatsJob(app[keys.POOL], app[keys.CLOCK])
    app[keys.STATS_JOB] = job
    task = asyncio.create_task(job.run())
    yield
    job.stop()
    await task
