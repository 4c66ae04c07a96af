"""Withdrawing a letter: only what is not delivered yet, or what its recipient rejected or marked invalid."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from gateway.core.clock import Clock
from gateway.core.errors import Conflict, NotFound
from gateway.storage import Connection, audit, letters, messages


class Withdrawals:
    def __init__(self, *, pool: asyncpg.Pool, clock: Clock) -> None:
        self.pool = pool
        self.clock = clock

    async def withdraw(self, sender: str, *, letter_number: str, letter_date: dt.date, recipient: str) -> int:
        """Withdraw a letter (by number and date, the e-CMS way) from one recipient; returns how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await letters.withdraw(conn, sender, letter_number=letter_number, letter_date=letter_date,
                                          recipient=recipient)
            return await self._record(conn, sender, rows)

    async def withdraw_message(self, sender: str, message_id: str,
                               recipients: Sequence[str] | None = None) -> int:
        """Withdraw a letter by message id from some or all recipients; returns how many deliveries."""
        if await messages.get(self.pool, sender, message_id) is None:
            raise NotFound(f"no message {message_id} from {sender}", code="message.not_found")
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await letters.withdraw_by_id(conn, sender, message_id, recipients)
            return await self._record(conn, sender, rows)

    async def _record(self, conn: Connection, actor: str, rows: Sequence[asyncpg.Record]) -> int:
        """A letter a registry received or accepted is on its file and stays. All or nothing: if one
        targeted delivery may not be withdrawn, none is (409)."""
        blocked = [r for r in rows if not r["withdrawable"]]
        if blocked:
            which = ", ".join(f"{r['recipient']} ({r['answer'] or 'no answer'})" for r in blocked)
            raise Conflict(f"letter {rows[0]['message_id']} was delivered and not rejected or marked invalid "
                           f"by {which}; only an undelivered, rejected or invalid letter can be withdrawn",
                           code="message.not_withdrawable", field="recipients")
        now = self.clock.now()
        for r in rows:
            await audit.append(conn, at=now, actor=actor, kind="delivery.withdrawn",
                               message_pk=r["message_pk"], delivery_id=r["id"],
                               details={"message_id": r["message_id"], "recipient": r["recipient"],
                                        "was": r["status"], "answer": r["answer"]})
        return len(rows)
