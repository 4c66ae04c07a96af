"""Canonical bytes of an audit event and of a checkpoint, and the chain hash.

Canonical event bytes (version 1): UTF-8 JSON of exactly these keys, sorted,
no whitespace (``separators=(",", ":")``), non-ASCII written as is
(``ensure_ascii=False``)::

    actor        text
    at           UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always 6 fraction digits)
    delivery_id  lower-case UUID text or null
    details      the JSON object as stored (jsonb), keys sorted at every level
    kind         text
    message_pk   integer or null
    seq          integer

Numbers in ``details`` are written as Python's ``json`` writes them; the
gateway only puts strings, integers and booleans there.

:func:`dumps` writes with orjson (a tenth of the CPU) exactly when orjson's bytes are, by
construction, ``json.dumps``'s (:func:`gateway.core.fastjson.orjson_bytes`: only ``dict`` with ``str`` keys,
``list``, ``tuple``, ``str``, 64-bit ``int``, ``bool`` and ``None``; no float, no subclass); anything
else goes to ``json`` as before. ``tests/audit/test_chain_dumps.py`` holds the two writers to the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from gateway.core.fastjson import orjson_bytes

GENESIS = b"\x00" * 32
"""The hash before the first event."""


Row = Mapping[str, Any] | asyncpg.Record
"""An event as a database row or a parsed export line."""


def format_at(at: dt.datetime) -> str:
    utc = at.astimezone(dt.UTC)
    if utc.year < 1000:  # strftime's %Y does not pad every platform's years to four digits: its own way
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # "YYYY-MM-DDTHH:MM:SS.ffffff" + "Z": strftime's bytes at a third of its cost
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def dumps(obj: Any) -> bytes:
    """The one JSON writer for everything hashed, signed or exported."""
    fast = orjson_bytes(obj, sort_keys=True)
    return fast if fast is not None else _json_dumps(obj)


def _json_dumps(obj: Any) -> bytes:
    """What :func:`dumps` always writes: json's canonical form, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_fields(row: Row) -> dict[str, Any]:
    """The hashed fields of an event, from a database row or an export line."""
    at = row["at"]
    delivery = row.get("delivery_id") if hasattr(row, "get") else row["delivery_id"]
    details = row["details"]
    if isinstance(details, str):
        details = json.loads(details)
    return {
        "seq": int(row["seq"]),
        "at": at if isinstance(at, str) else format_at(at),
        "actor": row["actor"],
        "kind": row["kind"],
        "message_pk": None if row["message_pk"] is None else int(row["message_pk"]),
        "delivery_id": None if delivery is None else str(uuid.UUID(str(delivery))),
        "details": details if details is not None else {},
    }


def canonical(row: Row) -> bytes:
    return dumps(event_fields(row))


def leaf_hash(row: Row) -> bytes:
    return hashlib.sha256(canonical(row)).digest()


def chain_hash(prev: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(prev + leaf).digest()


def checkpoint_payload(*, seq: int, hash_: bytes, count: int, at: dt.datetime, cert_sha256: str) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return dumps({"type": "saraban-audit-checkpoint/1", "seq": seq, "hash": hash_.hex(), "count": count,
                  "at": format_at(at), "cert_sha256": cert_sha256})
