"""The submission receipt is filled into a template tree; it must be the envelope builder's bytes exactly."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from gateway.core import receipts
from gateway.core.envelope import Envelope, Header, MessageType, Receipt
from gateway.core.envelope_builder import build_envelope
from gateway.core.xml import parse, validate


def built_by_the_envelope_builder(*, message_id, sender, sha256_hex, at, gateway_code):
    receipt_id = f"receipt:{uuid.uuid5(receipts._RECEIPT_IDS, f'{sender}/{message_id}')}"
    return build_envelope(Envelope(
        header=Header(message_id=receipt_id, message_type=MessageType.RECEIPT, created_at=at, sender=gateway_code,
                      recipients=(sender,), ref_to_message_id=message_id),
        body=Receipt(kind="submission", message_id=message_id, sender=sender, sha256=sha256_hex, at=at)))


@pytest.mark.parametrize("message_id, sender, zone", [
    ("m-1", "00001", dt.UTC),
    ("ที่ นร 0105/ว 123 <&> \"quoted\" 'x'", "1500100001", dt.timezone(dt.timedelta(hours=7))),
])
def test_submission_receipt_is_the_envelope_builders_bytes(message_id, sender, zone):
    at = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=zone)
    kwargs = dict(message_id=message_id, sender=sender, sha256_hex="ab" * 32, at=at, gateway_code="0100000000")
    made = receipts.submission_receipt(**kwargs)
    assert made == built_by_the_envelope_builder(**kwargs)
    if message_id.isascii():  # the odd one is not a schema-valid message id, only a test of escaping
        validate("envelope-v1.xsd", parse(made))


def test_the_template_is_never_handed_out():
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = receipts.submission_receipt(message_id="a", sender="00001", sha256_hex="0" * 64, at=at)
    second = receipts.submission_receipt(message_id="b", sender="00002", sha256_hex="1" * 64, at=at)
    assert b">a<" in first and b">b<" not in first and b">00002<" in second and b">00001<" not in second
    template = receipts._submission_template()
    assert [c.text for c in template[1]] == ["submission", "-", "-", "-", "2000-01-01T00:00:00+00:00"]


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        receipts.submission_receipt(message_id="a", sender="00001", sha256_hex="0" * 64, at=dt.datetime(2026, 1, 1))
