"""The directory in force in this process, kept equal to the database's.

At start-up the configured directory (file or object) is synchronised into PostgreSQL
(:func:`gateway.storage.directory.sync_from_start`) and the database's directory is put in
force. Then a connection LISTENs on ``gateway_directory``: a change committed by any process
(API, CLI, console, another worker) is reloaded here and swapped in whole
(:meth:`Directory.replace`). A poll every few seconds covers a notification lost with a
dropped connection (a database restart or failover).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.lists import DistributionList, check_against
from gateway.exchange.route_notices import RouteNotices
from gateway.storage import db
from gateway.storage import directory as store
from gateway.storage import lists as lists_store

log = structlog.get_logger(__name__)


class LiveDirectory:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, clock: Clock, poll_s: float = 5.0,
                 notices: RouteNotices | None = None) -> None:
        self.pool = pool
        #: Tells agencies whose route changed, over the old and the new route.
        self.notices = notices
        self.directory = directory
        self.clock = clock
        self.poll_s = poll_s
        self._listening: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reloading = asyncio.Lock()

    async def start(self, *, actor: str = "gateway", lists: Sequence[DistributionList] = ()) -> None:
        """Synchronise the configured directory (and the distribution lists its file names) into the
        database, then put the database's directory in force and follow its changes."""
        async with self.pool.acquire() as conn:
            version = await store.sync_from_start(conn, self.directory, at=self.clock.now(), actor=actor)
            if lists:
                check_against(lists, self.directory)
                await lists_store.upsert(conn, lists, at=self.clock.now())
        if version:
            log.info("directory imported at start-up", version=version, agencies=len(self.directory))
        await self._listen()  # before reading: a change committed from now on is not missed
        await self.reload()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._unlisten()

    async def reload(self) -> bool:
        """Put the database's directory in force if it is newer than ours. True if it changed."""
        async with self._reloading, self.pool.acquire() as conn:
            if await store.current_version(conn) == self.directory.version:
                return False
            fresh = await store.load(conn)
        if fresh is None or fresh.version <= self.directory.version:
            return False
        before = self.directory.version
        self.directory.replace(fresh)
        log.info("directory in force", version=fresh.version, agencies=len(fresh))
        if self.notices is not None:
            try:
                await self.notices.send(before, fresh.version)
            except db.TRANSIENT_ERRORS as exc:  # another process, or the next start, sends them
                log.warning("route change notices not sent now", error=str(exc))
        return True

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        conn = await self.pool.acquire()
        try:
            await conn.add_listener(store.CHANNEL, self._notified)
        except BaseException:
            await self.pool.release(conn)
            raise
        self._listening = conn

    async def _unlisten(self) -> None:
        conn, self._listening = self._listening, None
        if conn is not None:
            with contextlib.suppress(*db.TRANSIENT_ERRORS):
                await conn.remove_listener(store.CHANNEL, self._notified)
            with contextlib.suppress(*db.TRANSIENT_ERRORS):
                await self.pool.release(conn)

    async def _run(self) -> None:
        while True:
            try:
                if self._listening is None or self._listening.is_closed():
                    await self._unlisten()
                    await self._listen()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                self._wake.clear()
                await self.reload()
            except asyncio.CancelledError:
                raise
            except db.TRANSIENT_ERRORS as exc:
                log.warning("directory listener: database away; retrying", error=str(exc))
                await self._unlisten()
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("directory reload failed; the directory in force is unchanged")
                await asyncio.sleep(self.poll_s)
