"""The exact bytes :func:`gateway.core.envelope_builder.build_envelope` writes, pinned for every element it knows.

The builder is tuned for speed (elements made in place, not with an ElementMaker) and what it
writes is stored as received, sealed, forwarded and signed as receipts: a change of a byte is a
change of the standard's output. After an intended change:
``SARABAN_UPDATE_GOLDEN=1 pytest tests/unit/test_envelope_bytes.py`` and review ``tests/unit/golden/``.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest

from gateway.core import xml
from gateway.core.envelope import (
    Attachment,
    Envelope,
    Header,
    LegacySignature,
    Letter,
    LetterReference,
    MessageType,
    Notifier,
    NotifierKind,
    Party,
    Secrecy,
    Speed,
)
from gateway.core.envelope_builder import build_envelope
from gateway.core.receipts import delivery_receipt_envelope, submission_receipt

GOLDEN = Path(__file__).resolve().parent / "golden"
AT = dt.datetime(2024, 5, 1, 9, 30, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=7)))

LETTER = Envelope(
    header=Header(message_id="moe-2024-0001", message_type=MessageType.LETTER, created_at=AT, sender="2000000000",
                  recipients=("1550100000", "20001"), conversation_id="conv-1", ref_to_message_id="moe-2023-0099"),
    body=Letter(number="ศธ 0201/123", date=dt.date(2024, 5, 1), subject="ขอเชิญประชุม", addressee="ผู้ว่าราชการจังหวัด",
                speed=Speed.VERY_URGENT, secrecy=Secrecy.CONFIDENTIAL, signer_name="สมชาย ใจดี",
                signer_position="ปลัดกระทรวง",
                references=(LetterReference("ศธ 0201/1", dt.date(2024, 1, 2), "เรื่องเดิม"),
                            LetterReference("ศธ 0201/2", dt.date(2024, 1, 3))),
                enclosures=("สำเนาคำสั่ง", "แผนที่"), body="เนื้อความ\r\nบรรทัดสอง <&>",
                sender_party=Party("2000000000", given_name="สมชาย", job_title="ปลัด"),
                receiver_parties=(Party("1550100000", family_name="ใจดี"), Party("20001")),
                sent_at="2024-05-01T09:29:00+07:00",
                legacy_signature=LegacySignature(type_code="DSIG", signature=b"<ds:Signature/>")),
    attachments=(Attachment(id="main", file_name="main.pdf", mime_type="application/pdf", content=b"%PDF-1.4",
                            role="main"),
                 Attachment.external_part(id="big", file_name="scan.tif", mime_type="image/tiff", size=123,
                                          sha256="ab" * 32)),
)
BARE_LETTER = Envelope(
    header=Header(message_id="m-2", message_type=MessageType.LETTER, created_at=AT, sender="20001",
                  recipients=("1550100000",)),
    body=Letter(number="1", date=dt.date(2024, 5, 1), subject="s", addressee="a", speed=Speed.NORMAL,
                secrecy=Secrecy.NORMAL, signer_name="n", signer_position="p",
                legacy_signature=LegacySignature()))
NOTIFIER = Envelope(
    header=Header(message_id="n-1", message_type=MessageType.NOTIFIER, created_at=AT, sender="1550100000",
                  recipients=("2000000000",), ref_to_message_id="moe-2024-0001"),
    body=Notifier(kind=NotifierKind.ACCEPTED, letter_number="ศธ 0201/123", letter_date=dt.date(2024, 5, 1),
                  subject="ขอเชิญประชุม", registry_number="รับ 99/2567", registered_at=AT, reason="-"))


def _check(name: str, data: bytes) -> None:
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("SARABAN_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert path.exists(), f"no golden file {path.name}; run with SARABAN_UPDATE_GOLDEN=1 and review it"
    assert data == path.read_bytes(), name


@pytest.mark.parametrize("name, env", [("letter-full", LETTER), ("letter-bare", BARE_LETTER),
                                       ("notifier", NOTIFIER)])
def test_envelope_bytes(name, env):
    data = build_envelope(env)
    _check(f"envelope-{name}", data)
    xml.validate("envelope-v1.xsd", xml.parse(data))


def test_receipt_bytes():
    _check("receipt-submission", submission_receipt(message_id="moe-2024-0001", sender="2000000000",
                                                    sha256_hex="cd" * 32, at=AT, gateway_code="0000000000"))
    _, delivery = delivery_receipt_envelope(delivery_id=uuid.UUID(int=7), message_id="moe-2024-0001",
                                            conversation_id=None, sender="2000000000", recipient="1550100000",
                                            sha256_hex="cd" * 32, at=AT)
    _check("receipt-delivery", delivery)
