"""The caller's queue and its sent letters: pull, delete, ask again, withdraw, outbound status.

* ``CorrespondenceLetterInboundRequest``: the oldest queued item of the caller, ProcessID = the
  delivery id; an empty answer element when nothing is queued (clients test ``InnerXml == ""``).
  Delivery receipts have no e-CMS form: they are filtered out in SQL (before the LIMIT, so any
  number of them never hides a letter); see ``gateway/ecms/CODES.md`` for why they do not pile up.
* ``CorrespondenceLetterDeleteRequest``: ``Exchange.ack``; another agency's ProcessID is not found.
* ``CorrespondenceLetterInboundSpecialRequest``: the queued item matching kind, letter number, date
  and departments.
* ``CorrespondenceDeleteGovernmentDocumentRequest``: ``Exchange.withdraw``.
* ``OutboundStatusRequest``: ``Exchange.outbound``.
"""

from __future__ import annotations

import functools
import uuid

from lxml import etree

from gateway.core import xml as gxml
from gateway.core.ecmswire import soap
from gateway.core.ecmswire.building import build_government_document, build_notifier
from gateway.core.ecmswire.errors import EcmsError
from gateway.core.ecmswire.mapping import envelope_to_letter, envelope_to_notifier
from gateway.core.ecmswire.reading import parse_date
from gateway.core.ecmswire.tables import NOTIFIER_ELEMENTS
from gateway.core.envelope import Envelope
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import NotFound
from gateway.core.parts import inline_external
from gateway.ecms.ports import Call, Context, QueuedItem
from gateway.ecms.sending import agency_or_error


class Queue:
    """Pull and delete, ask again for one item, withdraw a sent letter, outbound status."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _answer(self, call: Call, item: QueuedItem, el: etree._Element) -> etree._Element:
        return soap.response(call.req.response_name, el, process_id=str(item.delivery_id), at=call.now,
                             lowercase_alias=self.ctx.settings.lowercase_process_id_alias)

    async def _item_element(self, item: QueuedItem, caller: str) -> tuple[etree._Element, Envelope] | None:
        exchange = self.ctx.exchange
        root = gxml.parse(item.envelope, what="envelope")  # stored, verified bytes
        env = read_envelope(root)
        if item.parts:  # e-CMS carries files inline: read those stored beside the envelope
            env = await inline_external(env, functools.partial(exchange.part_chunks, item.message_pk))
        if env.letter is not None:
            letter = envelope_to_letter(env, recipient=caller, directory=self.ctx.directory)
            return build_government_document(letter), env
        if env.notifier is not None:
            return build_notifier(envelope_to_notifier(env)), env
        return None  # neither letter nor notifier (receipts are left out by the inbox query)

    async def inbound(self, call: Call) -> etree._Element:
        for item in await self.ctx.exchange.inbox(call.caller, limit=50, receipts=False):
            found = await self._item_element(item, call.caller)
            if found is not None:
                return self._answer(call, item, found[0])
        return soap.U(call.req.response_name)  # empty: clients test InnerXml == ""

    async def delete(self, call: Call) -> etree._Element:
        text = (call.req.body.findtext("ProcessID") or "").strip()
        try:
            delivery_id = uuid.UUID(text)
        except ValueError:
            raise EcmsError(f"{text!r} is not a ProcessID of this gateway", code="not_found",
                            field="ProcessID") from None
        try:
            await self.ctx.exchange.ack(call.caller, delivery_id)
        except NotFound:
            raise EcmsError(f"no queued item {text} for {call.caller}", code="not_found",
                            field="ProcessID") from None
        return soap.response(call.req.response_name, process_id=text, at=call.now)

    async def inbound_special(self, call: Call) -> etree._Element:
        sel = next(child for child in call.req.body if isinstance(child.tag, str))
        kind = etree.QName(sel).localname
        number = (sel.findtext("LetterID") or "").strip()
        date = parse_date(sel.findtext("CorrespondenceDate"), f"{kind}/CorrespondenceDate")
        sender = (sel.findtext("SenderDepartment/Code") or "").strip()
        for item in await self.ctx.exchange.inbox(call.caller, limit=self.ctx.settings.inbox_scan, receipts=False):
            found = await self._item_element(item, call.caller)
            if found is None:
                continue
            el, env = found
            if kind == "GovernmentDocument":
                ok = env.letter is not None and env.letter.number == number and env.letter.date == date
            else:
                ok = (env.notifier is not None and NOTIFIER_ELEMENTS[env.notifier.kind] == kind
                      and env.notifier.letter_number == number and env.notifier.letter_date == date)
            if ok and (not sender or env.header.sender == sender):
                return self._answer(call, item, el)
        raise EcmsError(f"no queued {kind} for letter {number} of {date.isoformat()}", code="not_found",
                        field=f"{kind}/LetterID")

    async def withdraw(self, call: Call) -> etree._Element:
        b = call.req.body
        number = (b.findtext("LetterID") or "").strip()
        date = parse_date(b.findtext("CorrespondenceDate"), "CorrespondenceDate")
        sender = (b.findtext("SenderDepartment/Code") or "").strip()
        accept = (b.findtext("AcceptDepartment/Code") or "").strip()
        if sender != call.caller:
            raise EcmsError(f"SenderDepartment {sender} is not the caller {call.caller}",
                            code="auth.wrong_sender", field="SenderDepartment/Code")
        agency_or_error(self.ctx, accept, "AcceptDepartment/Code")
        withdrawn = await self.ctx.exchange.withdraw(call.caller, letter_number=number, letter_date=date,
                                                     recipient=accept)
        if not withdrawn:
            raise EcmsError(f"no letter {number} of {date.isoformat()} from {call.caller} to {accept}",
                            code="ecms.letter_not_found", field="LetterID")
        return soap.response(call.req.response_name, soap.U.LetterID(number), process_id=number, at=call.now)

    async def outbound_status(self, call: Call) -> etree._Element:
        items = await self.ctx.exchange.outbound(call.caller, limit=100)
        rows = [soap.U.Outbound(soap.U.ProcessID(i.message_id), soap.U.LetterID(i.letter_number),
                                soap.U.ProcessStatus(i.status)) for i in items]
        return soap.response(call.req.response_name, *rows, process_id=None, at=call.now)
