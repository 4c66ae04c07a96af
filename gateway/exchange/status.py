"""What became of a letter: transport state per recipient and each registry's answer."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from gateway.core.envelope import MessageType
from gateway.core.errors import NotFound
from gateway.exchange.records import LetterRef, OutboundItem
from gateway.storage import deliveries, letters, messages
from gateway.storage import lists as lists_store
from gateway.storage import ltv as ltv_store
from gateway.storage.deliveries import DeliveryStatus


def _public_status(status: DeliveryStatus) -> str:
    """Statuses as the API names them."""
    return "retry-wait" if status is DeliveryStatus.RETRY_WAIT else status.value


class Status:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def message_status(self, sender: str, message_id: str, *, after: str | None = None,
                             limit: int = 100) -> dict[str, Any]:
        """A summary of every recipient (6,912 of 8,000 delivered, 41 registered, 3 dead), then one
        page of recipients in code order (``after`` the last code of the previous page): transport
        state per recipient and the business answer of each recipient's registry."""
        rec = await messages.get(self.pool, sender, message_id)
        if rec is None:
            raise NotFound(f"no message {message_id} from {sender}", code="message.not_found")
        summary = await lists_store.progress(self.pool, rec.pk)
        dels = await deliveries.for_message(self.pool, rec.pk, after=after, limit=limit + 1)
        more = len(dels) > limit
        dels = dels[:limit]
        answers: dict[str, dict[str, Any]] = {}
        history: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for e in await letters.history(self.pool, rec.pk):
            history.setdefault(e["delivery_id"], []).append(
                {"event": e["kind"].removeprefix("delivery."), "at": e["at"].isoformat(), "by": e["actor"]})
        resent: list[dict[str, Any]] = []
        is_letter = rec.message_type == MessageType.LETTER.value
        if is_letter and rec.letter_number is not None:
            resent = [{"message_id": r["message_id"], "accepted_at": r["accepted_at"].isoformat()}
                      for r in await letters.later_sends(self.pool, rec.sender, rec.letter_number,
                                                         rec.letter_date, rec.accepted_at, rec.pk)]
        if is_letter and dels:
            rows = await letters.business_answers(self.pool, rec.pk, [d.recipient for d in dels])
            answers = {r["sender"]: {"answer": r["notifier_kind"], "registry_number": r["registry_number"],
                                     "answered_at": r["accepted_at"].isoformat(),
                                     "notifier_message_id": r["message_id"]} for r in rows}
        return {
            "message_id": rec.message_id, "sender": rec.sender, "type": rec.message_type,
            "letter_number": rec.letter_number, "subject": rec.subject,
            "accepted_at": rec.accepted_at.isoformat(), "sha256": rec.received_sha256.hex(),
            "resent_as": resent,
            # held until the author's revocation check completes, or refused by it (issue 16)
            "validation": await ltv_store.validation_state(self.pool, rec.pk),
            "summary": summary.to_dict(),
            "next": dels[-1].recipient if more else None,
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

    async def find_letter(self, *, letter_number: str, letter_date: dt.date, sender: str | None = None,
                          recipient: str | None = None) -> LetterRef | None:
        """The latest letter by number and date that is still live for ``recipient`` (e-CMS correlation)."""
        row = await letters.find(self.pool, letter_number=letter_number, letter_date=letter_date,
                                 sender=sender, recipient=recipient)
        if row is None:
            return None
        return LetterRef(message_id=row["message_id"], sender=row["sender"],
                         recipients=tuple(row["recipients"]))

    async def outbound(self, sender: str, *, limit: int = 100) -> list[OutboundItem]:
        """What ``sender`` sent lately, with one overall state per item (e-CMS OutboundStatus)."""
        out = []
        for r in await letters.outbound(self.pool, sender, max(1, min(limit, 1000))):
            states = set(r["statuses"])
            overall = ("delivered" if states == {"delivered"} else "withdrawn" if states == {"withdrawn"}
                       else "dead" if "dead" in states else "pending")
            out.append(OutboundItem(message_id=r["message_id"], letter_number=r["letter_number"],
                                    status=overall))
        return out
