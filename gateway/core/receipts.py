"""Receipts the gateway issues (non-repudiation of submission and of delivery).

* The **submission receipt** answers ``POST /v1/messages``: an envelope from
  the gateway (``gateway_code``) to the sender whose body is a ``Receipt`` of
  kind ``submission``, carrying the message id, the sender, the time of
  acceptance and the SHA-256 of exactly the bytes received, signed by the
  gateway (enveloped signature over the whole receipt; ``gateway receipt
  verify`` checks it offline). A repeated submission gets these same bytes again.
* The **delivery receipt** travels back to the sender as a message of its own
  (an ``env:Envelope`` whose body is a ``Receipt`` of kind ``delivery``), with
  the same guarantees as a letter: stored, queued, retried, sealed.

Both are written as bytes from their form (:mod:`pki.receipt_bytes`: the template lxml wrote once, cut
where the values go), canonical by construction and signed without a tree; a value with a character
that way does not plan for is built as a tree (:func:`submission_tree`, :func:`delivery_tree`: the
reference the tests hold the bytes way to).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import uuid
from collections.abc import Callable

from lxml import etree

from gateway.core.envelope import Envelope, Header, MessageType, Receipt
from gateway.core.envelope_builder import build_envelope_tree
from gateway.core.xml import ENVELOPE_NS
from pki.receipt_bytes import ReceiptForm, WrittenReceipt, mark

_RECEIPT_IDS = uuid.UUID("6f1c2a5e-8d2b-4c1e-9a57-3b0f4d6e2a10")
_N = f"{{{ENVELOPE_NS}}}"
#: The date-time a template is built with (its text is then replaced).
_PLACEHOLDER_AT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class ReceiptBytes(bytes):
    """The bytes of a receipt the gateway built, with what the sealer signs instead of parsing them again.

    It is ``bytes`` wherever a receipt is bytes. Usually the receipt was written as bytes
    (:mod:`pki.receipt_bytes`): :attr:`written` holds its canonical form, which the sealer signs
    (no tree at all); otherwise :attr:`written` is ``None`` and the sealer signs :attr:`tree`. Made
    only here: the bytes, the written form and the tree cannot disagree.
    """

    written: WrittenReceipt | None = None
    """The receipt written as bytes (``None``: a value the bytes way does not write; sign :attr:`tree`)."""

    _make_tree: Callable[[], etree._Element]

    @functools.cached_property
    def tree(self) -> etree._Element:
        """The receipt envelope these bytes serialise (a receipt written as bytes builds it when asked;
        the tree way's sealer adds its signature to it)."""
        return self._make_tree()

    @classmethod
    def of(cls, written: WrittenReceipt | None, make_tree: Callable[[], etree._Element]) -> ReceiptBytes:
        """The receipt ``written`` as bytes, or (``None``) the tree ``make_tree`` builds, serialised."""
        if written is None:
            tree = make_tree()
            made = cls(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
            made.tree = tree
            return made
        made = cls(written.unsigned)
        made.written = written
        made._make_tree = make_tree
        return made


def submission_receipt(*, message_id: str, sender: str, sha256_hex: str, at: dt.datetime,
                       gateway_code: str = "0000000000") -> ReceiptBytes:
    """The unsigned submission receipt: written as bytes from its form (:func:`_submission_form`), or
    the tree of :func:`_submission_template` with its values filled in (:func:`submission_tree`).

    One receipt per accepted letter, on the request path. The bytes are the same as ``build_envelope``
    of the same :class:`Envelope` (a test compares them).
    """
    if at.tzinfo is None:
        raise ValueError("date-times in envelopes must be zone-aware")
    receipt_id = f"receipt:{_uuid5(f'{sender}/{message_id}')}"
    values = (receipt_id, message_id, at.isoformat(), gateway_code, sender, sha256_hex)
    form = _submission_form()
    return ReceiptBytes.of(form.write(values) if form is not None else None,
                           functools.partial(_submission_tree, *values))


def submission_tree(*, message_id: str, sender: str, sha256_hex: str, at: dt.datetime,
                    gateway_code: str = "0000000000") -> etree._Element:
    """The submission receipt of :func:`submission_receipt` as a tree, built the tree way (the
    reference the bytes way is held to)."""
    if at.tzinfo is None:
        raise ValueError("date-times in envelopes must be zone-aware")
    receipt_id = f"receipt:{_uuid5(f'{sender}/{message_id}')}"
    return _submission_tree(receipt_id, message_id, at.isoformat(), gateway_code, sender, sha256_hex)


def _submission_tree(receipt_id: str, message_id: str, when: str, gateway_code: str, sender: str,
                     sha256_hex: str) -> etree._Element:
    """A deep copy of the template with the values in (one tree copy: the ElementMaker built each
    element in a document of its own and moved it, ~0.1 ms for these 14 elements)."""
    root = copy.deepcopy(_submission_template())
    header, receipt = root[0], root[1]
    for element, text in zip(header, (receipt_id, message_id, MessageType.RECEIPT.value, when, gateway_code),
                             strict=False):
        element.text = text
    header[5][0].text = sender  # Recipients/Recipient
    for element, text in zip(receipt, ("submission", message_id, sender, sha256_hex, when), strict=False):
        element.text = text
    return root


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_RECEIPT_IDS, name))`` without the UUID object (its constructor checks and shifts an
    int in Python: ~6 us of a receipt's ~70): SHA-1 of namespace and name, version 5, RFC 4122 variant."""
    head = bytearray(hashlib.sha1(_RECEIPT_ID_BYTES + name.encode()).digest()[:16])
    head[6] = (head[6] & 0x0F) | 0x50
    head[8] = (head[8] & 0x3F) | 0x80
    x = head.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_RECEIPT_ID_BYTES = _RECEIPT_IDS.bytes


@functools.lru_cache(maxsize=1)
def _submission_template() -> etree._Element:
    """A submission receipt built once by :func:`build_envelope_tree`, values to be replaced (never handed
    out)."""
    root = build_envelope_tree(Envelope(
        header=Header(message_id="-", message_type=MessageType.RECEIPT, created_at=_PLACEHOLDER_AT, sender="-",
                      recipients=("-",), ref_to_message_id="-"),
        body=Receipt(kind="submission", message_id="-", sender="-", sha256="-", at=_PLACEHOLDER_AT)))
    # submission_receipt fills these by position
    assert [etree.QName(c).localname for c in root[0]] == \
        ["MessageId", "RefToMessageId", "MessageType", "CreatedAt", "Sender", "Recipients"]
    assert [etree.QName(c).localname for c in root[1]] == ["Kind", "MessageId", "Sender", "Sha256", "At"]
    return root


def delivery_receipt_envelope(*, delivery_id: uuid.UUID, message_id: str, conversation_id: str | None,
                              sender: str, recipient: str, sha256_hex: str,
                              at: dt.datetime) -> tuple[str, ReceiptBytes]:
    """(receipt message id, envelope bytes) for the receipt sent back to ``sender``: written as bytes
    from its form (:func:`_delivery_form`), or the tree of :func:`delivery_tree`."""
    if at.tzinfo is None:
        raise ValueError("date-times in envelopes must be zone-aware")
    delivery_text = str(delivery_id)  # (a UUID's text is made in Python: ~6k instructions, once)
    receipt_id = f"receipt-{delivery_text}"
    values = (receipt_id, conversation_id or message_id, message_id, at.isoformat(), recipient, sender,
              delivery_text, sha256_hex)
    form = _delivery_form()
    make_tree = functools.partial(delivery_tree, delivery_id=delivery_id, message_id=message_id,
                                  conversation_id=conversation_id, sender=sender, recipient=recipient,
                                  sha256_hex=sha256_hex, at=at)
    return receipt_id, ReceiptBytes.of(form.write(values) if form is not None else None, make_tree)


def delivery_tree(*, delivery_id: uuid.UUID, message_id: str, conversation_id: str | None, sender: str,
                  recipient: str, sha256_hex: str, at: dt.datetime) -> etree._Element:
    """The delivery receipt of :func:`delivery_receipt_envelope` as a tree, built the tree way (the
    reference the bytes way is held to)."""
    return build_envelope_tree(Envelope(
        header=Header(message_id=f"receipt-{delivery_id}", message_type=MessageType.RECEIPT, created_at=at,
                      sender=recipient, recipients=(sender,),
                      conversation_id=conversation_id or message_id,
                      ref_to_message_id=message_id),
        body=Receipt(kind="delivery", message_id=message_id, sender=sender, sha256=sha256_hex, at=at,
                     recipient=recipient, delivery_id=str(delivery_id)),
    ))


@functools.lru_cache(maxsize=1)
def _submission_form() -> ReceiptForm | None:
    """The submission receipt's form: :func:`_submission_tree` of markers, in its argument order."""
    return ReceiptForm.of(_submission_tree(*(mark(n) for n in range(6))), 6)


@functools.lru_cache(maxsize=1)
def _delivery_form() -> ReceiptForm | None:
    """The delivery receipt's form: the tree :func:`delivery_tree` builds, markers for the values in
    :func:`delivery_receipt_envelope`'s order (the two date-times, written by the builder from a
    datetime, are marked after)."""
    root = build_envelope_tree(Envelope(
        header=Header(message_id=mark(0), message_type=MessageType.RECEIPT, created_at=_PLACEHOLDER_AT,
                      sender=mark(4), recipients=(mark(5),), conversation_id=mark(1), ref_to_message_id=mark(2)),
        body=Receipt(kind="delivery", message_id=mark(2), sender=mark(5), sha256=mark(7), at=_PLACEHOLDER_AT,
                     recipient=mark(4), delivery_id=mark(6))))
    when = list(root.iter(_N + "CreatedAt", _N + "At"))
    assert len(when) == 2 and all(el.text == _PLACEHOLDER_AT.isoformat() for el in when)
    for el in when:
        el.text = mark(3)
    return ReceiptForm.of(root, 8)

