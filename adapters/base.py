"""The adapter interface and the outcomes it reports.

An adapter answers one delivery attempt with exactly one outcome:

* :class:`Delivered` — the office has it (with its acknowledgement, kept as evidence);
* :class:`Retry` — not now (timeout, connection error, 429, 5xx); the dispatcher
  backs off, per destination and per delivery;
* :class:`Permanent` — the office refused it for good (a 4xx); resending the same
  bytes will not help, so the delivery is dead at once and an operator is told.

Adapters get their HTTP session and settings passed in; they never create a
session per request and never retry on their own (retrying is the
dispatcher's, so it is visible, bounded and survives restarts).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from gateway.core.directory import Route
from gateway.core.parts import PartInfo


@dataclass(frozen=True, init=False)
class OutboundDelivery:
    """One delivery attempt as an adapter gets it (immutable; one is made per attempt)."""

    delivery_id: uuid.UUID
    """Stable id of this delivery; the office deduplicates on it."""
    message_id: str
    sender: str
    recipient: str
    envelope: bytes
    """The sealed envelope exactly as stored (only verified bytes travel)."""
    route: Route
    attempt: int
    """1 for the first attempt."""
    parts: tuple[PartInfo, ...] = ()
    """Files that travel beside the envelope (its Attachments with ``ContentRef``)."""
    open_part: Callable[[str], AsyncIterator[bytes]] | None = None
    """Reads one of ``parts`` by Content-ID, chunk by chunk (a fresh stream per call)."""
    envelope_sha256: bytes | None = None
    """SHA-256 of ``envelope`` when the caller has it (the dispatcher's claim does): an adapter checking
    an acknowledgement's digest uses it rather than hash the envelope again."""

    def __init__(self, delivery_id: uuid.UUID, message_id: str, sender: str, recipient: str, envelope: bytes,
                 route: Route, attempt: int, parts: tuple[PartInfo, ...] = (),
                 open_part: Callable[[str], AsyncIterator[bytes]] | None = None,
                 envelope_sha256: bytes | None = None) -> None:
        # The fields written into the instance's dict at once: a frozen dataclass's own __init__ sets each
        # through object.__setattr__ (16.5k instructions a push; this 9.5k). The same fields, order and
        # defaults (tests/unit/test_outbound_delivery.py holds them to the declared ones).
        vars(self).update(delivery_id=delivery_id, message_id=message_id, sender=sender, recipient=recipient,
                          envelope=envelope, route=route, attempt=attempt, parts=parts, open_part=open_part,
                          envelope_sha256=envelope_sha256)

    def read_part(self, content_id: str) -> AsyncIterator[bytes]:
        """:attr:`open_part`, for a delivery that has ``parts`` (the dispatcher always gives both)."""
        if self.open_part is None:
            raise ValueError(f"delivery {self.delivery_id} has parts but no way to read them")
        return self.open_part(content_id)


class Delivered(NamedTuple):
    ack: bytes | None = None
    """The office's acknowledgement document, kept as evidence."""
    facts: Mapping[str, Any] | None = None
    """What was checked about ``ack`` (signed, verified, by which certificate), for the audit event."""


class Retry(NamedTuple):
    reason: str
    retry_after: float | None = None
    """Seconds the office asked us to wait (Retry-After), if any."""


class Permanent(NamedTuple):
    reason: str


Outcome = Delivered | Retry | Permanent


class Adapter(Protocol):
    kind: str
    """Route kind this adapter serves (push, pull, ecms, folder)."""
    pushes: bool
    """False for routes where the office fetches (pull): deliveries wait in its inbox."""

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        """Make one attempt; never raise for the office's faults, report an outcome."""
