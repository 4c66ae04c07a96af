"""Route-change notices: an agency is told, over its old route and its new one, that its route changed.

A route decides where an agency's letters go, so changing one is how letters could be redirected
away from it. Every change (API, console, CLI, an import, a start-up file) is a directory version;
when a process puts a version in force, it sends, for each agency whose route changed, a letter
from the gateway to the agency over the old route (a delivery pinned to it) and over the new route.
The message ids are derived from the version and the agency, so the notices are sent once however
many processes see the version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import asyncpg
import structlog

from adapters.base import Adapter
from gateway.core.clock import BANGKOK, Clock
from gateway.core.directory import Directory
from gateway.core.envelope import Envelope, Header, Letter, MessageType, Secrecy, Speed
from gateway.core.envelope_builder import build_envelope
from gateway.core.sealing import Sealer
from gateway.storage import directory as store
from gateway.storage.deliveries import DeliveryStatus
from gateway.storage.messages import delivery_ids
from gateway.storage.receipts import first_status
from pki import thaidate

log = structlog.get_logger(__name__)


def describe(route: Mapping[str, Any] | None) -> str:
    """A route as a clerk reads it: ``push https://…`` / ``pull`` (the inbox) / ``via 1550100000``."""
    if not route:
        return "pull"
    settings = {k: v for k, v in route.items() if k != "kind"}
    kind = str(route.get("kind", "pull"))
    target = settings.get("url") or settings.get("path") or settings.get("agency") or ""
    return f"{kind} {target}".strip()


class RouteNotices:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, sealer: Sealer, clock: Clock,
                 adapters: Mapping[str, Adapter], gateway_code: str, ttl_s: float) -> None:
        self.pool = pool
        self.directory = directory
        self.sealer = sealer
        self.clock = clock
        self.adapters = adapters
        self.gateway_code = gateway_code
        self.ttl_s = ttl_s

    async def send(self, after: int, upto: int) -> int:
        """Send the notices of the route changes in versions (``after``, ``upto``]; how many were new."""
        sent = 0
        for change in await store.route_changes(self.pool, after, upto):
            for which in ("old", "new"):
                if await store.insert_route_notice(self.pool, self._notice(change, which)):
                    sent += 1
        if sent:
            log.info("route change notices sent", notices=sent, versions=f"{after + 1}..{upto}")
        return sent

    def _notice(self, change: dict[str, Any], which: str) -> store.RouteNotice:
        before, after = change["before_entry"], change["after_entry"]
        code, version, at = change["code"], change["version"], change["at"]
        route = (before if which == "old" else after).get("route") or {"kind": "pull"}
        now = self.clock.now()
        local = at.astimezone(BANGKOK)
        text = (f"ช่องทางรับหนังสือของ{after['name_th']} (รหัส {code}) ในทำเนียบหน่วยงานของระบบแลกเปลี่ยนหนังสือ"
                f"ได้เปลี่ยนจาก {describe(before.get('route'))} เป็น {describe(after.get('route'))} "
                f"เมื่อวันที่ {thaidate.thai_date(local, short=False)} เวลา {thaidate.thai_time(local)} น. "
                f"โดย {change['actor']} (ทำเนียบฉบับที่ {version}; เหตุผล: {change['reason']}) "
                "หากหน่วยงานมิได้ขอเปลี่ยน โปรดแจ้งผู้ดูแลระบบโดยด่วน")
        subject = f"แจ้งการเปลี่ยนช่องทางรับหนังสือของ{after['name_th']}"
        message_id = f"route-notice-{version}-{code}-{which}"
        envelope = build_envelope(Envelope(
            header=Header(message_id=message_id, message_type=MessageType.LETTER, created_at=now,
                          sender=self.gateway_code, recipients=(code,)),
            body=Letter(number=f"ทข {version}/{code}", date=local.date(), subject=subject, addressee=after["name_th"],
                        speed=Speed.URGENT, secrecy=Secrecy.NORMAL, signer_name="ระบบแลกเปลี่ยนหนังสือราชการ",
                        signer_position="ผู้ให้บริการเกตเวย์", body=text)))
        pinned: dict[str, Any] | None = None
        if which == "old":
            hub = self.directory.get(str(route.get("agency", ""))) if route.get("kind") == "via" else None
            # an old route through a hub: the hub's route (an old route pinned as 'via' has no adapter)
            pinned = dict(route) if hub is None else {"kind": hub.route.kind, **hub.route.settings}
            kind = str(pinned.get("kind", "pull"))
            adapter = self.adapters.get(kind)
            status = DeliveryStatus.QUEUED.value if adapter is None or adapter.pushes else DeliveryStatus.INBOX.value
        else:
            kind, status = first_status(self.directory, self.adapters, code)
        return store.RouteNotice(
            sender=self.gateway_code, message_id=message_id, subject=subject, received=envelope,
            forwarded=self.sealer.seal_envelope(envelope), at=now, delivery_id=delivery_ids(1)[0], recipient=code,
            route_kind=kind, pinned_route=pinned, status=status,
            expires_at=now + dt.timedelta(seconds=self.ttl_s),
            audit={"kind": "route change notice", "version": version, "route": which,
                   "before": describe(before.get("route")), "after": describe(after.get("route"))})
