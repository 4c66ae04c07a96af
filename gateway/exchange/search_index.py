"""The filler of the console's search table inside ``gateway serve`` (design in :mod:`gateway.storage.search`).

Every gateway process runs one :class:`SearchIndexJob`. A round copies the subject and letter number of
the messages accepted since the last round into ``message_search`` (whose trigram GIN indexes the
console's Thai substring search reads), in one statement, so accepting a letter pays for none of those
indexes. The processes share the work through a row lock (the one that gets it fills, the others skip
that round). The search never waits for this job: it adds the letters accepted after the watermark itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.rounds import run_rounds
from gateway.storage import search

log = structlog.get_logger(__name__)

#: Seconds between two rounds (the audit sealer runs every 0.25 s; a round costs one statement).
INTERVAL_S = 1.0


class SearchIndexJob:
    def __init__(self, pool: asyncpg.Pool, *, interval_s: float = INTERVAL_S, batch: int = 50_000) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.batch = batch
        self._stop = asyncio.Event()
        self._last: int | None = None

    async def run_once(self) -> int | None:
        """One round; the watermark after it (``None``: another process had the round)."""
        return await search.fill(self.pool, batch=self.batch)

    async def _round(self) -> bool:
        wm = await self.run_once()
        more = wm is not None and self._last is not None and wm - self._last >= self.batch  # a backlog: at once
        self._last = wm
        return more

    async def run(self) -> None:
        await run_rounds(self._round, self._stop, interval_s=self.interval_s, what="search index round", log=log)

    def stop(self) -> None:
        self._stop.set()


async def search_index_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: start the job after the database, stop it at exit."""
    job = SearchIndexJob(app[keys.POOL])
    task = asyncio.create_task(job.run())
    yield
    job.stop()
    await task
