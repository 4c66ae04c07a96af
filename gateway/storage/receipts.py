"""Receipts issued by the gateway, with the receiver's acknowledgement kept as evidence.

When a letter is delivered (pushed and acknowledged, or pulled and acknowledged),
the gateway signs a delivery receipt and sends it back to the letter's sender as
a new message of its own (:class:`ReceiptFactory` makes the row to store), queued for the sender
unless the sender pulls over e-CMS only (:func:`pulls_over_ecms_only`): then the receipt is stored
with its audit event and no delivery, since nothing could ever fetch it. Both
the dispatcher and the pull inbox make one; the receipt is written with the
delivery it acknowledges (:mod:`gateway.storage.transitions`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import Adapter
from gateway.core.directory import Directory
from gateway.core.envelope import MessageType
from gateway.core.receipts import delivery_receipt_envelope
from gateway.core.sealing import Sealer
from gateway.storage import Executor
from gateway.storage.db import queries
from gateway.storage.deliveries import DeliveryStatus
from gateway.storage.messages import NewDelivery, NewMessage


def first_status(directory: Directory, adapters: Mapping[str, Adapter], recipient: str) -> tuple[str, str]:
    """(route kind, first status) of a new delivery to ``recipient``: queued for a route the gateway
    pushes, waiting in the inbox for one the office pulls (a ``via`` route: its hub's route)."""
    served = directory.route_of(recipient)
    if served is None:
        raise KeyError(recipient)
    route = served[1]
    adapter = adapters.get(route.kind)
    pushes = True if adapter is None else adapter.pushes
    return route.kind, (DeliveryStatus.QUEUED.value if pushes else DeliveryStatus.INBOX.value)


def pulls_over_ecms_only(directory: Directory, agency: str) -> bool:
    """``agency`` is served by a pull route marked ``"protocol": "ecms"``: its system pulls through the
    e-CMS facade only, which never hands out delivery receipts."""
    served = directory.route_of(agency)
    return served is not None and served[1].kind == "pull" and served[1].settings.get("protocol") == "ecms"


@dataclass(frozen=True)
class Delivered:
    """What a delivered delivery is: identity of the letter and the bytes that travelled."""

    delivery_id: uuid.UUID
    message_pk: int
    message_id: str
    conversation_id: str | None
    message_type: str
    sender: str
    recipient: str
    forwarded_sha256: bytes


@dataclass(frozen=True)
class ReceiptFactory:
    """Signs delivery receipts and makes them messages back to the sender."""

    sealer: Sealer
    directory: Directory
    adapters: Mapping[str, Adapter]
    ttl_s: float

    def make(self, d: Delivered, *, at: dt.datetime, ack: bytes | None) -> tuple[bytes, NewMessage | None]:
        """(signed receipt, the receipt message) for ``d``; ``(b"", None)`` when what was delivered is
        itself a receipt, or its sender has left the directory."""
        if d.message_type == MessageType.RECEIPT.value or d.sender not in self.directory:
            return b"", None
        receipt_id, receipt_env = delivery_receipt_envelope(
            delivery_id=d.delivery_id, message_id=d.message_id, conversation_id=d.conversation_id,
            sender=d.sender, recipient=d.recipient, sha256_hex=d.forwarded_sha256.hex(), at=at)
        signed = self.sealer.sign_receipt(receipt_env)
        route, status = first_status(self.directory, self.adapters, d.sender)
        # An agency that pulls over e-CMS only could never fetch a receipt (e-CMS has no form for
        # one; its clients ask OutboundStatusRequest): the receipt is kept as evidence, not queued.
        queued = not pulls_over_ecms_only(self.directory, d.sender)
        return signed, NewMessage(
            sender=d.recipient, message_id=receipt_id, message_type=MessageType.RECEIPT.value,
            conversation_id=d.conversation_id, ref_to_message_id=d.message_id,
            letter_number=None, letter_date=None, subject=None, speed=None, secrecy=None, channel="gateway",
            received_sha256=hashlib.sha256(receipt_env).digest(), received=receipt_env,
            forwarded=signed, evidence=ack, receipt=signed, accepted_at=at,
            expires_at=at + dt.timedelta(seconds=self.ttl_s),
            deliveries=[NewDelivery(uuid.uuid4(), d.sender, route, status)] if queued else [],
            audit={"kind": "delivery receipt", "for_delivery": str(d.delivery_id),
                   "message_id": d.message_id,
                   **({} if queued else {"not_queued": "the sender pulls over e-CMS only, which has no "
                                                       "form for delivery receipts"})})


async def for_message(db: Executor, message_pk: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["message_receipts"], message_pk)]
