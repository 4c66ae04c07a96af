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

    async def run_once(self) -> int | None:
        """One round; the watermark after it (``None``: another process had the round)."""
        return await search.fill(self.pool, batch=self.batch)

    async def run(self) -> None:
        last: int | None = None
        while not self._stop.is_set():
            try:
                wm = await self.run_once()
                if wm is not None and last is not None and wm - last >= self.batch:
                    last = wm
                    continue  # a backlog: the next batch at once
                last = wm
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be away: try again next round
                log.warning("search index round failed; retrying", error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()


async def search_index_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: start the job after the database, stop it at exit."""
    job = SearchIndexJob(app[keys.POOL])
    task = asyncio.create_task(job.run())
    yield
    job.stop()
    await task
