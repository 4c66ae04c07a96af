"""The life of one letter for people: submitted → sealed → delivered → received → registered, or rejected.

Built from the audit events of the letter, its deliveries, and the notifiers
and receipts that answer it. Each step carries who, when and the agency it
concerns; the console shows it, the evidence bundle lists it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.core.envelope_reader import read_envelope
from gateway.core.xml import parse
from gateway.storage import deliveries, search
from gateway.storage.deliveries import DeliveryView

# Thai first, then English (the console shows both).
LABELS = {
    "message.accepted": ("รับเข้าระบบ", "Submitted and accepted"),
    "message.sealed": ("ประทับตราเกตเวย์", "Sealed by the gateway"),
    "delivery.delivered": ("ส่งถึงปลายทาง", "Delivered"),
    "delivery.retry": ("ส่งไม่สำเร็จ จะลองใหม่", "Delivery failed, will retry"),
    "delivery.dead": ("ส่งไม่สำเร็จ (หยุดส่ง)", "Dead letter"),
    "delivery.requeued": ("นำกลับเข้าคิว", "Requeued by an operator"),
    "delivery.withdrawn": ("ผู้ส่งถอนหนังสือ", "Withdrawn by the sender"),
    "notifier.received": ("ปลายทางได้รับหนังสือ", "Received by the registry"),
    "notifier.accepted": ("ลงทะเบียนรับแล้ว", "Registered"),
    "notifier.rejected": ("ปฏิเสธหนังสือ", "Rejected"),
    "notifier.invalid": ("แจ้งหนังสือผิด", "Reported invalid"),
    "receipt.delivery": ("ใบตอบรับการส่ง", "Delivery receipt"),
}


@dataclass(frozen=True)
class Step:
    at: dt.datetime
    kind: str
    label_th: str
    label_en: str
    agency: str | None
    detail: str
    seq: int | None
    """The audit event, when the step is one."""
    order: float = 0.0
    """Tie-break among steps at the same instant (the seal follows its acceptance)."""


async def build(pool: asyncpg.Pool, message: Mapping[str, Any]) -> tuple[list[Step], list[DeliveryView]]:
    pk = message["pk"]
    steps: list[Step] = []
    for e in await search.message_events(pool, pk):
        th, en = LABELS.get(e["kind"], (e["kind"], e["kind"]))
        d = e["details"] or {}
        agency = d.get("recipient") or (message["sender"] if e["kind"] == "message.accepted" else None)
        detail = d.get("reason") or d.get("sha256") or ""
        steps.append(Step(e["at"], e["kind"], th, en, agency, str(detail), e["seq"], e["seq"]))
        if e["kind"] == "message.accepted" and message["forwarded"] is not None:
            th, en = LABELS["message.sealed"]
            steps.append(Step(e["at"], "message.sealed", th, en, None,
                              hashlib.sha256(message["forwarded"]).hexdigest(), None, e["seq"] + 0.5))
    for r in await search.related(pool, message["message_id"]):
        kind = "receipt.delivery"
        registry = ""
        if r["message_type"] == "notifier":
            kind, registry = _notifier_kind(r["received"])
        th, en = LABELS.get(kind, (kind, kind))
        steps.append(Step(r["accepted_at"], kind, th, en, r["sender"], registry, None, float("inf")))
    steps.sort(key=lambda s: (s.at, s.order))
    dels = await deliveries.for_message(pool, pk)
    return steps, dels


def _notifier_kind(data: bytes) -> tuple[str, str]:
    """(kind, registry number) of a notifier envelope, read through the hardened parser."""
    try:
        n = read_envelope(parse(data)).notifier
    except Exception:  # a timeline must render even for an envelope it cannot read
        n = None
    if n is None:
        return "notifier.received", ""
    return f"notifier.{n.kind.value}", n.registry_number or ""
