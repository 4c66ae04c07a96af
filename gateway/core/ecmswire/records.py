"""e-CMS letters and notifiers as records (what :mod:`.reading` reads and :mod:`.building` writes)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.core.ecmswire.tables import NOTIFIER_KINDS, SECRET_CODES, SPEED_CODES
from gateway.core.envelope import NotifierKind, Secrecy, Speed


@dataclass(frozen=True)
class Party:
    """SenderParty / ReceiverParty."""

    department: str
    """DepartmentOrganization/ID: the agency code."""
    given_name: str = ""
    family_name: str = ""
    job_title: str = ""
    ministry: str = ""
    """MinistryOrganization/ID as sent (informative; derived from ``department`` on output)."""

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name.strip(), self.family_name.strip()) if p)


@dataclass(frozen=True)
class Signer:
    """GovernmentSignature/SignerParty (either client shape)."""

    given_name: str = ""
    family_name: str = ""
    title: str = ""
    ministry: str = ""
    department: str = ""

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name.strip(), self.family_name.strip()) if p)


@dataclass(frozen=True)
class BinaryObject:
    mime_code: str
    """MIME type (normalised to lower case type/subtype)."""
    content: bytes


@dataclass(frozen=True)
class Reference:
    id: str
    date: dt.date
    subject: str = ""


@dataclass(frozen=True)
class EcmsLetter:
    """ram:CorrespondenceLetter plus the GovernmentSignature around it."""

    id: str
    """ที่ (letter number)."""
    date: dt.date
    subject: str
    speed_code: str
    """Normalised 001..004."""
    secret_code: str
    """Normalised 001..004."""
    sender: Party
    receivers: tuple[Party, ...]
    references: tuple[Reference, ...] = ()
    attachment_text: str = ""
    """ram:Attachment: enclosures as text (สิ่งที่ส่งมาด้วย)."""
    send_date: str = ""
    description: str = ""
    main_letter: BinaryObject | None = None
    attachments: tuple[BinaryObject, ...] = ()
    signature_type: str = ""
    signer: Signer | None = None
    has_signature: bool = False
    """A ds:Signature was present (verified separately, see :mod:`gateway.ecms.legacy`)."""
    signature_xml: bytes = b""
    """That ds:Signature element's bytes as received (carried to native receivers as evidence)."""

    @property
    def speed(self) -> Speed:
        return SPEED_CODES[self.speed_code]

    @property
    def secrecy(self) -> Secrecy:
        return SECRET_CODES[self.secret_code]


@dataclass(frozen=True)
class EcmsNotifier:
    """One of the five e-CMS business notifiers."""

    element: str
    """ReceiveLetterNotifier, AcceptLetterNotifier, RejectLetterNotifier,
    InvalidLetterNotifier or InvalidAcceptIDNotifier."""
    letter_id: str
    date: dt.date
    subject: str = ""
    accept_id: str = ""
    """AcceptID (registry number) for Accept / InvalidAcceptID."""
    accept_date: str = ""
    accept_department: str = ""
    """AcceptDepartment/Code: the agency that sent the notifier (on output), or the party
    named by the client (on input)."""
    sender_department: str = ""

    @property
    def kind(self) -> NotifierKind:
        return NOTIFIER_KINDS[self.element]
