"""Audit events: every state change, appended in the same transaction as the change."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from gateway.storage import Executor
from gateway.storage.db import queries


async def append(db: Executor, *, at: dt.datetime, actor: str, kind: str, message_pk: int | None = None,
                 delivery_id: uuid.UUID | None = None, details: dict[str, Any] | None = None) -> None:
    await db.execute(queries["insert_audit"], at, actor, kind, message_pk, delivery_id, details or {})
