"""Sample envelopes for the PKI tests, built with the element builder (never string formatting)."""

from __future__ import annotations

import base64
import hashlib
import os

from lxml import etree

from gateway.core.xml import ENVELOPE_NS

E = "{%s}" % ENVELOPE_NS


def envelope(*, sender: str = "00001", recipients: tuple[str, ...] = ("00002",), attachments: int = 1,
             attachment_size: int = 2600, body: str = "letter", message_id: str = "msg-0001",
             header_id: str | None = None, content: bytes | None = None) -> bytes:
    """An unsigned, schema-valid envelope; with defaults about 5 KB (the benchmark's letter)."""
    root = etree.Element(E + "Envelope", nsmap={"env": ENVELOPE_NS}, version="1")
    header = etree.SubElement(root, E + "Header")
    if header_id:
        header.set("Id", header_id)
    etree.SubElement(header, E + "MessageId").text = message_id
    etree.SubElement(header, E + "MessageType").text = "letter" if body == "letter" else "notifier"
    etree.SubElement(header, E + "CreatedAt").text = "2026-11-22T09:30:00+07:00"
    etree.SubElement(header, E + "Sender").text = sender
    rc = etree.SubElement(header, E + "Recipients")
    for r in recipients:
        etree.SubElement(rc, E + "Recipient").text = r
    if body == "letter":
        letter = etree.SubElement(root, E + "Letter", Id="Letter")
        etree.SubElement(letter, E + "Number").text = "นร 0105/ว 123"
        etree.SubElement(letter, E + "Date").text = "2026-11-22"
        etree.SubElement(letter, E + "Subject").text = "ขอเชิญประชุมคณะกรรมการพัฒนาระบบสารบรรณอิเล็กทรอนิกส์"
        etree.SubElement(letter, E + "Addressee").text = "ผู้ว่าราชการจังหวัดทุกจังหวัด"
        etree.SubElement(letter, E + "Speed").text = "urgent"
        etree.SubElement(letter, E + "Secrecy").text = "normal"
        etree.SubElement(letter, E + "Body").text = "ด้วยสำนักนายกรัฐมนตรีจะจัดประชุม " * 12
        signer = etree.SubElement(letter, E + "Signer")
        etree.SubElement(signer, E + "Name").text = "นายสมชาย ใจดี"
        etree.SubElement(signer, E + "Position").text = "ปลัดสำนักนายกรัฐมนตรี"
    else:
        notifier = etree.SubElement(root, E + "Notifier", Id="Notifier")
        etree.SubElement(notifier, E + "Kind").text = "received"
        etree.SubElement(notifier, E + "LetterNumber").text = "นร 0105/ว 123"
        etree.SubElement(notifier, E + "LetterDate").text = "2026-11-22"
    if attachments:
        atts = etree.SubElement(root, E + "Attachments")
        for i in range(attachments):
            data = content if content is not None else hashlib.sha256(str(i).encode()).digest() * (
                attachment_size // 32) or os.urandom(attachment_size)
            att = etree.SubElement(atts, E + "Attachment", Id=f"att-{i + 1}", role="main" if i == 0 else "enclosure")
            etree.SubElement(att, E + "FileName").text = f"หนังสือ-{i + 1}.pdf"
            etree.SubElement(att, E + "MimeType").text = "application/pdf"
            etree.SubElement(att, E + "Size").text = str(len(data))
            etree.SubElement(att, E + "Sha256").text = hashlib.sha256(data).hexdigest()
            etree.SubElement(att, E + "Content").text = base64.b64encode(data).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
