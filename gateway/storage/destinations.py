"""Per-destination state: failures, backoff (the circuit), kept in the database.

A long outage recovers from here, not from a process's memory; every gateway
process sees the same backoff, and the claim query skips destinations that are
backing off before any network work is done.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from gateway.storage import Executor
from gateway.storage.db import queries


@dataclass(frozen=True)
class DestinationState:
    agency: str
    consecutive_failures: int
    failing_since: dt.datetime | None
    backoff_until: dt.datetime | None
    last_error: str | None
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DestinationState:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def circuit(self, now: dt.datetime) -> str:
        """closed, open (backing off) or half-open (backoff over, next attempt is a probe)."""
        if self.backoff_until is not None and self.backoff_until > now:
            return "open"
        if self.consecutive_failures > 0:
            return "half-open"
        return "closed"


async def backoff_until(db: Executor, agency: str) -> dt.datetime | None:
    """When ``agency``'s backoff ends (``None``: not backing off)."""
    value: dt.datetime | None = await db.fetchval(queries["destination_backoff_until"], agency)
    return value


async def all_states(db: Executor) -> list[DestinationState]:
    return [DestinationState.from_row(r) for r in await db.fetch(queries["destinations"])]
