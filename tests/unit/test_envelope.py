import asyncio
import base64
import contextvars

import pytest
import structlog

from gateway.core import xml
from gateway.core.directory import Directory
from gateway.core.envelope import Secrecy
from gateway.core.envelope_builder import build_envelope
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import EnvelopeError
from gateway.intake.checks import Intake
from pki.errors import AttachmentError
from tests.support import directory_dict, letter, letter_bytes


def test_round_trip_keeps_every_field_and_thai_text():
    env = letter(subject="ขอเชิญประชุมคณะกรรมการ ครั้งที่ ๑/๒๕๖๙")

    data = build_envelope(env)
    assert "ขอเชิญประชุม".encode() in data  # UTF-8 on the wire, not character references
    root = xml.parse(data)
    xml.validate("envelope-v1.xsd", root)
    assert read_envelope(root) == env


def _tamper(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new)


def test_attachment_digest_mismatch():
    data = letter_bytes(pdf=b"%PDF-1.4 original")
    forged = base64.b64encode(b"%PDF-1.4 forged!!").decode()  # same length, other bytes
    data = _tamper(data, base64.b64encode(b"%PDF-1.4 original"), forged.encode())
    with pytest.raises(AttachmentError) as e:
        read_envelope(xml.parse(data))
    assert e.value.code == "attachment.digest_mismatch"
    assert e.value.field == "Attachments/Attachment[1]/Sha256"


def test_a_size_that_does_not_match_is_a_digest_mismatch_naming_size():
    data = _tamper(letter_bytes(pdf=b"12345"), b"<Size>5</Size>", b"<Size>6</Size>")
    with pytest.raises(AttachmentError) as e:
        read_envelope(xml.parse(data))
    assert e.value.code == "attachment.digest_mismatch"


async def test_a_refused_letter_still_names_its_message_id_in_the_log_context():



    intake = Intake(Directory.from_dict(directory_dict()), max_bytes=1 << 20)
    bad = letter_bytes(message_id="log-me", recipients=("9999999999",))

    async def check():
        structlog.contextvars.clear_contextvars()
        try:
            await intake.check(bad, agency="0100000000")
        except EnvelopeError as exc:
            return exc.code, structlog.contextvars.get_contextvars().get("message_id")

    ctx = contextvars.copy_context()

    assert await asyncio.create_task(check(), context=ctx) == ("envelope.unknown_recipient", "log-me")


@pytest.mark.parametrize("case,code", [
    ({"recipients": ("9999999999",)}, "envelope.unknown_recipient"),
    ({"secrecy": Secrecy.TOP_SECRET}, "policy.top_secret"),
])
async def test_directory_and_policy_are_checked_before_the_signature(case, code):
    """The signature check may reach the network (revocation data): a letter the directory or the
    policy refuses anyway never gets that far."""
    calls = []

    async def verifier(raw, root, sender, *, channel="native"):
        calls.append(sender)
        return root, {"signed": True}

    intake = Intake(Directory.from_dict(directory_dict()), max_bytes=1 << 20, verifier=verifier)
    with pytest.raises(EnvelopeError) as refused:
        await intake.check(letter_bytes(**case), agency="0100000000")
    assert refused.value.code == code and calls == []
    await intake.check(letter_bytes(), agency="0100000000")
    assert calls == ["0100000000"]
