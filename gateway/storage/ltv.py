"""Long-term validation material in PostgreSQL (migration 0015): items by SHA-256, trust snapshots,
and letters waiting in the validation-pending state (see :mod:`pki.ltv`, :mod:`gateway.exchange.pending`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.storage import Executor, audit
from gateway.storage.db import queries


async def put_items(db: Executor, items: Mapping[str, tuple[str, bytes]], *, at: dt.datetime) -> None:
    """Store each item once (``sha256 hex -> (kind, bytes)``); items already there are left alone."""
    if not items:
        return
    shas = list(items)
    await db.execute(queries["ltv_put_items"], [bytes.fromhex(s) for s in shas], [items[s][0] for s in shas],
                     [items[s][1] for s in shas], at)


async def get_items(db: Executor, shas: Iterable[str]) -> dict[str, tuple[str, bytes]]:
    wanted = [bytes.fromhex(s) for s in set(shas)]
    rows = await db.fetch(queries["ltv_get_items"], wanted)
    return {bytes(r["sha256"]).hex(): (r["kind"], bytes(r["data"])) for r in rows}


@dataclass(frozen=True)
class TrustVersion:
    version: int
    sha256: str
    at: dt.datetime


async def trust_version(db: asyncpg.Pool, sha256: str, items: Mapping[str, tuple[str, bytes]], *,
                        at: dt.datetime, actor: str = "gateway") -> TrustVersion:
    """The version of the trust snapshot ``sha256``: the latest one when it is unchanged, else a new
    version, recorded with its items and a ``trust.snapshot`` audit event in one transaction."""


    async with db.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE trust_snapshots IN SHARE ROW EXCLUSIVE MODE")
        latest = await conn.fetchrow(queries["ltv_trust_latest"])
        if latest is not None and bytes(latest["sha256"]).hex() == sha256:
            return TrustVersion(latest["version"], sha256, latest["at"])
        await put_items(conn, items, at=at)
        version = await conn.fetchval(queries["ltv_trust_insert"], bytes.fromhex(sha256), at)
        doc = json.loads(items[sha256][1])
        await audit.append(conn, at=at, actor=actor, kind="trust.snapshot",
                           details={"version": version, "sha256": sha256, "anchors": doc["anchors"],
                                    "intermediates": doc["intermediates"],
                                    "previous": bytes(latest["sha256"]).hex() if latest else None})
        return TrustVersion(version, sha256, at)


async def trust_by_sha(db: Executor, sha256: str) -> TrustVersion | None:
    row = await db.fetchrow(queries["ltv_trust_by_sha"], bytes.fromhex(sha256))
    return None if row is None else TrustVersion(row["version"], sha256, row["at"])


@dataclass(frozen=True)
class Pending:
    """A letter waiting for its author's revocation check (validation-pending)."""

    message_pk: int
    sender: str
    message_id: str
    received: bytes
    deliveries: list[dict[str, Any]]
    since: dt.datetime
    deadline: dt.datetime
    checks: int
    letter_number: str | None = None
    letter_date: dt.date | None = None
    subject: str | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Pending:
        return cls(message_pk=row["message_pk"], sender=row["sender"], message_id=row["message_id"],
                   received=bytes(row["received"]), deliveries=list(row["deliveries"]), since=row["since"],
                   deadline=row["deadline"], checks=row["checks"], letter_number=row["letter_number"],
                   letter_date=row["letter_date"], subject=row["subject"])


async def add_pending(db: Executor, message_pk: int, deliveries: Sequence[Mapping[str, Any]], *, since: dt.datetime,
                      deadline: dt.datetime) -> None:
    await db.execute(queries["ltv_pending_insert"], message_pk, [dict(d) for d in deliveries], since, deadline, since)


async def due_pending(conn: Executor, now: dt.datetime, limit: int) -> list[Pending]:
    """Due rows, locked for the caller's transaction (SKIP LOCKED)."""
    return [Pending.from_row(r) for r in await conn.fetch(queries["ltv_pending_due"], now, limit)]


async def backoff_pending(conn: Executor, message_pk: int, next_check: dt.datetime, error: str) -> None:
    await conn.execute(queries["ltv_pending_backoff"], message_pk, next_check, error[:500])


async def release_pending(conn: Executor, p: Pending, now: dt.datetime) -> None:
    """The check completed: create the planned deliveries and remove the pending row."""
    await conn.execute(queries["ltv_release_deliveries"], p.message_pk, now, p.deliveries)
    await conn.execute(queries["ltv_pending_delete"], p.message_pk)


async def drop_pending(conn: Executor, message_pk: int) -> None:
    await conn.execute(queries["ltv_pending_delete"], message_pk)


async def pending_stats(db: Executor) -> tuple[int, dt.datetime | None]:
    row = await db.fetchrow(queries["ltv_pending_stats"])
    return (row["pending"], row["oldest"]) if row is not None else (0, None)


async def directory_entry_at(db: Executor, code: str, version: int) -> dict[str, Any] | None:
    """``code``'s directory entry at ``version`` with the version's record (None if no such version)."""
    row = await db.fetchrow(queries["ltv_directory_entry_at"], code, version)
    if row is None:
        return None
    return {"version": row["version"], "at": row["at"].isoformat(), "actor": row["actor"], "reason": row["reason"],
            "directory_sha256": row["sha256"], "code": code, "entry": row["entry"]}


async def validation_state(db: Executor, message_pk: int) -> dict[str, Any] | None:
    """``{"state": "pending", since, deadline, checks}``, ``{"state": "refused", code}`` or None."""
    row = await db.fetchrow(queries["ltv_validation_state"], message_pk)
    if row is None:
        return None
    if row["since"] is not None:
        return {"state": "pending", "since": row["since"].isoformat(), "deadline": row["deadline"].isoformat(),
                "checks": row["checks"]}
    if row["refused"] is not None:
        return {"state": "refused", "code": row["refused"]}
    return None
