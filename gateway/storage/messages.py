"""Messages: the exact bytes received, what is forwarded, and the submission receipt."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.storage import Executor, forwarded
from gateway.storage.db import encode_json, queries


@dataclass(frozen=True)
class NewDelivery:
    id: uuid.UUID
    recipient: str
    route: str
    status: str
    """``queued`` for push/ecms/folder routes, ``inbox`` for pull."""


#: ``uuid.UUID(version=4)``'s masks: the variant's two bits (10) and the version's four (0100).
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)
_UUID = uuid.UUID
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def uuid4s_from(random: bytes) -> list[uuid.UUID]:
    """``uuid.UUID(bytes=chunk, version=4)`` for each 16 bytes of ``random``: the same values (version 4,
    RFC 4122 variant, ``is_safe`` unknown), set as ``UUID.__init__`` sets them but without its argument
    checks (half the cost of ``uuid.uuid4()``; held to it by tests/unit/test_delivery_ids.py)."""
    out = []
    for k in range(0, len(random) - 15, 16):
        u = _new(_UUID)
        _set(u, "int", int.from_bytes(random[k:k + 16]) & _UUID4_CLEAR | _UUID4_SET)
        _set(u, "is_safe", _SAFE_UNKNOWN)
        out.append(u)
    return out


def delivery_ids(n: int) -> list[uuid.UUID]:
    """``n`` random delivery ids, as ``uuid.uuid4()`` gives them, from one ``os.urandom`` call."""
    return uuid4s_from(os.urandom(16 * n)) if n else []


@dataclass(frozen=True)
class NewMessage:
    sender: str
    message_id: str
    message_type: str
    conversation_id: str | None
    ref_to_message_id: str | None
    letter_number: str | None
    letter_date: dt.date | None
    subject: str | None
    speed: str | None
    secrecy: str | None
    channel: str
    received_sha256: bytes
    received: bytes
    forwarded: bytes
    evidence: bytes | None
    receipt: bytes
    accepted_at: dt.datetime
    expires_at: dt.datetime
    deliveries: Sequence[NewDelivery]
    audit: dict[str, Any]
    notifier_kind: str | None = None
    """For a notifier: received, accepted, rejected, invalid, invalid-registry-number."""
    registry_number: str | None = None
    """For an accepted notifier: the receiving registry number (เลขทะเบียนรับ)."""
    parts: int = 0
    """Files that travel beside the envelope (multipart/related), stored by :mod:`gateway.storage.parts`."""
    resend_guard: str | None = None
    """For a letter that must not go out under a number and date already used for another live letter
    to one of its recipients (the e-CMS rule: withdraw first): the message id that is not "another
    letter" (it and its resends ``<id>.r<n>``). Checked in the insert statement itself."""


@dataclass(frozen=True)
class SentOtherwise:
    """What inserting a guarded letter returns when ``recipient``'s latest live letter under the same
    number and date is another letter (nothing was inserted)."""

    recipient: str


@dataclass(frozen=True)
class MessageRecord:
    pk: int
    sender: str
    message_id: str
    message_type: str
    conversation_id: str | None
    ref_to_message_id: str | None
    letter_number: str | None
    letter_date: dt.date | None
    subject: str | None
    received_sha256: bytes
    receipt: bytes
    accepted_at: dt.datetime
    channel: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> MessageRecord:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})


async def insert(db: Executor, m: NewMessage) -> int | SentOtherwise | None:
    """Insert the message, its deliveries and its audit event (a batch of one, see :func:`insert_many`)."""
    return (await insert_many(db, [m]))[0]


async def get(db: Executor, sender: str, message_id: str) -> MessageRecord | None:
    row = await db.fetchrow(queries["get_message"], sender, message_id)
    return None if row is None else MessageRecord.from_row(row)


async def get_by_pk(db: Executor, pk: int) -> MessageRecord | None:
    row = await db.fetchrow(queries["get_message_by_pk"], pk)
    return None if row is None else MessageRecord.from_row(row)


async def forwarded_bytes(db: Executor, pk: int) -> bytes | None:
    row = await db.fetchrow(queries["get_message_by_pk"], pk)
    return None if row is None else row["forwarded"]


def message_row(m: NewMessage, ord_: int, *, most: float = forwarded.MOST, sent_beside: bool = False,
                blank_receipt: bool = False, blank_evidence: bool = False) -> tuple[Any, ...]:
    """``m`` as a ``new_message`` composite (migrations 0008, 0019), numbered ``ord_`` in its batch: the
    forwarded bytes as edits of the received ones where they insert at most ``most`` of them
    (:mod:`gateway.storage.forwarded`). Empty forwarded bytes stay whole: they mark a delivery receipt's
    row whose forwarded bytes the function fills from the signed receipt sent once beside it (migration
    0022); ``sent_beside``: forwarded bytes that are that receipt go empty unless stored as edits.
    ``blank_receipt``, ``blank_evidence``: the row of ``replace(m, receipt=b"")``, ``replace(m, evidence=b"")``
    (the function fills them from the transition's, 0022, 0023) without copying the message."""
    edits = forwarded.edits(m.received, m.forwarded, most=most) if m.forwarded else None
    whole, edit_list, inserts = (m.forwarded, None, None) if edits is None else (None, *edits)
    if sent_beside and edits is None:
        whole = b""
    return (ord_, m.sender, m.message_id, m.message_type, m.conversation_id, m.ref_to_message_id,
            m.letter_number, m.letter_date, m.subject, m.speed, m.secrecy, m.channel, m.received_sha256,
            m.received, whole, b"" if blank_evidence else m.evidence, b"" if blank_receipt else m.receipt, m.accepted_at, encode_json(m.audit),
            m.notifier_kind, m.registry_number, m.parts, m.resend_guard, edit_list, inserts)


def sent_as_edits(row: tuple[Any, ...]) -> bool:
    """A :func:`message_row` whose forwarded bytes go as edits of the received ones (not whole)."""
    return row[-2] is not None


def delivery_rows(m: NewMessage, ord_: int) -> list[tuple[Any, ...]]:
    """``m``'s deliveries as ``new_delivery`` composites naming their message by ``ord_``."""
    return [(ord_, d.id, d.recipient, d.route, d.status, m.expires_at) for d in m.deliveries]


async def insert_many(db: Executor, batch: Sequence[NewMessage]) -> list[int | SentOtherwise | None]:
    """Insert several messages in one statement and transaction (group commit): each one's pk, ``None``
    where (sender, id) exists, :class:`SentOtherwise` where its resend guard refused it.

    One array of the ``new_message`` composite type and one of ``new_delivery`` (asyncpg has no named
    parameters; these replace 28 positional arrays, see ``bench/sql_forms.py`` for the two measured)."""
    rows = await db.fetch(queries["insert_messages"],
                          [message_row(m, i) for i, m in enumerate(batch, start=1)],
                          [d for i, m in enumerate(batch, start=1) for d in delivery_rows(m, i)])
    out: list[int | SentOtherwise | None] = [None] * len(batch)
    for r in rows:
        out[r["ord"] - 1] = r["pk"] if r["sent_otherwise"] is None else SentOtherwise(r["sent_otherwise"])
    return out
