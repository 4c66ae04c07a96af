"""Shared state for the Prometheus scrape, read from the database (see :mod:`gateway.core.metrics`).

Three small statements in one read-only transaction, at most once per
``STATE_TTL_S`` per process: open deliveries grouped by destination and state
(the partial index ``deliveries_open``; per state the :data:`PER_STATE`
destinations waiting longest by name, totals over all), failing destinations,
and the audit events after the chain head. A database that does not answer within
``timeout_s`` gives ``SharedState(database_up=False)``: the scrape still
answers, and ``gateway_database_up`` says 0. Measured (bench/metrics.py, 2 cores): 205 ms p50,
312 ms p99 with 200,000 open deliveries to 8,000 destinations beside 2,000,000 delivered; the
read grows with the open deliveries only, so 8 s leaves room for millions waiting (below
Prometheus's default 10 s scrape timeout).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import structlog

from gateway.core.metrics import DestinationFigure, QueueFigure, QueueTotal, SharedState
from gateway.storage.db import TRANSIENT_ERRORS, queries

log = structlog.get_logger(__name__)


#: Destinations listed by name per open state: those whose oldest delivery is oldest. The state's totals
#: cover every destination. 8,000 destinations with a backlog in 4 states took 1.1 s of Python to render
#: and 4.7 MB of text per scrape (bench/metrics.py) before this cap.
PER_STATE = 200


async def read(pool: asyncpg.Pool, now: dt.datetime, *, timeout_s: float = 8.0,
               per_state: int = PER_STATE) -> SharedState:
    try:
        return await asyncio.wait_for(_read(pool, now, per_state), timeout=timeout_s)
    except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
        log.warning("shared-state gauges unavailable", error=f"{type(exc).__name__}: {exc}")
        return SharedState(database_up=False)


async def _read(pool: asyncpg.Pool, now: dt.datetime, per_state: int) -> SharedState:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        queues = await conn.fetch(queries["gauges_queues"], now, per_state)
        failing = await conn.fetch(queries["gauges_destinations"], now)
        audit = await conn.fetchrow(queries["gauges_audit"], now)
        evidence = await conn.fetchrow(queries["gauges_evidence"], now)
    assert audit is not None and evidence is not None  # aggregate rows always come back
    return SharedState(
        database_up=True,
        queues=tuple(QueueFigure(destination=r["recipient"], state=r["status"], count=r["n"],
                                 oldest_s=r["oldest_s"]) for r in queues),
        totals=tuple({r["status"]: QueueTotal(state=r["status"], deliveries=r["total"],
                                              destinations=r["destinations"]) for r in queues}.values()),
        destinations=tuple(DestinationFigure(destination=r["agency"], failures=r["consecutive_failures"],
                                             failing_s=r["failing_s"], circuit_open=r["circuit_open"])
                           for r in failing),
        audit_unsealed=audit["unsealed"], audit_lag_s=audit["lag_s"],
        validation_pending=evidence["validation_pending"], validation_oldest_s=evidence["validation_oldest_s"],
        unstamped=evidence["unstamped"], unstamped_oldest_s=evidence["unstamped_oldest_s"])
