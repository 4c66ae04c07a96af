"""The pull inbox: what waits for an agency that fetches its letters, and its acknowledgements."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg

from adapters.push import AckVerifier
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.errors import Conflict, NotFound
from gateway.core.metrics import Metrics
from gateway.core.parts import PartInfo, SignedFile, as_signed, signed_file
from gateway.storage import deliveries, transitions
from gateway.storage import parts as parts_store
from gateway.storage.deliveries import DeliveryStatus, InboxItem
from gateway.storage.receipts import Delivered, ReceiptFactory
from gateway.storage.transitions import Transition


class PullInbox:
    def __init__(self, *, pool: asyncpg.Pool, clock: Clock, metrics: Metrics, acks: AckVerifier,
                 receipts: ReceiptFactory, wake: Callable[[], None], directory: Directory) -> None:
        self.pool = pool
        #: A hub's inbox also holds the letters of the offices routed ``via`` it.
        self.directory = directory
        self.clock = clock
        self.metrics = metrics
        #: Checks a pulled delivery's DeliveryAck (signature, signer's agency, digest).
        self.acks = acks
        self.receipts = receipts
        self._wake = wake

    async def inbox(self, agency: str, *, limit: int = 50, receipts: bool = True) -> list[InboxItem]:
        """The oldest waiting items; ``receipts=False`` (the e-CMS facade) leaves delivery receipts
        out, which stay in the native inbox (``GET /v1/inbox``) until acknowledged there."""
        return await deliveries.inbox(self.pool, self.directory.served_by(agency), max(1, min(limit, 500)),
                                      receipts=receipts)

    async def inbox_item(self, agency: str, delivery_id: uuid.UUID) -> InboxItem:
        row = await deliveries.inbox_item(self.pool, self.directory.served_by(agency), delivery_id)
        if row is None or row["status"] != DeliveryStatus.INBOX.value:
            raise NotFound(f"no delivery {delivery_id} in the inbox of {agency}", code="inbox.not_found")
        return InboxItem.from_row(row)

    async def parts_of(self, item: InboxItem) -> tuple[PartInfo, ...]:
        """The files stored beside an item's envelope, each with the MIME type its envelope signs."""
        return as_signed(item.envelope, await parts_store.list_parts(self.pool, item.message_pk))

    async def part_of(self, item: InboxItem, content_id: str) -> tuple[PartInfo, SignedFile] | None:
        """One stored file of an item and what its envelope signs of it (type, name), reading the
        envelope once; None when the envelope or the store has no such part."""
        signed = signed_file(item.envelope, content_id)
        if signed is None:
            return None
        info = next((p for p in await parts_store.list_parts(self.pool, item.message_pk)
                     if p.content_id == content_id), None)
        return None if info is None else (dataclasses.replace(info, content_type=signed.mime_type), signed)

    def part_chunks(self, message_pk: int, content_id: str) -> AsyncIterator[bytes]:
        """One stored file, chunk by chunk."""
        return parts_store.iter_chunks(self.pool, message_pk, content_id)

    async def ack(self, agency: str, delivery_id: uuid.UUID, *, ack: bytes | None = None) -> str:
        """Complete a pull delivery; idempotent. Returns the delivery's state afterwards.

        A DeliveryAck that is signed must verify and name the delivered bytes
        (:class:`adapters.push.AckVerifier`; ``ack.*`` 422 otherwise), checked before anything is
        written: the trust store may fetch OCSP/CRLs. The delivery, its receipt and the receipt
        message back to the sender are then one transition, applied in one round trip.
        """
        row = await deliveries.lock_for_ack(self.pool, delivery_id)
        self._check(row, self.directory.served_by(agency), agency, delivery_id)
        assert row is not None
        if row["status"] == DeliveryStatus.DELIVERED.value:
            return "delivered"
        sha = hashlib.sha256(row["forwarded"]).digest()  # hashed once: the ack's check and the receipt
        facts: dict[str, Any] = {}
        if ack is not None:
            facts = await self.acks.verify(ack, agency=agency, delivery_id=str(delivery_id),
                                           delivered=row["forwarded"], delivered_sha256=sha)
        now = self.clock.now()
        receipt, message = self.receipts.make(Delivered(
            delivery_id=delivery_id, message_pk=row["message_pk"], message_id=row["message_id"],
            conversation_id=row["conversation_id"], message_type=row["message_type"], sender=row["sender"],
            recipient=row["recipient"], forwarded_sha256=sha), at=now, ack=ack)
        [applied] = await transitions.apply(self.pool, [Transition(
            delivery_id=delivery_id, outcome="delivered", at=now, message_pk=row["message_pk"],
            recipient=row["recipient"], actor=agency,
            details={"recipient": row["recipient"], "sha256": sha.hex(), **facts,
                     **({"via": agency} if agency != row["recipient"] else {})},
            receipt=receipt, ack=ack, receipt_message=message)])
        if not applied:  # acknowledged twice at once, or withdrawn meanwhile
            again = await deliveries.lock_for_ack(self.pool, delivery_id)
            self._check(again, self.directory.served_by(agency), agency, delivery_id)
            assert again is not None
            if again["status"] == DeliveryStatus.DELIVERED.value:
                return "delivered"
            raise Conflict(f"delivery {delivery_id} is {again['status']}", code="inbox.not_pending")
        self.metrics.delivered.labels(route="pull").inc()
        self._wake()
        return "delivered"

    @staticmethod
    def _check(row: asyncpg.Record | None, served: Sequence[str], agency: str, delivery_id: uuid.UUID) -> None:
        if row is None or row["recipient"] not in served:
            raise NotFound(f"no delivery {delivery_id} for {agency}", code="inbox.not_found")
        if row["status"] not in (DeliveryStatus.INBOX.value, DeliveryStatus.DELIVERED.value):
            raise Conflict(f"delivery {delivery_id} is {row['status']}", code="inbox.not_pending")
