"""The native envelope (standard v1) as frozen records: header, letter, notifier, receipt, attachments.

The records describe exactly what an envelope says and nothing else; reading
them from a verified tree is :mod:`gateway.core.envelope_reader`, writing them
as XML is :mod:`gateway.core.envelope_builder`.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field


class MessageType(str, enum.Enum):
    LETTER = "letter"
    NOTIFIER = "notifier"
    RECEIPT = "receipt"


class Speed(str, enum.Enum):
    """ชั้นความเร็ว."""

    NORMAL = "normal"
    URGENT = "urgent"  # ด่วน
    VERY_URGENT = "very-urgent"  # ด่วนมาก
    MOST_URGENT = "most-urgent"  # ด่วนที่สุด


class Secrecy(str, enum.Enum):
    """ชั้นความลับ."""

    NORMAL = "normal"
    CONFIDENTIAL = "confidential"  # ลับ
    SECRET = "secret"  # ลับมาก
    TOP_SECRET = "top-secret"  # ลับที่สุด: never carried by the gateway


class NotifierKind(str, enum.Enum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    INVALID = "invalid"
    INVALID_REGISTRY_NUMBER = "invalid-registry-number"


SPEED_TH = {Speed.NORMAL: "ปกติ", Speed.URGENT: "ด่วน", Speed.VERY_URGENT: "ด่วนมาก",
            Speed.MOST_URGENT: "ด่วนที่สุด"}
SECRECY_TH = {Secrecy.NORMAL: "ปกติ", Secrecy.CONFIDENTIAL: "ลับ", Secrecy.SECRET: "ลับมาก",
              Secrecy.TOP_SECRET: "ลับที่สุด"}


@dataclass(frozen=True)
class Header:
    message_id: str
    """Sender-chosen id, unique per sender: the deduplication key."""
    message_type: MessageType
    created_at: dt.datetime
    """When the sender created the envelope (always zone-aware)."""
    sender: str
    """Sending agency code."""
    recipients: tuple[str, ...]
    """Recipient agency codes, in the order given, without repeats."""
    conversation_id: str | None = None
    ref_to_message_id: str | None = None
    recipient_lists: tuple[str, ...] = ()
    """Distribution lists (``RecipientList``) named among the recipients, in the order given, without
    repeats; expanded into agencies at acceptance (:mod:`gateway.core.lists`)."""


@dataclass(frozen=True)
class LetterReference:
    """อ้างถึง: an earlier letter this one refers to."""

    number: str
    date: dt.date
    subject: str | None = None


@dataclass(frozen=True)
class Party:
    """A person on a letter as the sending system names them (e-CMS SenderParty / ReceiverParty)."""

    agency: str
    given_name: str | None = None
    family_name: str | None = None
    job_title: str | None = None


@dataclass(frozen=True)
class LegacySignature:
    """An e-CMS author's signature as it arrived: evidence about the original SOAP letter
    (kept by the gateway), not a signature of the native envelope."""

    type_code: str | None = None
    signature: bytes | None = None
    """The ds:Signature element's bytes as received."""


@dataclass(frozen=True)
class Letter:
    """หนังสือราชการ: the fields the correspondence regulation gives a letter."""

    number: str
    """ที่."""
    date: dt.date
    subject: str
    """เรื่อง."""
    addressee: str
    """เรียน."""
    speed: Speed
    secrecy: Secrecy
    signer_name: str
    signer_position: str
    references: tuple[LetterReference, ...] = ()
    enclosures: tuple[str, ...] = ()
    """สิ่งที่ส่งมาด้วย."""
    body: str | None = None
    id: str = "Letter"
    sender_party: Party | None = None
    receiver_parties: tuple[Party, ...] = ()
    sent_at: str | None = None
    """When the sending system says it sent the letter, as it wrote it (e-CMS SendDate)."""
    legacy_signature: LegacySignature | None = None


@dataclass(frozen=True)
class Notifier:
    """A business answer about a letter (received, accepted with registry number, ...)."""

    kind: NotifierKind
    letter_number: str
    letter_date: dt.date
    subject: str | None = None
    registry_number: str | None = None
    """เลขทะเบียนรับ, with kind ``accepted``."""
    registered_at: dt.datetime | None = None
    reason: str | None = None
    id: str = "Notifier"


@dataclass(frozen=True)
class Receipt:
    """A receipt the gateway issues: ``submission`` or ``delivery``."""

    kind: str
    message_id: str
    sender: str
    sha256: str
    at: dt.datetime
    recipient: str | None = None
    delivery_id: str | None = None
    id: str = "Receipt"


@dataclass(frozen=True)
class Attachment:
    id: str
    file_name: str
    mime_type: str
    content: bytes
    """The decoded file; empty for an external attachment."""
    role: str = "enclosure"
    external: bool = False
    """True: the file travels as a MIME part (``ContentRef`` ``cid:<id>``), not inside the XML;
    ``size`` and ``sha256`` are then the declared values, which the author's signature covers."""
    declared_size: int | None = None
    declared_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.external and (self.declared_size is None or self.declared_sha256 is None):
            raise ValueError(f"external attachment {self.id} needs its declared size and SHA-256")

    @property
    def size(self) -> int:
        if self.external and self.declared_size is not None:  # always set when external (__post_init__)
            return self.declared_size
        return len(self.content)

    @property
    def sha256(self) -> str:
        if self.external and self.declared_sha256 is not None:
            return self.declared_sha256
        return hashlib.sha256(self.content).hexdigest()

    @property
    def content_ref(self) -> str:
        return f"cid:{self.id}"

    @classmethod
    def external_part(cls, *, id: str, file_name: str, mime_type: str, size: int, sha256: str,
                      role: str = "enclosure") -> Attachment:
        """An attachment whose content is sent as the MIME part ``<id>`` of a multipart/related request."""
        return cls(id=id, file_name=file_name, mime_type=mime_type, content=b"", role=role, external=True,
                   declared_size=size, declared_sha256=sha256)


Body = Letter | Notifier | Receipt


@dataclass(frozen=True)
class Envelope:
    header: Header
    body: Body
    attachments: tuple[Attachment, ...] = field(default=())

    @property
    def letter(self) -> Letter | None:
        return self.body if isinstance(self.body, Letter) else None

    @property
    def notifier(self) -> Notifier | None:
        return self.body if isinstance(self.body, Notifier) else None

