"""What the e-CMS operations use: the exchange's narrow port and the facade's shared context.

:class:`EcmsExchange` is the part of :class:`gateway.exchange.service.Exchange` the facade codes
against (``Exchange.for_ecms()``; tests put an in-memory one); :class:`Context` is what every
operation module (:mod:`gateway.ecms.sending`, :mod:`gateway.ecms.queue`, :mod:`gateway.ecms.lookups`)
reads: the exchange, the settings, the trust store, and what the endpoint knows of the request.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from lxml import etree

from gateway.core.directory import Directory
from gateway.core.ecmswire import soap
from gateway.ecms.settings import EcmsSettings
from gateway.exchange.records import LetterRef, OutboundItem
from pki.trust import TrustStore


class Submitted(Protocol):
    """What ``submit`` answers with (the facade reads these two)."""

    @property
    def message_id(self) -> str: ...
    @property
    def duplicate(self) -> bool: ...


class QueuedItem(Protocol):
    """One item of ``inbox`` (the facade reads these)."""

    @property
    def delivery_id(self) -> uuid.UUID: ...
    @property
    def envelope(self) -> bytes: ...
    @property
    def message_pk(self) -> int: ...
    @property
    def parts(self) -> int: ...


@runtime_checkable
class EcmsExchange(Protocol):
    """The part of :class:`gateway.exchange.service.Exchange` the facade uses. ``find_letter``,
    ``withdraw``, ``outbound`` and ``submit(resend_guard=)`` are additions requested from the service."""

    directory: Directory

    async def submit(self, data: bytes, *, agency: str, channel: str = "native",
                     evidence: bytes | None = None, resend_guard: str | None = None) -> Submitted: ...
    async def inbox(self, agency: str, *, limit: int = 50, receipts: bool = True) -> Sequence[QueuedItem]: ...
    def part_chunks(self, message_pk: int, content_id: str) -> AsyncIterator[bytes]: ...
    async def ack(self, agency: str, delivery_id: uuid.UUID, *, ack: bytes | None = None) -> str: ...
    async def message_status(self, sender: str, message_id: str) -> dict[str, Any]: ...
    async def find_letter(self, *, letter_number: str, letter_date: dt.date, sender: str | None = None,
                          recipient: str | None = None) -> LetterRef | None: ...
    async def withdraw(self, sender: str, *, letter_number: str, letter_date: dt.date,
                       recipient: str) -> int: ...
    async def outbound(self, sender: str, *, limit: int = 100) -> Sequence[OutboundItem]: ...


@dataclass(frozen=True)
class Context:
    """What the operations share: built once by the facade."""

    exchange: EcmsExchange
    settings: EcmsSettings
    trust: TrustStore | None = None
    """The gateway's trust store (validates a legacy signer when the policy asks), or None."""

    @property
    def directory(self) -> Directory:
        return self.exchange.directory


@dataclass(frozen=True)
class Call:
    """One request as an operation sees it."""

    req: soap.SoapRequest
    caller: str
    """The calling agency (authenticated by the endpoint)."""
    now: dt.datetime
    """The request time in the facade's zone."""
    data: bytes
    """The request's bytes (kept as evidence with what it submits)."""
    endpoint_url: str = ""
    """The URL the caller reached the facade at (scheme, host, path; no query), or "" when unknown."""


#: One operation: a call -> its answer element (or the whole SOAP envelope of the answer, built at once).
Operation = Callable[[Call], Awaitable[etree._Element]]
