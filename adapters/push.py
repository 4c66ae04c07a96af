"""HTTPS push: POST the sealed envelope to the office's endpoint.

A letter whose files travel beside the envelope (see :mod:`gateway.parts`) is
POSTed as ``multipart/related``: the sealed envelope first (Content-ID
``<envelope>``), then each file, streamed from the store, as ``<Id>``.

Success is a 2xx whose body is a ``DeliveryAck`` naming this delivery's id; a
2xx without it is treated as a failure to retry (the office did not say it
has the letter). Headers carry the delivery id, message id and sender so an
office can deduplicate before parsing.
"""

from __future__ import annotations

import aiohttp

from adapters.base import Delivered, OutboundDelivery, Outcome, Permanent, Retry
from adapters.http import TRANSPORT_ERRORS, retry_after, transport_retry
from gateway import xml
from gateway.errors import GatewayError
from gateway.parts import related_payload
from gateway.retry import classify_http_status




def check_ack(body: bytes, delivery_id: str, *, max_bytes: int = 1 << 20) -> str | None:
    """``None`` if ``body`` is a DeliveryAck for ``delivery_id``, else what is wrong."""
    try:
        root = xml.parse(body, max_bytes=max_bytes, what="ack")
        xml.validate("envelope-v1.xsd", root, what="ack")
    except GatewayError as exc:
        return f"{exc.code}: {exc.message}"
    if root.tag != f"{{{xml.ENVELOPE_NS}}}DeliveryAck":
        return "ack.not_delivery_ack"
    got = root.findtext(f"{{{xml.ENVELOPE_NS}}}DeliveryId")
    if got != delivery_id:
        return f"ack.wrong_delivery_id: {got!r}"
    return None


class PushAdapter:
    kind = "push"
    pushes = True

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float = 30.0) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        url = d.route.settings["url"]
        timeout = aiohttp.ClientTimeout(total=float(d.route.settings.get("timeout_s", self.timeout.total)))
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            "X-Saraban-Delivery-Id": str(d.delivery_id),
            "X-Saraban-Message-Id": d.message_id,
            "X-Saraban-Sender": d.sender,
            "X-Saraban-Attempt": str(d.attempt),
        }
        data = d.envelope
        if d.parts:  # files beside the envelope: one multipart/related body, streamed from the store
            data = related_payload(d.envelope, d.parts, d.open_part)
            headers["Content-Type"] = data.headers["Content-Type"]
        try:
            async with self.session.post(url, data=data, headers=headers, timeout=timeout,
                                         allow_redirects=False) as resp:
                body = await resp.content.read(1 << 20)
                verdict = classify_http_status(resp.status)
                if verdict == "retry":
                    return Retry(f"http {resp.status}", retry_after(resp.headers.get("Retry-After")))
                if verdict == "permanent":
                    return Permanent(f"http {resp.status}: {body[:200].decode('utf-8', 'replace')}")
                problem = check_ack(body, str(d.delivery_id))
                if problem is not None:
                    return Retry(f"http {resp.status} without a valid acknowledgement ({problem})")
                return Delivered(ack=body)
        except TRANSPORT_ERRORS as exc:
            return transport_retry(exc)
