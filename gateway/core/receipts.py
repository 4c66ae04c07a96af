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
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import uuid

from lxml import etree

from gateway.core.envelope import Envelope, Header, MessageType, Receipt
from gateway.core.envelope_builder import build_envelope_tree

_RECEIPT_IDS = uuid.UUID("6f1c2a5e-8d2b-4c1e-9a57-3b0f4d6e2a10")


class ReceiptBytes(bytes):
    """The bytes of a receipt the gateway built, with the tree they serialise (:attr:`tree`).

    It is ``bytes`` wherever a receipt is bytes; a sealer that signs receipts
    signs :attr:`tree` instead of parsing the bytes again (a parse of the
    receipt just serialised, ~30 us a letter). Made only by
    :func:`submission_receipt`: the two cannot disagree.
    """

    tree: etree._Element
    """The receipt envelope that was serialised (the sealer adds its signature to it)."""


def submission_receipt(*, message_id: str, sender: str, sha256_hex: str, at: dt.datetime,
                       gateway_code: str = "0000000000") -> ReceiptBytes:
    """The unsigned submission receipt: the tree of :func:`_submission_template`, its values filled in.

    One receipt per accepted letter, on the request path: the ElementMaker
    builds each element in a document of its own and moves it into its
    parent (~0.1 ms for these 14 elements, more than signing the receipt);
    a deep copy of the template is one tree copy. The bytes are the same as
    ``build_envelope`` of the same :class:`Envelope` (a test compares them).
    """
    if at.tzinfo is None:
        raise ValueError("date-times in envelopes must be zone-aware")
    receipt_id = f"receipt:{_uuid5(f'{sender}/{message_id}')}"
    root = copy.deepcopy(_submission_template())
    header, receipt = root[0], root[1]
    when = at.isoformat()
    for element, text in zip(header, (receipt_id, message_id, MessageType.RECEIPT.value, when, gateway_code),
                             strict=False):
        element.text = text
    header[5][0].text = sender  # Recipients/Recipient
    for element, text in zip(receipt, ("submission", message_id, sender, sha256_hex, when), strict=False):
        element.text = text
    receipt_bytes = ReceiptBytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    receipt_bytes.tree = root
    return receipt_bytes


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
    placeholder = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    root = build_envelope_tree(Envelope(
        header=Header(message_id="-", message_type=MessageType.RECEIPT, created_at=placeholder, sender="-",
                      recipients=("-",), ref_to_message_id="-"),
        body=Receipt(kind="submission", message_id="-", sender="-", sha256="-", at=placeholder)))
    # submission_receipt fills these by position
    assert [etree.QName(c).localname for c in root[0]] == \
        ["MessageId", "RefToMessageId", "MessageType", "CreatedAt", "Sender", "Recipients"]
    assert [etree.QName(c).localname for c in root[1]] == ["Kind", "MessageId", "Sender", "Sha256", "At"]
    return root


def delivery_receipt_envelope(*, delivery_id: uuid.UUID, message_id: str, conversation_id: str | None,
                              sender: str, recipient: str, sha256_hex: str,
                              at: dt.datetime) -> tuple[str, ReceiptBytes]:
    """(receipt message id, envelope bytes) for the receipt sent back to ``sender`` (with their tree: the
    sealer signs it as built)."""
    receipt_id = f"receipt-{delivery_id}"
    env = Envelope(
        header=Header(message_id=receipt_id, message_type=MessageType.RECEIPT, created_at=at,
                      sender=recipient, recipients=(sender,),
                      conversation_id=conversation_id or message_id,
                      ref_to_message_id=message_id),
        body=Receipt(kind="delivery", message_id=message_id, sender=sender, sha256=sha256_hex, at=at,
                     recipient=recipient, delivery_id=str(delivery_id)),
    )
    tree = build_envelope_tree(env)
    receipt_bytes = ReceiptBytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
    receipt_bytes.tree = tree
    return receipt_id, receipt_bytes
