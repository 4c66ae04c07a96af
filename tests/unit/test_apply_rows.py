"""``transitions.apply`` makes a delivery receipt message's row with its receipt and evidence blank, not
from a copy of the message: the rows are the same as those of the copy (``dataclasses.replace``) they
were made from before."""

import dataclasses
import datetime as dt
import hashlib
import uuid

import pytest

from gateway.storage import forwarded
from gateway.storage.deliveries import ClaimedDelivery, claimed_of
from gateway.storage.messages import NewDelivery, NewMessage, message_row

NOW = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
UNSIGNED = b"<env:Envelope><env:Header/><env:Body>" + b"r" * 900 + b"</env:Body></env:Envelope>"
SIGNED = UNSIGNED[:-15] + b"<ds:Signature>" + b"s" * 2400 + b"</ds:Signature>" + UNSIGNED[-15:]
ACK = b"<Ack/>"


def receipt_message(*, forwarded_bytes: bytes, evidence: bytes | None, receipt: bytes) -> NewMessage:
    return NewMessage(
        sender="1100000001", message_id="receipt-1", message_type="receipt", conversation_id="m-1",
        ref_to_message_id="m-1", letter_number=None, letter_date=None, subject=None, speed=None, secrecy=None,
        channel="gateway", received_sha256=b"h" * 32, received=UNSIGNED, forwarded=forwarded_bytes,
        evidence=evidence, receipt=receipt, accepted_at=NOW, expires_at=NOW + dt.timedelta(days=1),
        deliveries=[NewDelivery(uuid.UUID(int=1), "0100000000", "push", "queued")], audit={"kind": "delivery receipt"})


@pytest.mark.parametrize("forwarded_bytes", [SIGNED, b"<other/>" * 600, b""])
@pytest.mark.parametrize("evidence", [ACK, None, b"<OtherAck/>"])
@pytest.mark.parametrize("receipt", [SIGNED, b"<other receipt/>"])
@pytest.mark.parametrize("blank_receipt", [True, False])
@pytest.mark.parametrize("blank_evidence", [True, False])
def test_blank_fields_are_the_rows_of_a_replaced_copy(forwarded_bytes, evidence, receipt, blank_receipt,
                                                      blank_evidence):
    m = receipt_message(forwarded_bytes=forwarded_bytes, evidence=evidence, receipt=receipt)
    old = m
    if blank_receipt:
        old = dataclasses.replace(old, receipt=b"")
    if blank_evidence:
        old = dataclasses.replace(old, evidence=b"")
    for most, beside in [(forwarded.RECEIPT_MOST, True), (forwarded.MOST, False)]:
        assert message_row(m, 3, most=most, sent_beside=beside, blank_receipt=blank_receipt,
                           blank_evidence=blank_evidence) == message_row(old, 3, most=most, sent_beside=beside)
    # the message itself is left as it was
    assert (m.receipt, m.evidence) == (receipt, evidence)


def test_claimed_delivery_from_row_is_by_name():
    """``ClaimedDelivery.from_row`` reads the row's columns positionally in the fields' order: the same
    object as by name, whatever order the row's columns come in."""
    values = {"id": uuid.UUID(int=7), "message_pk": 5, "recipient": "1100000001", "route": "push", "attempts": 2,
              "created_at": NOW, "expires_at": NOW + dt.timedelta(days=1), "message_id": "m-5",
              "sender": "0100000000", "message_type": "letter", "forwarded": b"<E/>", "parts": 1,
              "destination_failures": 3, "conversation_id": "c-5", "pinned_route": {"kind": "push"}}
    assert set(values) == {f.name for f in dataclasses.fields(ClaimedDelivery)}
    row = dict(reversed(list(values.items())))
    made = ClaimedDelivery.from_row(row)
    assert made == ClaimedDelivery(**values)
    assert [getattr(made, f.name) for f in dataclasses.fields(ClaimedDelivery)] == [
        values[f.name] for f in dataclasses.fields(ClaimedDelivery)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, "attempts", 3)  # noqa: B010 (frozen: the assignment is the point)


def test_claimed_of_is_the_constructor():
    """``deliveries.claimed_of`` (what claim_due makes each claim with) gives the object the dataclass's own
    ``__init__`` gives, frozen and with its digest computed on demand; the wrong number of values is refused."""
    values = [uuid.UUID(int=9), 6, "1100000001", "push", 1, NOW, NOW + dt.timedelta(days=1), "m-6", "0100000000",
              "receipt", b"<R/>", 0, 0, None, None]
    made = claimed_of(values)
    assert made == ClaimedDelivery(*values)
    assert [getattr(made, f.name) for f in dataclasses.fields(ClaimedDelivery)] == values
    assert made.forwarded_sha256 == hashlib.sha256(b"<R/>").digest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, "attempts", 3)  # noqa: B010 (frozen: the assignment is the point)
    with pytest.raises(ValueError):
        claimed_of(values[:-1])
