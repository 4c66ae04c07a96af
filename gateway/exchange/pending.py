"""Validation-pending: letters whose author's revocation status could not be established, re-checked.

Under ``GATEWAY_REVOCATION=hard-fail`` a letter whose signer's OCSP responders and CRL distribution
points are unreachable (the author's XML signature's, or the main PDF's PAdES signature's: the same
rule) is neither refused (the outage is not the sender's fault) nor forwarded (nothing unverified
travels): :class:`gateway.exchange.accept.Acceptance` stores it with every other
check done, answers with a ``submission-pending`` receipt, and parks its planned deliveries in
``validation_pending`` (the deliveries table has no row for it, so no dispatcher and no inbox can
claim it). State lives in the database: a restart, a SIGKILL or another gateway process picks it up.

:class:`PendingChecks` re-verifies due letters, one row at a time (``FOR UPDATE SKIP LOCKED``, any
number of processes). :func:`decide` is the pure rule:

==========================================  =====================================================
outcome of the re-check                     decision
==========================================  =====================================================
verified (revocation established, good)     **forward**: deliveries created, material kept,
                                            ``validation.completed``
``certificate.revocation_unknown``          **retry** after ``first_s * 2**checks`` (at most
                                            ``max_s``), until the deadline
deadline passed while still unknown         **refuse** (``validation.timeout``)
any other failure (revoked above all;       **refuse** with that code
the PDF's refused as intake refuses it)
==========================================  =====================================================

A refused letter stays stored (nothing is lost; it is evidence) with a ``validation.refused`` audit
event, and its sender gets an InvalidLetterNotifier from the gateway naming the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import structlog
from lxml import etree

from adapters.base import Adapter
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.envelope import Envelope, Header, MessageType, Notifier, NotifierKind
from gateway.core.envelope_builder import build_envelope
from gateway.core.envelope_reader import read_attachments
from gateway.core.errors import GatewayError
from gateway.core.rounds import run_rounds
from gateway.core.sealing import PdfChecker, Sealer
from gateway.exchange.validation import ValidationRecorder
from gateway.storage import Executor, audit, messages
from gateway.storage import ltv as store
from gateway.storage import parts as parts_store
from gateway.storage.messages import NewDelivery, NewMessage
from gateway.storage.receipts import first_status
from pki.errors import PkiError
from pki.ltv import capturing
from pki.trust import TrustStore
from pki.verify import verify_envelope

log = structlog.get_logger(__name__)

Action = Literal["forward", "retry", "refuse"]

#: Why a letter is refused when its pending time ran out: an audit event's and notifier's reason, never
#: an answer to a request (the letter was accepted, pending), so not in any edge's error table.
TIMED_OUT = "validation.timeout"


@dataclass(frozen=True)
class Decision:
    action: Action
    #: When to check again (retry only).
    next_check: dt.datetime | None = None
    #: Why a letter is refused (refuse only).
    code: str | None = None


def decide(code: str | None, *, now: dt.datetime, deadline: dt.datetime, checks: int, first_s: float = 30.0,
           max_s: float = 1800.0) -> Decision:
    """The pure rule of the module docstring; ``code`` is None when the re-check verified."""
    if code is None:
        return Decision("forward")
    if code != "certificate.revocation_unknown":
        return Decision("refuse", code=code)
    if now >= deadline:
        return Decision("refuse", code=TIMED_OUT)
    wait = min(first_s * (2 ** min(checks, 30)), max_s)
    return Decision("retry", next_check=min(now + dt.timedelta(seconds=wait), deadline))


class PendingChecks:
    def __init__(self, *, pool: asyncpg.Pool, trust: TrustStore, recorder: ValidationRecorder | None, clock: Clock,
                 directory: Directory, adapters: Mapping[str, Adapter], sealer: Sealer, gateway_code: str,
                 ttl_s: float, wake: Callable[[], None],
                 first_s: float = 30.0, max_s: float = 1800.0, allow_sha1: bool = False,
                 pdf_checker: PdfChecker | None = None) -> None:
        self.pool, self.trust, self.recorder, self.clock = pool, trust, recorder, clock
        self.directory, self.adapters, self.sealer = directory, adapters, sealer
        self.gateway_code, self.ttl_s, self.wake = gateway_code, ttl_s, wake
        self.first_s, self.max_s, self.allow_sha1 = first_s, max_s, allow_sha1
        #: Intake's check of the main PDF's signature (None: PDFs are not validated).
        self.pdf_checker = pdf_checker
        self._stop = asyncio.Event()

    async def run_once(self, limit: int = 100) -> dict[str, int]:
        """Re-check up to ``limit`` due letters; how many were forwarded, retried, refused."""
        done = {"forward": 0, "retry": 0, "refuse": 0}
        for _ in range(limit):
            action = await self._one()
            if action is None:
                break
            done[action] += 1
        if done["forward"]:
            self.wake()
        return done

    async def held(self) -> tuple[int, dt.datetime | None]:
        """How many letters are held and since when (``/metrics`` reads the same from the database at
        scrape time: gateway.storage.gauges, so every worker answers alike)."""
        return await store.pending_stats(self.pool)

    async def _one(self) -> Action | None:
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            due = await store.due_pending(conn, now, 1)
            if not due:
                return None
            p = due[0]
            code, message = None, ""
            facts: dict[str, Any] = {"signed": True, "recheck": p.checks + 1}
            with capturing() as cap:
                try:
                    verified = await verify_envelope(p.received, self.trust, sender=p.sender,
                                                     allow_sha1=self.allow_sha1, require_signature=False)
                    facts.update(await self._check_pdf(conn, p, verified.root))
                except (PkiError, GatewayError) as exc:
                    code, message = exc.code, exc.message
            decision = decide(code, now=now, deadline=p.deadline, checks=p.checks, first_s=self.first_s,
                              max_s=self.max_s)
            if decision.action == "forward":
                kept: dict[str, Any] = {k: v for k, v in facts.items() if k.startswith("pdf_")}
                if self.recorder is not None:
                    kept.update(await self.recorder.record(cap, facts, directory_version=self.directory.version,
                                                           sender=p.sender))
                facts = kept
                await store.release_pending(conn, self._routed(p), now)
                await audit.append(conn, at=now, actor="gateway", kind="validation.completed", message_pk=p.message_pk,
                                   details={"message_id": p.message_id, "checks": p.checks + 1,
                                            "pending_seconds": int((now - p.since).total_seconds()), **facts})
                log.info("validation-pending letter forwarded", message_id=p.message_id, sender=p.sender)
            elif decision.action == "retry":
                assert decision.next_check is not None
                await store.backoff_pending(conn, p.message_pk, decision.next_check, message)
            else:
                await store.drop_pending(conn, p.message_pk)
                await audit.append(conn, at=now, actor="gateway", kind="validation.refused", message_pk=p.message_pk,
                                   details={"message_id": p.message_id, "code": decision.code, "reason": message[:500],
                                            "checks": p.checks + 1})
                await self._notify(conn, p, decision.code or "", now)
                log.warning("validation-pending letter refused", message_id=p.message_id, sender=p.sender,
                            code=decision.code)
            return decision.action

    async def _check_pdf(self, conn: Executor, p: store.Pending, root: etree._Element) -> dict[str, Any]:
        """The main PDF's signature checked again as intake checks it (its outage is what may have held
        the letter); the facts it establishes, or the refusal it raises."""
        if self.pdf_checker is None:
            return {}
        main = next((a for a in read_attachments(root) if a.role == "main" and a.mime_type == "application/pdf"),
                    None)
        if main is None:
            return {}
        content = await parts_store.read(conn, p.message_pk, main.id) if main.external else main.content
        return await self.pdf_checker(content, p.sender)

    def _routed(self, p: store.Pending) -> store.Pending:
        """The planned deliveries with each recipient's route in force now (it may have changed while held)."""
        out = []
        for d in p.deliveries:
            try:
                route, status = first_status(self.directory, self.adapters, d["recipient"])
            except KeyError:  # no longer served: the route planned at acceptance (a dead letter if it fails)
                route, status = d["route"], d["status"]
            out.append({**d, "route": route, "status": status})
        return dataclasses.replace(p, deliveries=out)

    async def _notify(self, conn: Executor, p: store.Pending, code: str, now: dt.datetime) -> None:
        """An InvalidLetterNotifier from the gateway to the sender (letters only: a notifier names a letter)."""
        if p.letter_number is None or p.letter_date is None or self.directory.route_of(p.sender) is None:
            return
        reason = {"certificate.revoked": "ใบรับรองของผู้ลงนามถูกเพิกถอน (the signer's certificate is revoked)",
                  "validation.timeout": "ตรวจสอบสถานะการเพิกถอนใบรับรองของผู้ลงนามไม่ได้ภายในเวลาที่กำหนด "
                                        "(the signer's revocation status could not be checked in time)"}.get(
            code, f"ลายมือชื่อของผู้ลงนามใช้ไม่ได้ (the author's signature is not valid: {code})")
        message_id = f"validation-refused-{p.message_pk}"
        envelope = build_envelope(Envelope(
            header=Header(message_id=message_id, message_type=MessageType.NOTIFIER, created_at=now,
                          sender=self.gateway_code, recipients=(p.sender,), ref_to_message_id=p.message_id),
            body=Notifier(kind=NotifierKind.INVALID, letter_number=p.letter_number, letter_date=p.letter_date,
                          subject=p.subject, reason=reason)))
        route, status = first_status(self.directory, self.adapters, p.sender)
        await messages.insert(conn, NewMessage(
            sender=self.gateway_code, message_id=message_id, message_type="notifier", conversation_id=p.message_id,
            ref_to_message_id=p.message_id, letter_number=p.letter_number, letter_date=p.letter_date,
            subject=p.subject, speed=None, secrecy=None, channel="gateway",
            received_sha256=hashlib.sha256(envelope).digest(), received=envelope,
            forwarded=self.sealer.seal_envelope(envelope), evidence=None, receipt=b"", accepted_at=now,
            expires_at=now + dt.timedelta(seconds=self.ttl_s),
            deliveries=[NewDelivery(messages.delivery_ids(1)[0], p.sender, route, status)], notifier_kind="invalid",
            audit={"message_id": message_id, "type": "notifier", "channel": "gateway", "notifier": "invalid",
                   "recipients": [p.sender], "refused_message_pk": p.message_pk, "code": code}))

    async def run(self, interval_s: float = 5.0) -> None:
        """Re-check due letters every ``interval_s`` until :meth:`stop`."""
        async def round_() -> bool:
            await self.run_once()
            return False

        await run_rounds(round_, self._stop, interval_s=interval_s, what="validation-pending re-check", log=log)

    def stop(self) -> None:
        self._stop.set()
