"""Audit events: every state change, appended in the same transaction as the change."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from gateway.db import queries
from gateway.storage import Executor


async def append(db: Executor, *, at: dt.datetime, actor: str, kind: str, message_pk: int | None = None,
                 delivery_id: uuid.UUID | None = None, details: dict[str, Any] | None = None) -> None:
    # The pool's jsonb codec encodes the object; round-trip through json first so values
    # such as datetimes become strings (encoding here as well stored a JSON *string*).
    await db.execute(queries["insert_audit"], at, actor, kind, message_pk, delivery_id,
                     json.loads(json.dumps(details or {}, ensure_ascii=False, default=str)))
