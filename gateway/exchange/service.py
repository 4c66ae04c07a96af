"""The exchange: what the API, the e-CMS facade, the CLI and the dispatcher call.

Accepting a letter is one database transaction (one round trip): the message
with the exact bytes received and the sealed bytes to forward, one delivery per
recipient, and the audit event. A unique key on (sender, message id) turns a
repeated submission into the original receipt. The answer (a signed receipt)
is sent only after that commit: a 202 is never given for a letter the database
does not hold. If the connection drops during the commit, the insert is retried
(tenacity); a retry that finds the first attempt committed returns its receipt,
so the sender sees exactly one letter either way. If the database stays
unreachable, the answer is 503 and the sender retries.

Completing a delivery (a push acknowledged, a pull acknowledged) is also one
transaction: the delivery's state, the receipt with the office's
acknowledgement as evidence, the delivery receipt as a new message back to the
sender (unless what was delivered is itself a receipt), and the audit event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
import tenacity

from adapters.base import Adapter
from adapters.push import AckVerifier
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.envelope import MessageType
from gateway.core.errors import Conflict, GatewayError, LetterSentOtherwise, NotFound, Unavailable
from gateway.core.metrics import Metrics
from gateway.core.parts import SpooledPart
from gateway.core.receipts import delivery_receipt_envelope, submission_receipt
from gateway.core.sealing import Sealer
from gateway.delivery.retry import RetryPolicy
from gateway.exchange.records import LetterRef, OutboundItem
from gateway.intake.checks import CheckedEnvelope, Intake
from gateway.storage import audit, db, deliveries, destinations, messages
from gateway.storage import parts as parts_store
from gateway.storage.batching import GroupCommitter
from gateway.storage.db import queries
from gateway.storage.deliveries import DeliveryStatus, InboxItem
from gateway.storage.messages import NewDelivery, NewMessage, SentOtherwise

log = structlog.get_logger(__name__)

_TRANSIENT = db.TRANSIENT_ERRORS


@dataclass(frozen=True)
class SubmitResult:
    message_id: str
    message_pk: int
    receipt: bytes
    """The signed submission receipt (the same bytes for a repeated submission)."""
    duplicate: bool
    sha256: str


def _db_retry() -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(_TRANSIENT),
        wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=0.5),
        stop=tenacity.stop_after_delay(3),
        reraise=True,
    )


class Exchange:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, intake: Intake, sealer: Sealer,
                 adapters: Mapping[str, Adapter], retry: RetryPolicy, clock: Clock, metrics: Metrics,
                 wake: Callable[[], None] | None = None, gateway_code: str = "0000000000",
                 acks: AckVerifier | None = None) -> None:
        self.pool = pool
        self.directory = directory
        self.intake = intake
        self.sealer = sealer
        self.adapters = adapters
        self.retry = retry
        self.clock = clock
        self.metrics = metrics
        self._wake = wake or (lambda: None)
        self.gateway_code = gateway_code
        #: Checks a pulled delivery's DeliveryAck (signature, signer's agency, digest).
        self.acks = acks or AckVerifier()
        self.stamp_received = False
        #: Back-pressure (gateway.intake.limits.Admission), set by the app.
        self.admission = None
        self.committer: GroupCommitter[NewMessage, int | SentOtherwise | None] = GroupCommitter(
            lambda batch: messages.insert_many(self.pool, batch), lambda m: messages.insert(self.pool, m),
            max_batch=128, max_parallel=4, passthrough=_TRANSIENT)

    # ------------------------------------------------------------------ submit

    async def submit(self, data: bytes, *, agency: str, channel: str = "native",
                     evidence: bytes | None = None, parts: Mapping[str, SpooledPart] | None = None,
                     resend_guard: str | None = None) -> SubmitResult:
        """Check, store and queue one envelope from ``agency``; return its receipt.

        ``resend_guard`` (a letter's message id without its ``.r<n>`` resend suffix): refuse with
        :class:`LetterSentOtherwise` when a recipient's latest live letter under the same number and
        date is another letter (the e-CMS rule), checked in the statement that stores the letter."""
        if self.admission is not None:
            try:
                await self.admission.admit(agency)
            except GatewayError as exc:
                self.metrics.rejected.labels(code=exc.code).inc()
                raise
        try:
            checked = await self.intake.check(data, agency=agency, channel=channel, parts=parts)
        except GatewayError as exc:
            self.metrics.rejected.labels(code=exc.code).inc()
            await self._record_rejection(agency, channel, data, exc)
            raise
        except Exception as exc:  # a PkiError or another library's error with a code
            code = getattr(exc, "code", None)
            if code is not None:
                self.metrics.rejected.labels(code=code).inc()
                await self._record_rejection(agency, channel, data, exc)
            raise
        try:
            return await self.store(checked, channel=channel, evidence=evidence, resend_guard=resend_guard)
        except Conflict as exc:  # the message id was used for other bytes, or the letter was sent otherwise
            await self._record_rejection(agency, channel, data, exc)
            raise

    async def _record_rejection(self, agency: str, channel: str, data: bytes, exc: Exception) -> None:
        """An audit event for a refused submission of an authenticated agency: who, when, why, and the
        SHA-256 of what was refused (never the bytes: nothing refused is stored). Best effort: a
        refusal is answered even when the database cannot record it."""
        details = {"code": getattr(exc, "code", None), "field": getattr(exc, "field", None),
                   "status": getattr(exc, "status", None), "channel": channel, "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest()}
        try:
            await audit.append(self.pool, at=self.clock.now(), actor=agency, kind="message.rejected",
                               details={k: v for k, v in details.items() if v is not None})
        except Exception as err:  # noqa: BLE001 - the refusal itself must still reach the sender
            log.warning("could not record a refusal in the audit log", code=details["code"],
                        error=f"{type(err).__name__}: {err}")

    def _initial_status(self, recipient: str) -> tuple[str, str]:
        route = self.directory[recipient].route
        adapter = self.adapters.get(route.kind)
        pushes = True if adapter is None else adapter.pushes
        return route.kind, (DeliveryStatus.QUEUED.value if pushes else DeliveryStatus.INBOX.value)

    async def store(self, checked: CheckedEnvelope, *, channel: str, evidence: bytes | None,
                    resend_guard: str | None = None) -> SubmitResult:
        env = checked.envelope
        h = env.header
        now = self.clock.now()
        receipt = self.sealer.sign_receipt(submission_receipt(
            message_id=h.message_id, sender=h.sender, sha256_hex=checked.sha256_hex, at=now,
            gateway_code=self.gateway_code))
        forwarded = self.sealer.seal_envelope(checked.raw)
        new_deliveries = []
        for recipient in h.recipients:
            route, status = self._initial_status(recipient)
            new_deliveries.append(NewDelivery(uuid.uuid4(), recipient, route, status))
        letter, notifier = env.letter, env.notifier
        new = NewMessage(
            sender=h.sender, message_id=h.message_id, message_type=h.message_type.value,
            conversation_id=h.conversation_id or h.message_id, ref_to_message_id=h.ref_to_message_id,
            letter_number=letter.number if letter else (notifier.letter_number if notifier else None),
            letter_date=letter.date if letter else (notifier.letter_date if notifier else None),
            subject=letter.subject if letter else (notifier.subject if notifier else None),
            speed=letter.speed.value if letter else None, secrecy=letter.secrecy.value if letter else None,
            channel=channel, received_sha256=checked.sha256, received=checked.raw, forwarded=forwarded,
            evidence=evidence, receipt=receipt, accepted_at=now,
            expires_at=now + dt.timedelta(seconds=self.retry.ttl_s), deliveries=new_deliveries,
            notifier_kind=notifier.kind.value if notifier else None,
            registry_number=notifier.registry_number if notifier else None, parts=len(checked.parts),
            resend_guard=resend_guard if letter is not None else None,
            audit={"message_id": h.message_id, "type": h.message_type.value, "channel": channel,
                   "recipients": list(h.recipients), "sha256": checked.sha256_hex,
                   **({"sealed": True, "forwarded_sha256": hashlib.sha256(forwarded).hexdigest()}
                      if forwarded is not checked.raw and forwarded != checked.raw else {"sealed": False}),
                   **({"notifier": notifier.kind.value} if notifier else {}),
                   **({"parts": {p.content_id: p.sha256 for p in checked.parts}} if checked.parts else {}),
                   **{k: v for k, v in checked.facts.items() if isinstance(v, (str, bool, int))}},
        )
        insert = (lambda: self._insert_with_parts(new, checked.parts)) if checked.parts \
            else (lambda: self.committer.submit(new))
        try:
            pk = await db.call_with_retries(insert, _db_retry)
        except _TRANSIENT as exc:
            log.error("database unavailable while accepting", error=str(exc))
            raise Unavailable("the gateway cannot store letters right now; retry later",
                              code="unavailable.database") from None
        if pk is None:
            return await self._duplicate(h.sender, h.message_id, checked.sha256)
        if isinstance(pk, SentOtherwise):
            raise LetterSentOtherwise(f"letter {letter.number} of {letter.date.isoformat()} was already sent to "
                                      f"{pk.recipient} as another letter; withdraw that one first",
                                      recipient=pk.recipient)
        self.metrics.accepted.labels(type=h.message_type.value, channel=channel).inc()
        if notifier is not None and notifier.registry_number and notifier.kind.value == "accepted" \
                and self.stamp_received:
            await self._stamp(pk, h, notifier)
        log.info("message accepted", message_id=h.message_id, sender=h.sender, recipients=len(h.recipients),
                 message_pk=pk)
        if any(d.status == DeliveryStatus.QUEUED.value for d in new_deliveries):
            self._wake()
        return SubmitResult(message_id=h.message_id, message_pk=pk, receipt=receipt, duplicate=False,
                            sha256=checked.sha256_hex)

    async def _insert_with_parts(self, new: NewMessage, spooled) -> int | SentOtherwise | None:
        """A letter with files beside it: its own transaction (too big to share a group commit),
        the files copied from the spool chunk by chunk; all of it commits or none."""
        async with self.pool.acquire() as conn, conn.transaction():
            pk = await messages.insert(conn, new)
            if isinstance(pk, int):
                await parts_store.insert(conn, pk, spooled)
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

    async def _stamp(self, notifier_pk: int, h, notifier) -> None:
        """Keep a copy of the letter's main PDF with the receiving stamp (ตรารับ) of the accepting
        registry. Derived data after the notifier is committed: a failure is logged, never raised."""
        from gateway.core import xml as gxml
        from gateway.core.envelope import read_attachments

        try:
            for letter_sender in h.recipients:
                row = await self.pool.fetchrow(queries["letter_for_notifier"], letter_sender, h.ref_to_message_id,
                                               notifier.letter_number, notifier.letter_date, h.sender)
                if row is None:
                    continue
                main = next((a for a in read_attachments(gxml.parse(row["received"]))
                             if a.role == "main" and a.mime_type == "application/pdf"), None)
                if main is None:
                    continue
                content = main.content
                if main.external:  # the main PDF travelled beside the envelope
                    content = await parts_store.read(self.pool, row["pk"], main.id)
                from pki.pdf import stamp_received

                agency = self.directory.get(h.sender)
                at = notifier.registered_at or self.clock.now()
                pdf = await asyncio.to_thread(stamp_received, content,
                                              agency_name=agency.name_th if agency else h.sender,
                                              registry_number=notifier.registry_number, received_at=at)
                await self.pool.execute(queries["upsert_stamp"], row["pk"], h.sender, notifier.registry_number,
                                        notifier_pk, pdf, self.clock.now())
                log.info("receiving stamp made", letter=row["message_id"], recipient=h.sender)
        except Exception as exc:
            log.warning("could not make the receiving stamp", error=f"{type(exc).__name__}: {exc}")

    async def stamped_letter(self, agency: str, message_id: str, recipient: str) -> bytes:
        """The stamped main PDF, for the letter's sender or the stamping recipient."""
        row = None
        if agency == recipient:
            row = await self.pool.fetchrow(
                "SELECT s.pdf FROM stamped_letters s JOIN messages m ON m.pk = s.letter_pk "
                "WHERE m.message_id = $1 AND s.recipient = $2", message_id, recipient)
        if row is None:
            row = await self.pool.fetchrow(queries["stamped_letter"], agency, message_id, recipient)
        if row is None:
            raise NotFound("no stamped copy of that letter for that recipient", code="stamp.not_found")
        return row["pdf"]

    # ------------------------------------------------------------------ status

    async def message_status(self, sender: str, message_id: str) -> dict[str, Any]:
        """Transport state per recipient, and the business answer of each recipient's registry."""
        rec = await messages.get(self.pool, sender, message_id)
        if rec is None:
            raise NotFound(f"no message {message_id} from {sender}", code="message.not_found")
        dels = await deliveries.for_message(self.pool, rec.pk)
        answers: dict[str, dict] = {}
        history: dict[uuid.UUID, list[dict]] = {}
        for e in await self.pool.fetch(queries["delivery_history"], rec.pk):
            history.setdefault(e["delivery_id"], []).append(
                {"event": e["kind"].removeprefix("delivery."), "at": e["at"].isoformat(), "by": e["actor"]})
        resent: list[dict] = []
        if rec.message_type == MessageType.LETTER.value and rec.letter_number is not None:
            resent = [{"message_id": r["message_id"], "accepted_at": r["accepted_at"].isoformat()}
                      for r in await self.pool.fetch(queries["later_sends"], rec.sender, rec.letter_number,
                                                     rec.letter_date, rec.accepted_at, rec.pk)]
        if rec.message_type == MessageType.LETTER.value and dels:
            rows = await self.pool.fetch(queries["business_answers"], rec.message_id, rec.sender,
                                         rec.letter_number, rec.letter_date, [d.recipient for d in dels],
                                         rec.accepted_at)
            answers = {r["sender"]: {"answer": r["notifier_kind"], "registry_number": r["registry_number"],
                                     "answered_at": r["accepted_at"].isoformat(),
                                     "notifier_message_id": r["message_id"]} for r in rows}
        return {
            "message_id": rec.message_id, "sender": rec.sender, "type": rec.message_type,
            "letter_number": rec.letter_number, "subject": rec.subject,
            "accepted_at": rec.accepted_at.isoformat(), "sha256": rec.received_sha256.hex(),
            "resent_as": resent,
            "recipients": [
                {"recipient": d.recipient, "delivery_id": str(d.id), "route": d.route,
                 "status": _public_status(d.status), "attempts": d.attempts,
                 "next_attempt_at": d.next_attempt_at.isoformat()
                 if d.status in (DeliveryStatus.RETRY_WAIT, DeliveryStatus.QUEUED) else None,
                 "last_error": d.last_error,
                 "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                 "withdrawn_at": next((e["at"] for e in reversed(history.get(d.id, []))
                                       if e["event"] == "withdrawn"), None)
                 if d.status is DeliveryStatus.WITHDRAWN else None,
                 "history": history.get(d.id, []),
                 **answers.get(d.recipient, {"answer": None})}
                for d in dels],
        }

    # ------------------------------------------------------------------ business cycle

    async def find_letter(self, *, letter_number: str, letter_date: dt.date, sender: str | None = None,
                          recipient: str | None = None):
        """The latest letter by number and date that is still live for ``recipient`` (e-CMS correlation)."""
        row = await self.pool.fetchrow(queries["find_letter"], letter_number, letter_date, sender, recipient)
        if row is None:
            return None
        return LetterRef(message_id=row["message_id"], sender=row["sender"], recipients=tuple(row["recipients"]))

    async def withdraw(self, sender: str, *, letter_number: str, letter_date: dt.date, recipient: str) -> int:
        """Withdraw a letter (by number and date, the e-CMS way) from one recipient; returns how many."""
        return await self._withdraw(sender, queries["withdraw"], sender, letter_number, letter_date, recipient)

    async def withdraw_message(self, sender: str, message_id: str, recipients: list[str] | None = None) -> int:
        """Withdraw a letter by message id from some or all recipients; returns how many deliveries."""
        if await messages.get(self.pool, sender, message_id) is None:
            raise NotFound(f"no message {message_id} from {sender}", code="message.not_found")
        return await self._withdraw(sender, queries["withdraw_by_id"], sender, message_id, recipients)

    async def _withdraw(self, actor: str, sql: str, *params) -> int:
        """Withdraw only what is not delivered yet, or what its recipient rejected or marked
        invalid: a letter a registry received or accepted is on its file and stays. All or
        nothing: if one targeted delivery may not be withdrawn, none is (409)."""
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql, *params)
            blocked = [r for r in rows if not r["withdrawable"]]
            if blocked:
                which = ", ".join(f"{r['recipient']} ({r['answer'] or 'no answer'})" for r in blocked)
                raise Conflict(f"letter {rows[0]['message_id']} was delivered and not rejected or marked invalid "
                               f"by {which}; only an undelivered, rejected or invalid letter can be withdrawn",
                               code="message.not_withdrawable", field="recipients")
            for r in rows:
                await audit.append(conn, at=now, actor=actor, kind="delivery.withdrawn",
                                   message_pk=r["message_pk"], delivery_id=r["id"],
                                   details={"message_id": r["message_id"], "recipient": r["recipient"],
                                            "was": r["status"], "answer": r["answer"]})
        return len(rows)

    async def outbound(self, sender: str, *, limit: int = 100):
        """What ``sender`` sent lately, with one overall state per item (e-CMS OutboundStatus)."""
        rows = await self.pool.fetch(queries["outbound"], sender, max(1, min(limit, 1000)))
        out = []
        for r in rows:
            states = set(r["statuses"])
            overall = ("delivered" if states == {"delivered"} else "withdrawn" if states == {"withdrawn"}
                       else "dead" if "dead" in states else "pending")
            out.append(OutboundItem(message_id=r["message_id"], letter_number=r["letter_number"], status=overall))
        return out

    # ------------------------------------------------------------------ pull inbox

    async def inbox(self, agency: str, *, limit: int = 50, receipts: bool = True) -> list[InboxItem]:
        """The oldest waiting items; ``receipts=False`` (the e-CMS facade) leaves delivery receipts
        out, which stay in the native inbox (``GET /v1/inbox``) until acknowledged there."""
        return await deliveries.inbox(self.pool, agency, max(1, min(limit, 500)), receipts=receipts)

    async def inbox_item(self, agency: str, delivery_id: uuid.UUID) -> InboxItem:
        row = await deliveries.inbox_item(self.pool, agency, delivery_id)
        if row is None or row["status"] != DeliveryStatus.INBOX.value:
            raise NotFound(f"no delivery {delivery_id} in the inbox of {agency}", code="inbox.not_found")
        return InboxItem.from_row(row)

    async def parts_of(self, message_pk: int):
        """The files stored beside a message's envelope (gateway.core.parts.PartInfo)."""
        return await parts_store.list_parts(self.pool, message_pk)

    def part_chunks(self, message_pk: int, content_id: str):
        """One stored file, chunk by chunk."""
        return parts_store.iter_chunks(self.pool, message_pk, content_id)

    async def ack(self, agency: str, delivery_id: uuid.UUID, *, ack: bytes | None = None) -> str:
        """Complete a pull delivery; idempotent. Returns the delivery's state afterwards.

        A DeliveryAck that is signed must verify and name the delivered bytes
        (:class:`adapters.push.AckVerifier`; ``ack.*`` 422 otherwise).
        """
        facts = None
        if ack is not None:
            # Checked before the transaction and its row lock: the trust store may fetch OCSP/CRLs.
            # (Outside a transaction the query's FOR UPDATE lasts only for the statement.)
            row = await deliveries.lock_for_ack(self.pool, delivery_id)
            if row is not None and row["recipient"] == agency and row["status"] == DeliveryStatus.INBOX.value:
                facts = await self.acks.verify(ack, agency=agency, delivery_id=str(delivery_id),
                                               delivered=row["forwarded"])
        async with self.pool.acquire() as conn, conn.transaction():
            row = await deliveries.lock_for_ack(conn, delivery_id)
            if row is None or row["recipient"] != agency:
                raise NotFound(f"no delivery {delivery_id} for {agency}", code="inbox.not_found")
            if row["status"] == DeliveryStatus.DELIVERED.value:
                return "delivered"
            if row["status"] != DeliveryStatus.INBOX.value:
                raise Conflict(f"delivery {delivery_id} is {row['status']}", code="inbox.not_pending")
            await self.complete_delivery(conn, delivery_id=delivery_id, worker=None, ack=ack, actor=agency,
                                         ack_facts=facts)
        self.metrics.delivered.labels(route="pull").inc()
        self._wake()
        return "delivered"

    async def complete_delivery(self, conn: asyncpg.Connection, *, delivery_id: uuid.UUID, worker: str | None,
                                ack: bytes | None, actor: str, ack_facts: Mapping[str, Any] | None = None,
                                attempt: tuple[int, dt.datetime] | None = None,
                                destination: str | None = None) -> bool:
        """Inside the caller's transaction: delivered + receipt + receipt message + audit.

        ``ack_facts``: what was checked about ``ack`` (adapters.push.AckVerifier), kept in the audit event.
        From the dispatcher, ``attempt`` (number, start) is recorded as the delivering attempt and
        ``destination``'s failure count is reset. Three round trips in all (the delivery, the
        receipt message, the rest), where one statement each took eight.
        """
        now = self.clock.now()
        row = await deliveries.mark_delivered_for_receipt(conn, delivery_id, worker, now)
        if row is None:
            if attempt is not None:  # delivered after the lease was lost: the attempt still happened
                await deliveries.record_attempt(conn, delivery_id, attempt[0], attempt[1], now, "delivered", None)
            if destination is not None:
                await destinations.succeeded(conn, destination, now)
            return False
        sha = row["forwarded_sha256"].hex()
        receipt_xml, receipt = b"", None
        if row["message_type"] != MessageType.RECEIPT.value and row["sender"] in self.directory:
            receipt_id, receipt_env = delivery_receipt_envelope(
                delivery_id=delivery_id, message_id=row["message_id"], conversation_id=row["conversation_id"],
                sender=row["sender"], recipient=row["recipient"], sha256_hex=sha, at=now)
            receipt_xml = self.sealer.sign_receipt(receipt_env)
            route, status = self._initial_status(row["sender"])
            receipt = NewMessage(
                sender=row["recipient"], message_id=receipt_id, message_type=MessageType.RECEIPT.value,
                conversation_id=row["conversation_id"], ref_to_message_id=row["message_id"],
                letter_number=None, letter_date=None, subject=None, speed=None, secrecy=None, channel="gateway",
                received_sha256=hashlib.sha256(receipt_env).digest(), received=receipt_env,
                forwarded=receipt_xml, evidence=ack, receipt=receipt_xml, accepted_at=now,
                expires_at=now + dt.timedelta(seconds=self.retry.ttl_s),
                deliveries=[NewDelivery(uuid.uuid4(), row["sender"], route, status)],
                audit={"kind": "delivery receipt", "for_delivery": str(delivery_id),
                       "message_id": row["message_id"]})
        # delivery.delivered is logged before the receipt message's message.accepted, as it happened
        await deliveries.completed(conn, delivery_id=delivery_id, message_pk=row["message_pk"], at=now, actor=actor,
                                   details={"recipient": row["recipient"], "sha256": sha, **(ack_facts or {})},
                                   receipt=receipt_xml, ack=ack, destination=destination, attempt=attempt)
        if receipt is not None:
            await messages.insert(conn, receipt)
        return True

    # ------------------------------------------------------------------ operators

    async def record_directory(self, *, actor: str = "gateway") -> bool:
        """Audit a change of the agency directory (who exists, routes, credentials): an event
        when this process starts with a directory unlike the last one recorded. True if recorded."""
        digest = self.directory.digest()
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", 0x5A4A_BA4E_0D1C)
            last = await conn.fetchval(queries["last_directory_digest"])
            if last == digest:
                return False
            await audit.append(conn, at=now, actor=actor, kind="directory.changed",
                               details={"sha256": digest, "previous_sha256": last, "agencies": len(self.directory)})
        log.info("directory change recorded in the audit log", sha256=digest)
        return True

    async def requeue(self, delivery_id: uuid.UUID, *, actor: str) -> None:
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await deliveries.requeue(conn, delivery_id, now, now + dt.timedelta(seconds=self.retry.ttl_s))
            if row is None:
                raise Conflict(f"delivery {delivery_id} is not dead or waiting", code="delivery.not_requeueable")
            await audit.append(conn, at=now, actor=actor, kind="delivery.requeued", message_pk=row["message_pk"],
                               delivery_id=delivery_id, details={"recipient": row["recipient"]})
        self.metrics.requeued.inc()
        self._wake()


def _public_status(status: DeliveryStatus) -> str:
    """Statuses as the API names them."""
    return "retry-wait" if status is DeliveryStatus.RETRY_WAIT else status.value
