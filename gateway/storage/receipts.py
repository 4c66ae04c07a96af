"""Receipts issued by the gateway, with the receiver's acknowledgement kept as evidence.

They are written with the delivery they acknowledge (``delivery_completed`` in queries.sql)."""

from __future__ import annotations

from gateway.storage import Executor
from gateway.storage.db import queries


async def for_message(db: Executor, message_pk: int) -> list[dict]:
    return [dict(r) for r in await db.fetch(queries["message_receipts"], message_pk)]
