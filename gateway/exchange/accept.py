"""Accepting a submission: check, seal, store with its deliveries, answer with a signed receipt.

Accepting a letter is one database transaction (one round trip): the message
with the exact bytes received and the sealed bytes to forward, one delivery per
recipient, and the audit event. A letter naming distribution lists has them
expanded here against the directory in force (gateway.core.lists.expand: union with
the explicit recipients, no repeats, never the sender), all its deliveries
inserted in the same one statement, and each list's frozen expansion recorded
beside it in the same transaction (gateway.storage.lists). A unique key on (sender, message id) turns a
repeated submission into the original receipt. The answer (a signed receipt)
is sent only after that commit: a 202 is never given for a letter the database
does not hold. If the connection drops during the commit, the insert is retried
(tenacity); a retry that finds the first attempt committed returns its receipt,
so the sender sees exactly one letter either way. If the database stays
unreachable, the answer is 503 and the sender retries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
import tenacity
from prometheus_client import Counter

from adapters.base import Adapter
from gateway.core.admission import Caller, check_letter_transport
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.errors import Conflict, GatewayError, LetterSentOtherwise, Unavailable
from gateway.core.lists import DistributionList, expand, members_digest
from gateway.core.metrics import Metrics
from gateway.core.parts import SpooledPart
from gateway.core.receipts import submission_receipt
from gateway.core.sealing import Sealer
from gateway.exchange.stamps import Stamps
from gateway.exchange.validation import ValidationRecorder, pending_receipt
from gateway.intake.checks import CheckedEnvelope, Intake
from gateway.intake.limits import Admission
from gateway.storage import audit, db, messages
from gateway.storage import lists as lists_store
from gateway.storage import ltv as ltv_store
from gateway.storage import parts as parts_store
from gateway.storage.batching import GroupCommitter
from gateway.storage.deliveries import DeliveryStatus
from gateway.storage.messages import NewDelivery, NewMessage, SentOtherwise, delivery_ids
from gateway.storage.receipts import first_status
from pki.errors import PkiError
from pki.ltv import Capture, capturing, tolerating_unknown_revocation

log = structlog.get_logger(__name__)

_TRANSIENT = db.TRANSIENT_ERRORS
#: The facts of intake's checks that go into the accepted letter's audit event (plain values only).
_AUDITED_FACT = (str, bool, int)
#: A delivery the dispatcher pushes (the enum's value read once: each ``.value`` is a Python-level property).
_QUEUED = DeliveryStatus.QUEUED.value


@dataclass(frozen=True)
class SubmitResult:
    message_id: str
    message_pk: int
    receipt: bytes
    """The signed submission receipt (the same bytes for a repeated submission)."""
    duplicate: bool
    sha256: str
    pending: bool = False
    """Accepted into validation-pending: held, not forwarded, until the revocation check completes."""


def _db_retry() -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(_TRANSIENT),
        wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=0.5),
        stop=tenacity.stop_after_delay(3),
        reraise=True,
    )


class Acceptance:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, intake: Intake, sealer: Sealer,
                 adapters: Mapping[str, Adapter], ttl_s: float, clock: Clock, metrics: Metrics,
                 stamps: Stamps, admission: Admission | None, wake: Callable[[], None],
                 gateway_code: str, validation: ValidationRecorder | None = None,
                 pending_s: float = 0.0) -> None:
        self.pool = pool
        #: Keeps each letter's validation material (``None``: not kept, e.g. signatures off).
        self.validation = validation
        #: How long a letter may wait in validation-pending (0: no such state; hard-fail refuses).
        self.pending_s = pending_s
        self.directory = directory
        self.intake = intake
        self.sealer = sealer
        self.adapters = adapters
        self.ttl_s = ttl_s
        self._ttl = dt.timedelta(seconds=ttl_s)
        self.clock = clock
        self.metrics = metrics
        #: The accepted counter's child per (type, channel): ``labels()`` is a lock and a validation per call.
        self._accepted: dict[tuple[str, str], Counter] = {}
        self.stamps = stamps
        #: Back-pressure: rate per agency and queue depth (``None``: none, the CLI).
        self.admission = admission
        self._wake = wake
        self.gateway_code = gateway_code
        self.committer: GroupCommitter[NewMessage, int | SentOtherwise | None] = GroupCommitter(
            lambda batch: messages.insert_many(self.pool, batch), lambda m: messages.insert(self.pool, m),
            max_batch=128, max_parallel=4, passthrough=_TRANSIENT)

    async def submit(self, data: bytes, *, agency: str, channel: str = "native",
                     evidence: bytes | None = None, parts: Mapping[str, SpooledPart] | None = None,
                     resend_guard: str | None = None, admitted: Caller | None = None) -> SubmitResult:
        """Check, store and queue one envelope from ``agency``; return its receipt.

        ``resend_guard`` (a letter's message id without its ``.r<n>`` resend suffix): refuse with
        :class:`LetterSentOtherwise` when a recipient's latest live letter under the same number and
        date is another letter (the e-CMS rule), checked in the statement that stores the letter.

        ``admitted``: how the agency was let in (:mod:`gateway.core.admission`), an audit fact on the
        letter; over plain HTTP a letter marked ลับ or ลับมาก is refused."""
        if self.admission is not None:
            try:
                await self.admission.admit(agency)
            except GatewayError as exc:
                self.metrics.rejected.labels(code=exc.code).inc()
                raise
        try:
            checked, capture = await self._check(data, agency=agency, channel=channel, parts=parts)
            letter = checked.envelope.letter
            check_letter_transport(admitted, letter.secrecy.value if letter is not None else None)
        except (GatewayError, PkiError) as exc:
            self.metrics.rejected.labels(code=exc.code).inc()
            await self._record_rejection(agency, channel, data, exc)
            raise
        try:
            return await self.store(checked, channel=channel, evidence=evidence, resend_guard=resend_guard,
                                    capture=capture, admitted=admitted)
        except Conflict as exc:  # the message id was used for other bytes, or the letter was sent otherwise
            await self._record_rejection(agency, channel, data, exc)
            raise

    async def _check(self, data: bytes, *, agency: str, channel: str,
                     parts: Mapping[str, SpooledPart] | None) -> tuple[CheckedEnvelope, Capture]:
        """Intake's checks, capturing what they validated. Under hard-fail, a signer whose revocation
        status cannot be established (responders unreachable) is checked once more with everything
        but that, and the letter goes to validation-pending (when ``pending_s`` allows it)."""
        with capturing() as capture:
            try:
                return await self.intake.check(data, agency=agency, channel=channel, parts=parts), capture
            except PkiError as exc:
                if exc.code != "certificate.revocation_unknown" or self.pending_s <= 0:
                    raise
        with capturing() as capture, tolerating_unknown_revocation():
            return await self.intake.check(data, agency=agency, channel=channel, parts=parts), capture

    async def _record_rejection(self, agency: str, channel: str, data: bytes,
                                exc: GatewayError | PkiError) -> None:
        """An audit event for a refused submission of an authenticated agency: who, when, why, and the
        SHA-256 of what was refused (never the bytes: nothing refused is stored). Best effort: a
        refusal is answered even when the database cannot record it."""
        details = {"code": exc.code, "field": exc.field, "channel": channel, "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest()}
        try:
            await audit.append(self.pool, at=self.clock.now(), actor=agency, kind="message.rejected",
                               details={k: v for k, v in details.items() if v is not None})
        except Exception as err:  # noqa: BLE001 - the refusal itself must still reach the sender
            log.warning("could not record a refusal in the audit log", code=details["code"],
                        error=f"{type(err).__name__}: {err}")

    async def store(self, checked: CheckedEnvelope, *, channel: str, evidence: bytes | None,
                    resend_guard: str | None = None, capture: Capture | None = None,
                    admitted: Caller | None = None) -> SubmitResult:
        env = checked.envelope
        h = env.header
        mtype = h.message_type.value
        sha256_hex = checked.sha256_hex
        now = self.clock.now()
        pending = capture is not None and capture.pending
        if capture is not None and self.validation is not None:
            checked.facts.update(await self.validation.record(capture, checked.facts, sender=h.sender,
                                                              directory_version=self.directory.version))
        built = submission_receipt(message_id=h.message_id, sender=h.sender, sha256_hex=sha256_hex,
                                   at=now, gateway_code=self.gateway_code)
        # a pending receipt is rebuilt from the bytes (rare): the sealer parses it; the usual one is signed as built
        receipt = self.sealer.sign_receipt(pending_receipt(built) if pending else built)
        forwarded = self.sealer.seal_envelope(checked.raw)
        recipients, expansions = self._expand(h.sender, h.recipients, checked.lists)
        new_deliveries = []
        queued = False
        for delivery_id, recipient in zip(delivery_ids(len(recipients)), recipients, strict=True):
            route, status = first_status(self.directory, self.adapters, recipient)
            queued = queued or status == _QUEUED
            new_deliveries.append(NewDelivery(delivery_id, recipient, route, status))
        letter, notifier = env.letter, env.notifier
        new = NewMessage(
            sender=h.sender, message_id=h.message_id, message_type=mtype,
            conversation_id=h.conversation_id or h.message_id, ref_to_message_id=h.ref_to_message_id,
            letter_number=letter.number if letter else (notifier.letter_number if notifier else None),
            letter_date=letter.date if letter else (notifier.letter_date if notifier else None),
            subject=letter.subject if letter else (notifier.subject if notifier else None),
            speed=letter.speed.value if letter else None, secrecy=letter.secrecy.value if letter else None,
            channel=channel, received_sha256=checked.sha256, received=checked.raw, forwarded=forwarded,
            evidence=evidence, receipt=receipt, accepted_at=now,
            expires_at=now + self._ttl, deliveries=[] if pending else new_deliveries,
            notifier_kind=notifier.kind.value if notifier else None,
            registry_number=notifier.registry_number if notifier else None, parts=len(checked.parts),
            resend_guard=resend_guard if letter is not None else None,
            audit=self._audit(checked, mtype=mtype, sha256_hex=sha256_hex, channel=channel, forwarded=forwarded,
                              expansions=expansions, deliveries=len(new_deliveries), pending=pending,
                              admitted=admitted),
        )
        parts = checked.parts

        held = new_deliveries if pending else []

        async def insert() -> int | SentOtherwise | None:
            if parts or expansions or held:
                return await self._insert_alone(new, parts, expansions, held)
            return await self.committer.submit(new)

        try:
            pk = await db.call_with_retries(insert, _db_retry)
        except _TRANSIENT as exc:
            log.error("database unavailable while accepting", error=str(exc))
            raise Unavailable("the gateway cannot store letters right now; retry later",
                              code="unavailable.database") from None
        if pk is None:
            return await self._duplicate(h.sender, h.message_id, checked.sha256)
        if isinstance(pk, SentOtherwise):
            assert letter is not None  # only a letter carries a resend guard
            raise LetterSentOtherwise(f"letter {letter.number} of {letter.date.isoformat()} was already "
                                      f"sent to {pk.recipient} as another letter; withdraw that one first",
                                      recipient=pk.recipient)
        key = (mtype, channel)
        counter = self._accepted.get(key)
        if counter is None:
            counter = self._accepted[key] = self.metrics.accepted.labels(type=key[0], channel=key[1])
        counter.inc()
        if notifier is not None:
            await self.stamps.make(pk, h, notifier)
        log.info("message accepted", message_id=h.message_id, sender=h.sender, recipients=len(new_deliveries),
                 message_pk=pk)
        if queued and not pending:
            self._wake()
        return SubmitResult(message_id=h.message_id, message_pk=pk, receipt=receipt, duplicate=False,
                            sha256=sha256_hex, pending=pending)

    @staticmethod
    def _audit(checked: CheckedEnvelope, *, mtype: str, sha256_hex: str, channel: str, forwarded: bytes,
               expansions: Sequence[lists_store.Expansion], deliveries: int, pending: bool,
               admitted: Caller | None) -> dict[str, Any]:
        """The details of a letter's ``message.accepted`` audit event, key by key in a fixed order (set
        in place, not merged from a dictionary per optional part)."""
        env = checked.envelope
        h, notifier = env.header, env.notifier
        audit: dict[str, Any] = {"message_id": h.message_id, "type": mtype, "channel": channel,
                                 "recipients": list(h.recipients), "sha256": sha256_hex}
        if expansions:
            audit["recipient_lists"] = {e.list_name: e.member_count for e in expansions}
            audit["deliveries"] = deliveries
        if forwarded is not checked.raw and forwarded != checked.raw:
            audit["sealed"] = True
            audit["forwarded_sha256"] = hashlib.sha256(forwarded).hexdigest()
        else:
            audit["sealed"] = False
        if notifier:
            audit["notifier"] = notifier.kind.value
        if pending:
            audit["validation_pending"] = True
        if checked.parts:
            audit["parts"] = {p.content_id: p.sha256 for p in checked.parts}
        for k, v in checked.facts.items():
            if isinstance(v, _AUDITED_FACT):
                audit[k] = v
        if admitted is not None:
            audit.update(admitted.facts())
        return audit

    def _expand(self, sender: str, explicit: Sequence[str], lists: Sequence[DistributionList],
                ) -> tuple[list[str], list[lists_store.Expansion]]:
        """Every recipient (the explicit ones first, in their order, then each list's members by
        code, no repeats, never the sender) and each list's expansion, against one directory
        snapshot (nothing here awaits, so no directory change can come in between)."""
        recipients = list(explicit)
        if not lists:
            return recipients, []
        seen = set(recipients)
        seen.add(sender)
        version = self.directory.version
        out: list[lists_store.Expansion] = []
        for lst in lists:
            if any(e.list_name == lst.name for e in out):  # named twice (by name and e-CMS code)
                continue
            members = [code for code in expand(lst, self.directory) if code != sender]
            out.append(lists_store.Expansion(list_name=lst.name, directory_version=version,
                                             member_count=len(members), members_sha256=members_digest(members)))
            for code in members:
                if code not in seen:
                    seen.add(code)
                    recipients.append(code)
        return recipients, out

    async def _insert_alone(self, new: NewMessage, spooled: Sequence[SpooledPart],
                            expansions: Sequence[lists_store.Expansion],
                            held: Sequence[NewDelivery] = ()) -> int | SentOtherwise | None:
        """A letter with files beside it or sent to distribution lists: its own transaction (too big
        to share a group commit): the files copied from the spool chunk by chunk, the lists' frozen
        expansions recorded; all of it commits or none."""
        async with self.pool.acquire() as conn, conn.transaction():
            pk = await messages.insert(conn, new)
            if isinstance(pk, int):
                if spooled:
                    await parts_store.insert(conn, pk, spooled)
                await lists_store.record_expansions(conn, pk, expansions)
                if held:  # validation-pending: the deliveries wait beside the letter, not claimable
                    await ltv_store.add_pending(conn, pk, [
                        {"id": str(d.id), "recipient": d.recipient, "route": d.route, "status": d.status,
                         "expires_at": new.expires_at.isoformat(), "bulk": len(held) > 50} for d in held],
                        since=new.accepted_at, deadline=new.accepted_at + dt.timedelta(seconds=self.pending_s))
            return pk

    async def _duplicate(self, sender: str, message_id: str, sha256: bytes) -> SubmitResult:
        rec = await messages.get(self.pool, sender, message_id)
        if rec is None:  # the conflicting row vanished (archived): treat as not found
            raise Unavailable("duplicate check failed; retry", code="unavailable.database")
        if rec.received_sha256 != sha256:
            raise Conflict(f"message id {message_id} was already used for a different envelope",
                           code="message.id_reused", field="Header/MessageId")
        self.metrics.duplicates.inc()
        return SubmitResult(message_id=message_id, message_pk=rec.pk, receipt=rec.receipt, duplicate=True,
                            sha256=rec.received_sha256.hex())
