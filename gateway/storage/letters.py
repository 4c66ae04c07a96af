"""The business cycle of letters: finding, answering, withdrawing, stamping, and what was sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from gateway.storage import Executor
from gateway.storage.db import queries


async def history(db: Executor, message_pk: int) -> list[asyncpg.Record]:
    """Every delivery event of a message in order: ``delivery_id``, ``kind``, ``at``, ``actor``."""
    return await db.fetch(queries["delivery_history"], message_pk)


async def later_sends(db: Executor, sender: str, letter_number: str, letter_date: dt.date | None,
                      accepted_at: dt.datetime, pk: int) -> list[asyncpg.Record]:
    """Letters ``sender`` sent again under the same number and date after this one."""
    return await db.fetch(queries["later_sends"], sender, letter_number, letter_date, accepted_at, pk)


async def business_answers(db: Executor, message_pk: int, recipients: Sequence[str]) -> list[asyncpg.Record]:
    """Each recipient registry's latest answer to the letter (``sender`` is the answering agency)."""
    return await db.fetch(queries["business_answers"], message_pk, list(recipients))


async def find(db: Executor, *, letter_number: str, letter_date: dt.date, sender: str | None,
               recipient: str | None) -> asyncpg.Record | None:
    """The latest letter by number and date still live for ``recipient`` (``message_id``, ``sender``,
    ``recipients``)."""
    return await db.fetchrow(queries["find_letter"], letter_number, letter_date, sender, recipient)


async def withdraw(db: Executor, sender: str, *, letter_number: str, letter_date: dt.date,
                   recipient: str) -> list[asyncpg.Record]:
    """Withdraw by number and date from one recipient, all or nothing (see the query)."""
    return await db.fetch(queries["withdraw"], sender, letter_number, letter_date, recipient)


async def withdraw_by_id(db: Executor, sender: str, message_id: str,
                         recipients: Sequence[str] | None) -> list[asyncpg.Record]:
    """Withdraw by message id from ``recipients`` (all when ``None``), all or nothing."""
    return await db.fetch(queries["withdraw_by_id"], sender, message_id,
                          None if recipients is None else list(recipients))


async def outbound(db: Executor, sender: str, limit: int) -> list[asyncpg.Record]:
    """What ``sender`` sent lately, newest first, with every delivery's status."""
    return await db.fetch(queries["outbound"], sender, limit)


async def letter_for_notifier(db: Executor, *, letter_sender: str, ref_to_message_id: str | None,
                              letter_number: str | None, letter_date: dt.date | None,
                              answering: str) -> asyncpg.Record | None:
    """The letter a notifier answers (``pk``, ``message_id``, ``received``)."""
    return await db.fetchrow(queries["letter_for_notifier"], letter_sender, ref_to_message_id, letter_number,
                             letter_date, answering)


async def save_stamp(db: Executor, *, letter_pk: int, recipient: str, registry_number: str, notifier_pk: int,
                     pdf: bytes, at: dt.datetime) -> None:
    await db.execute(queries["upsert_stamp"], letter_pk, recipient, registry_number, notifier_pk, pdf, at)


async def stamped_pdf(db: Executor, *, agency: str, message_id: str, recipient: str) -> bytes | None:
    """The stamped main PDF, for the letter's sender or the stamping recipient."""
    row = None
    if agency == recipient:
        row = await db.fetchrow(queries["stamped_letter_of_recipient"], message_id, recipient)
    if row is None:
        row = await db.fetchrow(queries["stamped_letter"], agency, message_id, recipient)
    return None if row is None else bytes(row["pdf"])


