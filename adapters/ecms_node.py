"""Legacy e-CMS node: deliver by acting as an e-CMS client.

For an office that still runs its own e-CMS node (route ``{"kind": "ecms",
"url": "https://node.example/ecms-ws01/service2"}``), each delivery is POSTed
as a ``CorrespondenceLetterOutboundRequest`` (SOAP 1.1, ``text/xml``): a letter
as ``rsm:GovernmentDocument``, a notifier as the matching e-CMS notifier. The
delivery id travels as ``wsa:MessageID`` (``urn:uuid:<delivery id>``) so the
node side can deduplicate a retried attempt.

Outcome table (the dispatcher owns retrying):

==============================================  ==========
2xx with ProcessID and no ErrorDetail           Delivered (the answer kept as evidence)
2xx with ErrorDetail whose code is listed in
``duplicate_codes`` (route setting)             Delivered (the node already has it)
2xx with another ErrorDetail                    Permanent (the node refused the content)
2xx that is not an e-CMS answer                 Retry
SOAP Fault ``Client`` (any status)              Permanent
429, 5xx, timeout, connection error             Retry (Retry-After honoured)
other 4xx                                       Permanent
==============================================  ==========

Receipts have no e-CMS form: they are reported Delivered without a request
(the sender's delivery receipt still records it).

Route settings: ``url`` (required), ``timeout_s`` (default 30), ``duplicate_codes``
(list of the node's ErrorCodes meaning "already have it"), ``max_answer_bytes``.
"""

from __future__ import annotations

import aiohttp
from lxml.builder import ElementMaker

from adapters.base import Delivered, OutboundDelivery, Outcome, Permanent, Retry
from adapters.http import TRANSPORT_ERRORS, classify_http_status, retry_after, transport_retry
from gateway.core import envelope as native
from gateway.core import xml as gxml
from gateway.core.ecmswire import soap
from gateway.core.ecmswire.building import build_government_document, build_notifier
from gateway.core.ecmswire.mapping import envelope_to_letter, envelope_to_notifier
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import GatewayError
from gateway.core.parts import inline_external


def build_request(env: native.Envelope, *, delivery_id: str, to: str, recipient: str) -> bytes:
    """The e-CMS outbound request for one native letter or notifier envelope."""
    if env.letter is not None:
        item = build_government_document(envelope_to_letter(env, recipient=recipient))
    elif env.notifier is not None:
        item = build_notifier(envelope_to_notifier(env))
    else:
        raise ValueError("receipts have no e-CMS form")
    wsa = ElementMaker(namespace=soap.WSA_NS, nsmap={"wsa": soap.WSA_NS})
    request = soap.SOAP.Envelope(
        soap.SOAP.Header(wsa.MessageID(f"urn:uuid:{delivery_id}"), wsa.To(to)),
        soap.SOAP.Body(soap.U.CorrespondenceLetterOutboundRequest(item)))
    return soap.serialize(request)


def read_answer(body: bytes, *, max_bytes: int) -> tuple[str | None, list[tuple[str, str]], str | None]:
    """(ProcessID, ErrorDetails, fault code) of a node's answer; raises GatewayError if unreadable."""
    root = gxml.parse(body, max_bytes=max_bytes, what="ecms_answer")
    fault = root.find(f".//{{{soap.SOAP11_NS}}}Fault")
    if fault is not None:
        return None, [(d.findtext("ErrorCode") or "", d.findtext("ErrorDescription") or "")
                      for d in fault.iter("ErrorDetail")], (fault.findtext("faultcode") or "")
    answer = root.find(f".//{{{soap.SOAP11_NS}}}Body/CorrespondenceLetterOutboundResponse")
    if answer is None:
        return None, [], None
    errors = [((d.findtext("ErrorCode") or "").strip(), (d.findtext("ErrorDescription") or "").strip())
              for d in answer.iter("ErrorDetail")]
    pid = answer.findtext("ProcessID") or answer.findtext("processID")
    return (pid.strip() if pid else None), errors, None


class EcmsNodeAdapter:
    kind = "ecms"
    pushes = True

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float = 30.0) -> None:
        self.session = session
        self.timeout_s = timeout_s

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        settings = d.route.settings
        url = settings["url"]
        max_answer = int(settings.get("max_answer_bytes", 1 << 20))
        try:
            env = read_envelope(gxml.parse(d.envelope, what="envelope"))
        except GatewayError as exc:  # stored bytes were checked on intake: a bug, not the office's fault
            return Permanent(f"stored envelope unreadable: {exc.code}")
        if env.letter is None and env.notifier is None:
            return Delivered(ack=None)
        if d.parts:  # e-CMS carries files inline as base64: read those stored beside the envelope
            if d.open_part is None:  # the dispatcher's contract: parts come with their reader
                raise ValueError(f"delivery {d.delivery_id} has parts but no open_part")
            env = await inline_external(env, d.open_part)
        data = build_request(env, delivery_id=str(d.delivery_id), to=url, recipient=d.recipient)
        timeout = aiohttp.ClientTimeout(total=float(settings.get("timeout_s", self.timeout_s)))
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
                   "X-Saraban-Delivery-Id": str(d.delivery_id)}
        try:
            async with self.session.post(url, data=data, headers=headers, timeout=timeout,
                                         allow_redirects=False) as resp:
                body = await resp.content.read(max_answer + 1)
                status = resp.status
                wait_s = retry_after(resp.headers.get("Retry-After"))
        except TRANSPORT_ERRORS as exc:
            return transport_retry(exc)
        try:
            pid, errors, fault = read_answer(body, max_bytes=max_answer)
        except GatewayError:
            pid, errors, fault = None, [], None
        if fault is not None and fault.endswith("Client"):
            return Permanent(f"http {status}: node fault {fault}: {errors[:1]}"[:300])
        verdict = classify_http_status(status)
        if verdict == "retry":
            return Retry(f"http {status}", wait_s)
        if verdict == "permanent":
            return Permanent(f"http {status}: {body[:200].decode('utf-8', 'replace')}")
        if errors:
            duplicate_codes = set(settings.get("duplicate_codes", ()))
            if all(code in duplicate_codes for code, _ in errors):
                return Delivered(ack=body)
            return Permanent(f"node refused: {errors[0][0]} {errors[0][1]}"[:300])
        if not pid:
            return Retry(f"http {status} without an e-CMS answer carrying a ProcessID")
        return Delivered(ack=body)
