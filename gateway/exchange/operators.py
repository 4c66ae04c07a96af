"""What operators do to the exchange: requeue a dead delivery."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import asyncpg
import structlog

from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.errors import Conflict
from gateway.core.metrics import Metrics
from gateway.storage import audit, deliveries

log = structlog.get_logger(__name__)


class Operators:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, clock: Clock, metrics: Metrics,
                 ttl_s: float, wake: Callable[[], None]) -> None:
        self.pool = pool
        self.directory = directory
        self.clock = clock
        self.metrics = metrics
        self.ttl_s = ttl_s
        self._wake = wake

    async def requeue(self, delivery_id: uuid.UUID, *, actor: str) -> None:
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await deliveries.requeue(conn, delivery_id, now, now + dt.timedelta(seconds=self.ttl_s))
            if row is None:
                raise Conflict(f"delivery {delivery_id} is not dead or waiting",
                               code="delivery.not_requeueable")
            await audit.append(conn, at=now, actor=actor, kind="delivery.requeued",
                               message_pk=row["message_pk"], delivery_id=delivery_id,
                               details={"recipient": row["recipient"]})
        self.metrics.requeued.inc()
        self._wake()
