"""The exchange, built complete in one place: one object per job.

``Exchange`` holds what the API, the e-CMS facade, the console and the CLI call,
split by job: ``accept`` (checking and storing submissions), ``status`` (what
became of a letter), ``withdrawals``, ``inbox`` (pull delivery and
acknowledgements), ``stamps`` (the receiving stamp) and ``operators``. Nothing
is set on it after it is built. The dispatcher (:mod:`gateway.delivery`) is
its sibling, not its client: it applies delivery outcomes through storage.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from adapters.base import Adapter
from adapters.push import AckVerifier
from gateway.core import admission
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.metrics import Metrics
from gateway.core.sealing import Sealer
from gateway.exchange.accept import Acceptance, SubmitResult
from gateway.exchange.directory import LiveDirectory
from gateway.exchange.inbox import PullInbox
from gateway.exchange.operators import Operators
from gateway.exchange.records import LetterRef, OutboundItem
from gateway.exchange.route_notices import RouteNotices
from gateway.exchange.stamps import Stamps
from gateway.exchange.status import Status
from gateway.exchange.validation import ValidationRecorder
from gateway.exchange.withdraw import Withdrawals
from gateway.intake.checks import Intake
from gateway.intake.limits import Admission
from gateway.storage import lists as lists_store
from gateway.storage.db import TRANSIENT_ERRORS
from gateway.storage.deliveries import InboxItem
from gateway.storage.receipts import ReceiptFactory


@dataclass(frozen=True)
class Exchange:
    directory: Directory
    accept: Acceptance
    status: Status
    withdrawals: Withdrawals
    inbox: PullInbox
    stamps: Stamps
    operators: Operators
    live_directory: LiveDirectory

    def for_ecms(self) -> LegacyPort:
        """The narrow interface the e-CMS facade speaks to."""
        return LegacyPort(self)


def build_exchange(*, pool: asyncpg.Pool, directory: Directory, intake: Intake, sealer: Sealer,
                   adapters: Mapping[str, Adapter], receipts: ReceiptFactory, acks: AckVerifier, ttl_s: float,
                   clock: Clock, metrics: Metrics, wake: Callable[[], None], gateway_code: str,
                   stamp_received: bool, admission: Admission | None, validation: ValidationRecorder | None = None,
                   pending_s: float = 0.0) -> Exchange:
    """``validation``: keeps each letter's validation material (:mod:`gateway.exchange.validation`); with
    it and ``pending_s``, validation-pending is possible."""
    stamps = Stamps(pool=pool, directory=directory, clock=clock, enabled=stamp_received)
    if intake.lists is None:  # distribution lists live in this database (gateway.storage.lists)
        intake.lists = lists_store.source(pool)
    return Exchange(
        directory=directory,
        accept=Acceptance(pool=pool, directory=directory, intake=intake, sealer=sealer, adapters=adapters,
                          ttl_s=ttl_s, clock=clock, metrics=metrics, stamps=stamps, admission=admission,
                          wake=wake, gateway_code=gateway_code, pending_s=pending_s if validation else 0.0,
                          validation=validation),
        status=Status(pool=pool),
        withdrawals=Withdrawals(pool=pool, clock=clock),
        inbox=PullInbox(pool=pool, clock=clock, metrics=metrics, acks=acks, receipts=receipts, wake=wake,
                        directory=directory),
        stamps=stamps,
        operators=Operators(pool=pool, directory=directory, clock=clock, metrics=metrics, ttl_s=ttl_s,
                            wake=wake),
        live_directory=LiveDirectory(pool=pool, directory=directory, clock=clock, notices=RouteNotices(
            pool=pool, directory=directory, sealer=sealer, clock=clock, adapters=adapters, gateway_code=gateway_code,
            ttl_s=ttl_s)),
    )


#: What the database raises when it is restarting, failing over or unreachable (retry later, not a bug):
#: for the callers that must not import the storage layer (the e-CMS facade).
DATABASE_UNAVAILABLE: Final = TRANSIENT_ERRORS


class LegacyPort:
    """The exchange as the e-CMS facade sees it (``gateway.ecms``'s ``EcmsExchange`` protocol): the
    few operations a legacy saraban system has, each handed to the job that does it."""

    def __init__(self, exchange: Exchange) -> None:
        self._x = exchange
        self.directory = exchange.directory

    async def submit(self, data: bytes, *, agency: str, channel: str = "native",
                     evidence: bytes | None = None, resend_guard: str | None = None) -> SubmitResult:
        # how the agency was let in (URL key, source network ...): set by the e-CMS endpoint for this request
        return await self._x.accept.submit(data, agency=agency, channel=channel, evidence=evidence,
                                           resend_guard=resend_guard, admitted=admission.admitted())

    async def inbox(self, agency: str, *, limit: int = 50, receipts: bool = True) -> list[InboxItem]:
        return await self._x.inbox.inbox(agency, limit=limit, receipts=receipts)

    def part_chunks(self, message_pk: int, content_id: str) -> AsyncIterator[bytes]:
        return self._x.inbox.part_chunks(message_pk, content_id)

    async def ack(self, agency: str, delivery_id: uuid.UUID, *, ack: bytes | None = None) -> str:
        return await self._x.inbox.ack(agency, delivery_id, ack=ack)

    async def message_status(self, sender: str, message_id: str) -> dict[str, Any]:
        return await self._x.status.message_status(sender, message_id)

    async def find_letter(self, *, letter_number: str, letter_date: dt.date, sender: str | None = None,
                          recipient: str | None = None) -> LetterRef | None:
        return await self._x.status.find_letter(letter_number=letter_number, letter_date=letter_date,
                                                sender=sender, recipient=recipient)

    async def withdraw(self, sender: str, *, letter_number: str, letter_date: dt.date, recipient: str) -> int:
        return await self._x.withdrawals.withdraw(sender, letter_number=letter_number,
                                                  letter_date=letter_date, recipient=recipient)

    async def outbound(self, sender: str, *, limit: int = 100) -> Sequence[OutboundItem]:
        return await self._x.status.outbound(sender, limit=limit)
