"""Receipts issued by the gateway, with the receiver's acknowledgement kept as evidence."""

from __future__ import annotations

import datetime as dt
import uuid

from gateway.db import queries
from gateway.storage import Executor


async def insert(db: Executor, *, message_pk: int, delivery_id: uuid.UUID | None, kind: str, receipt: bytes,
                 ack: bytes | None, at: dt.datetime) -> int | None:
    """``None`` when a receipt for this delivery exists already (a repeated acknowledgement)."""
    return await db.fetchval(queries["insert_receipt"], message_pk, delivery_id, kind, receipt, ack, at)


async def for_message(db: Executor, message_pk: int) -> list[dict]:
    return [dict(r) for r in await db.fetch(queries["message_receipts"], message_pk)]
