"""Read-only queries for auditors and the console: letter search, events, timelines, queues.

Every listing is keyset-paginated (never OFFSET): the caller passes the key of
the last row it showed and gets the next page in the same order. The search
queries run with ``plan_cache_mode = force_custom_plan`` so that PostgreSQL
plans each call for its actual filters (a substring pattern reaches the
pg_trgm GIN index; absent filters disappear) instead of one generic plan.

The trigram indexes of subjects and letter numbers are on ``message_search``
(migration 0019), not on ``messages``: accepting a letter does not pay for
them. :func:`fill` copies each message's subject and number there after commit,
in batches (``gateway.exchange.search_index`` runs it every second in every
gateway process), up to the audit chain's head: the sealer's fence makes every
event up to it final, so no letter committed late is skipped. The search adds
the letters accepted after that watermark itself (their ``message.accepted``
events), so it lags by nothing: a letter is found as soon as it is accepted,
from the table within about two seconds (the sealer's interval, then the
filler's), before that by testing the few letters accepted since.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.storage import Connection, Executor
from gateway.storage.db import queries


@dataclass(frozen=True)
class LetterFilter:
    agency: str | None = None
    """Sender or recipient agency code."""
    since: dt.datetime | None = None
    """Accepted at or after."""
    until: dt.datetime | None = None
    """Accepted before."""
    number: str | None = None
    """Substring of the letter number (ที่)."""
    subject: str | None = None
    """Substring of the subject (เรื่อง), Thai or English."""
    status: str | None = None
    """Some delivery of the letter has this status."""
    message_type: str | None = None
    """letter, notifier or receipt."""


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _custom(conn: Connection) -> None:
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


async def letters(pool: asyncpg.Pool, f: LetterFilter, *, after: tuple[dt.datetime, int] | None,
                  limit: int) -> list[dict[str, Any]]:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await _custom(conn)
        # a status filter walks the deliveries in that status (see search_messages_by_status); a
        # substring alone goes through message_search's trigram indexes (search_messages_text)
        name = ("search_messages_by_status" if f.status else
                "search_messages_text" if f.number or f.subject else "search_messages")
        watermark = [await conn.fetchval(queries["message_search_watermark"])] if name == "search_messages_text" else []
        rows = await conn.fetch(
            queries[name], f.agency, f.since, f.until,
            like_escape(f.number) if f.number else None, like_escape(f.subject) if f.subject else None,
            f.status, after[0] if after else None, after[1] if after else None, f.message_type, limit, *watermark)
    return [dict(r) for r in rows]


async def events(pool: asyncpg.Pool, *, kind: str | None = None, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, message_pk: int | None = None, before_seq: int | None = None,
                 agency: str | None = None, number: str | None = None, subject: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Events newest first; ``agency`` acted or sent/received the event's letter, ``number`` and
    ``subject`` are substrings of that letter's number and subject (Thai or English)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await _custom(conn)
        rows = await conn.fetch(queries["search_events"], kind, since, until, message_pk, before_seq, limit, agency,
                                like_escape(number) if number else None, like_escape(subject) if subject else None)
    return [dict(r) for r in rows]


async def message(db: Executor, pk: int) -> dict[str, Any] | None:
    row = await db.fetchrow(queries["message_full"], pk)
    return None if row is None else dict(row)


async def related(db: Executor, message_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["message_related"], message_id)]


async def visible_to(db: Executor, pk: int, agency: str) -> bool:
    return bool(await db.fetchval(queries["message_visible_to"], pk, agency))


async def message_events(db: Executor, pk: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["audit_events_for_message"], pk)]


async def queue_by_destination(db: Executor) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["queue_by_destination"])]


async def dead_letters(db: Executor, *, after: tuple[dt.datetime, uuid.UUID] | None, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["dead_letters"], after[0] if after else None,
                                            after[1] if after else None, limit)]


async def fill(db: Executor, *, batch: int = 50_000) -> int | None:
    """One round of filling ``message_search`` (SQL ``message_search_fill``): the messages accepted up to the
    audit chain's head (at most ``batch`` sequence numbers past the watermark); the new watermark, or
    ``None`` when another process holds the round."""
    return await db.fetchval(queries["message_search_fill"], batch)
