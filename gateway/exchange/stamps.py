"""The receiving stamp (ตรารับ): a copy of a letter's main PDF stamped by the registry that accepted it."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from gateway.core import xml as gxml
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.envelope import Header, Notifier
from gateway.core.envelope_reader import read_attachments
from gateway.core.errors import NotFound
from gateway.storage import letters
from gateway.storage import parts as parts_store
from pki.pdf import stamp_received

log = structlog.get_logger(__name__)


class Stamps:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, clock: Clock, enabled: bool) -> None:
        self.pool = pool
        self.directory = directory
        self.clock = clock
        #: Whether an accepting notifier stamps the letter (``GATEWAY_STAMP_RECEIVED``).
        self.enabled = enabled

    async def make(self, notifier_pk: int, h: Header, notifier: Notifier) -> None:
        """Keep a copy of the letter's main PDF with the receiving stamp of the accepting registry.
        Derived data after the notifier is committed: a failure is logged, never raised."""
        if not (self.enabled and notifier.registry_number and notifier.kind.value == "accepted"):
            return
        try:
            for letter_sender in h.recipients:
                row = await letters.letter_for_notifier(
                    self.pool, letter_sender=letter_sender, ref_to_message_id=h.ref_to_message_id,
                    letter_number=notifier.letter_number, letter_date=notifier.letter_date,
                    answering=h.sender)
                if row is None:
                    continue
                main = next((a for a in read_attachments(gxml.parse(row["received"]))
                             if a.role == "main" and a.mime_type == "application/pdf"), None)
                if main is None:
                    continue
                content = main.content
                if main.external:  # the main PDF travelled beside the envelope
                    content = await parts_store.read(self.pool, row["pk"], main.id)
                agency = self.directory.get(h.sender)
                at = notifier.registered_at or self.clock.now()
                pdf = await asyncio.to_thread(stamp_received, content,
                                              agency_name=agency.name_th if agency else h.sender,
                                              registry_number=notifier.registry_number, received_at=at)
                await letters.save_stamp(self.pool, letter_pk=row["pk"], recipient=h.sender,
                                         registry_number=notifier.registry_number, notifier_pk=notifier_pk,
                                         pdf=pdf, at=self.clock.now())
                log.info("receiving stamp made", letter=row["message_id"], recipient=h.sender)
        except Exception as exc:  # noqa: BLE001 - derived data: the notifier itself is stored
            log.warning("could not make the receiving stamp", error=f"{type(exc).__name__}: {exc}")

    async def stamped_letter(self, agency: str, message_id: str, recipient: str) -> bytes:
        """The stamped main PDF, for the letter's sender or the stamping recipient."""
        pdf = await letters.stamped_pdf(self.pool, agency=agency, message_id=message_id, recipient=recipient)
        if pdf is None:
            raise NotFound("no stamped copy of that letter for that recipient", code="stamp.not_found")
        return pdf
