"""Group commit: concurrent callers share one database transaction.

Each accepted letter must be durable before its 202 is sent, and a durable
commit costs a WAL flush and a round trip. Under load many submissions are in
flight at once; :class:`GroupCommitter` lets them share: a caller enqueues its
item and awaits a future; up to ``max_parallel`` writer tasks each take
everything queued (up to ``max_batch``) and write it in one statement. There
is no timer: an idle gateway writes a lone letter at once, a busy one batches
exactly as much as arrived while the previous write was in flight, so latency
never grows to wait for a batch to fill.

If a batch fails for a reason other than a lost connection, its items are
written one by one, so a single bad item cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    def __init__(self, write_many: Callable[[Sequence[T]], Awaitable[list[R]]],
                 write_one: Callable[[T], Awaitable[R]], *, max_batch: int = 128, max_parallel: int = 4,
                 passthrough: tuple[type[BaseException], ...] = ()) -> None:
        self._write_many = write_many
        self._write_one = write_one
        self.max_batch = max_batch
        self.max_parallel = max_parallel
        self._passthrough = passthrough
        self._queue: list[tuple[T, asyncio.Future]] = []
        self._writers = 0
        #: Sizes of the batches written (for benchmarks and tests).
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._writers < self.max_parallel:
            self._writers += 1
            asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                await self._write(batch)
        finally:
            self._writers -= 1

    async def _write(self, batch: list[tuple[T, asyncio.Future]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._write_many([item for item, _ in batch])
        except self._passthrough as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        except BaseException as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            await asyncio.gather(*(self._one(item, fut) for item, fut in batch))
            return
        for (_, fut), result in zip(batch, results, strict=False):
            if not fut.done():
                fut.set_result(result)

    async def _one(self, item: T, fut: asyncio.Future) -> None:
        try:
            result = await self._write_one(item)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(result)
