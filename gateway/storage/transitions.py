"""Delivery transitions applied: a batch of decided outcomes in one round trip.

:mod:`gateway.delivery.transitions` decides, purely, what an adapter's outcome
means for a claimed delivery (delivered, retry at T, dead, with the reason); a
pull acknowledgement is a delivered transition too. :func:`apply` writes a
batch of them with the SQL function ``apply_delivery_transitions`` (migration
0008): the delivery's state, the attempt, the destination's health and
backoff, the audit events, the receipt rows and the delivery receipts that go
back to the senders, whichever the outcomes, in one statement and so one
transaction. A delivery receipt is sent once, as the transition's: its message's receipt (the same
signed bytes) goes empty and the function fills it (migration 0022), and so does its evidence when it
is the transition's acknowledgement; its forwarded bytes (the same again) go as edits of the unsigned
receipt (the signature inserted, :data:`gateway.storage.forwarded.RECEIPT_MOST`), or empty too; when they go
as edits, the transition's receipt goes NULL and the function takes it from them (migration 0024), so the
signed bytes cross the wire once. Each is
stored once (0023): the signed bytes as the receipt message's forwarded bytes (its receipt NULL), the
acknowledgement as its evidence, and the letter's receipts row names that message
(``receipt_message_pk``) in place of copies; readers read ``message_receipt()`` and the view
``receipts_full``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

from gateway.storage import Executor, forwarded
from gateway.storage.db import encode_json, queries
from gateway.storage.messages import NewMessage, delivery_rows, message_row, sent_as_edits

Outcome = Literal["delivered", "retry", "dead"]


@dataclass(frozen=True)
class Transition:
    """One delivery's next state, as decided; applied only from a state that allows it."""

    delivery_id: uuid.UUID
    outcome: Outcome
    at: dt.datetime
    message_pk: int
    recipient: str
    actor: str
    details: Mapping[str, Any]
    """The audit event's details."""
    worker: str | None = None
    """The claim's holder (the transition applies only while it holds the claim); ``None`` for a
    pull acknowledgement."""
    attempt: int | None = None
    """The attempt to record with ``started_at`` (``None``: no attempt, a pull acknowledgement)."""
    started_at: dt.datetime | None = None
    reason: str | None = None
    permanent: bool = False
    """Dead because the office refused, not because retries ran out."""
    due_at: dt.datetime | None = None
    """A retry: when, before any destination backoff pushes it later."""
    receipt: bytes = b""
    """Delivered: the signed delivery receipt (empty when none is made)."""
    ack: bytes | None = None
    """Delivered: the office's acknowledgement, kept as evidence."""
    receipt_message: NewMessage | None = None
    """Delivered: the delivery receipt as a message back to the sender, stored only if this applies."""
    reset_destination: bool = False
    """The office answered (pushed delivery or refusal): its failure count goes back to 0."""
    breaker_threshold: int = 0
    backoff_s: float = 0.0
    """A failure: the destination's backoff if its consecutive failures reach ``breaker_threshold``."""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """What the caller wants back with the result (not stored)."""


_DEFAULTS = {f.name: f.default for f in fields(Transition) if f.default is not MISSING}
_FIELDS = frozenset(f.name for f in fields(Transition))
_REQUIRED = frozenset(f.name for f in fields(Transition) if f.default is MISSING and f.default_factory is MISSING)
_FACTORIES = {f.name: f.default_factory for f in fields(Transition) if f.default_factory is not MISSING}
_new = object.__new__


def transition(**values: Any) -> Transition:
    """``Transition(**values)``, its fields set at once: the frozen dataclass's ``__init__`` calls
    ``object.__setattr__`` once per field, twenty (a delivered outcome's: 2.6 -> 1.4 µs; held to the
    constructor by tests/unit/test_transition_made.py). The same keywords are required and allowed."""
    if not _REQUIRED <= values.keys() <= _FIELDS:
        raise TypeError(f"Transition fields: missing {sorted(_REQUIRED - values.keys())}, "
                        f"unknown {sorted(values.keys() - _FIELDS)}")
    t = _new(Transition)
    d = vars(t)
    d.update(_DEFAULTS)
    for name, make in _FACTORIES.items():
        if name not in values:
            d[name] = make()
    d.update(values)
    return t


def _row(t: Transition, ord_: int, receipt: bytes | None) -> tuple[Any, ...]:
    return (ord_, t.delivery_id, t.worker, t.outcome, t.permanent, t.attempt, t.started_at, t.at, t.reason,
            t.due_at, t.message_pk, t.recipient, t.actor, encode_json(dict(t.details)), receipt, t.ack,
            t.reset_destination, t.breaker_threshold, t.backoff_s)


async def apply(db: Executor, transitions: Sequence[Transition]) -> list[bool]:
    """Apply ``transitions`` in one round trip; for each, whether it applied (``False``: the
    delivery was no longer in a state that allows it, e.g. the claim was lost or it was withdrawn)."""
    if not transitions:
        return []
    receipts: list[tuple[Any, ...]] = []
    receipt_deliveries: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for i, t in enumerate(transitions, start=1):
        m = t.receipt_message
        receipt: bytes | None = t.receipt
        if m is not None:
            beside = bool(t.receipt) and m.forwarded == t.receipt
            # the same signed receipt crosses the wire once: the function fills an empty receipt or
            # forwarded bytes (those not sent as edits of the unsigned receipt, 0023) from the
            # transition's (migration 0022) and stores the signed bytes once (0023); the acknowledgement
            # too, filled from the transition's (0023). The row is made with them blank, the message
            # not copied (two dataclasses.replace: ~135k instructions a receipt).
            row = message_row(m, i, most=forwarded.RECEIPT_MOST if beside else forwarded.MOST, sent_beside=beside,
                              blank_receipt=bool(t.receipt) and m.receipt == t.receipt,
                              blank_evidence=bool(t.ack) and m.evidence == t.ack)
            if beside and sent_as_edits(row):
                receipt = None  # the signed bytes go once, as the message's edits: the function reads them (0024)
            receipts.append(row)
            receipt_deliveries.extend(delivery_rows(m, i))
        rows.append(_row(t, i, receipt))
    result = await db.fetch(queries["apply_delivery_transitions"], rows, receipts, receipt_deliveries)
    applied = {r["ord"]: r["applied"] for r in result}
    return [bool(applied.get(i)) for i in range(1, len(transitions) + 1)]
