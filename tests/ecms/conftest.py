"""Fixtures for the e-CMS tests: a directory with e-CMS agencies, an in-memory
exchange that runs the gateway's real intake checks (so every envelope the
mapping builds must pass the native XSD), a fixed clock, and the facade.

The in-memory exchange implements the service interface the facade codes
against, including the additions requested from the lead (find_letter,
withdraw, outbound, submit's resend_guard); the e2e tests in test_e2e.py use the real service.

Client shapes replayed by the vectors in conformance/ecms/vectors (each JSON names its source); whole
conversations of both clients, as they write and read SOAP, against the real gateway in each admission
mode are test_clients_*.py (harness: replay.py, replay_clients.py, dotnet.py):
* ScoreSolutions/BOI-DMS, LinqWS/THeGIF/RequestTHeGIFLinqWS.vb and
  frmTestTHEGif.aspx.vb (VB.NET, string-built SOAP: ``http://w3.org/2005/08/addressing``,
  ``wsa:to``, empty MessageID, GovernmentSignature beside the letter, reads answers by
  qualified name and ``processID``);
* NatchaphonBounprakong/mil-doc, TEST.XML.WEB.SERVICE/Utility/XMLCreation.cs and
  Controllers/APIController.cs (C# XLinq: ``ID="Body"``, Thai free-text MessageID, reversed
  references, empty strings, reads ErrorDetail children by position).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.core.directory import Directory
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import Conflict, LetterSentOtherwise, NotFound
from gateway.core.xml import parse
from gateway.ecms.handler import EcmsFacade
from gateway.ecms.settings import EcmsSettings
from gateway.exchange.records import LetterRef, OutboundItem
from gateway.intake.checks import Intake

VECTORS = Path(__file__).resolve().parents[2] / "conformance" / "ecms" / "vectors"
T0 = dt.datetime(2024, 5, 1, 2, 30, tzinfo=dt.UTC)

DIRECTORY = {
    "agencies": [
        {"code": "11000", "name_th": "กระทรวงเทคโนโลยีสารสนเทศ", "name_en": "Ministry of ICT", "tokens": ["t-11000"]},
        {"code": "11008", "name_th": "สำนักงานรัฐบาลอิเล็กทรอนิกส์", "name_en": "EGA", "parent": "11000",
         "tokens": ["t-11008"]},
        {"code": "11002", "name_th": "สำนักงานปลัดกระทรวง ICT", "name_en": "OPS ICT", "parent": "11000",
         "tokens": ["t-11002"]},
        {"code": "2000000000", "name_th": "กระทรวงศึกษาธิการ", "name_en": "Ministry of Education", "tokens": ["t-moe"]},
        {"code": "20001", "name_th": "สำนักงานปลัดกระทรวงศึกษาธิการ", "name_en": "OPS MOE", "parent": "2000000000",
         "tokens": ["t-20001"]},
        {"code": "1550100000", "name_th": "ศาลากลางจังหวัดเชียงใหม่", "name_en": "Chiang Mai Provincial Hall",
         "tokens": ["t-cmi"]},
    ]
}


def load_vector(name: str) -> bytes:
    return (VECTORS / f"{name}.xml").read_bytes()


class FixedClock:
    def __init__(self, at: dt.datetime = T0) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@dataclass
class _Message:
    sender: str
    message_id: str
    sha256: str
    envelope: bytes
    evidence: bytes | None
    channel: str
    deliveries: dict[str, tuple[uuid.UUID, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Result:
    message_id: str
    message_pk: int
    receipt: bytes
    duplicate: bool
    sha256: str


@dataclass(frozen=True)
class _Item:
    delivery_id: uuid.UUID
    message_id: str
    sender: str
    message_type: str
    envelope: bytes
    queued_at: dt.datetime
    message_pk: int = 0
    parts: int = 0


class MemoryExchange:
    """The service contract in memory; all routes are pull (inboxes)."""

    def __init__(self, directory: Directory, clock: FixedClock) -> None:
        self.directory = directory
        self.clock = clock
        self.intake = Intake(directory, max_bytes=64 << 20)
        self.messages: dict[tuple[str, str], _Message] = {}
        self.order: list[_Message] = []

    async def submit(self, data, *, agency, channel="native", evidence=None, resend_guard=None):
        checked = await self.intake.check(data, agency=agency)
        h = checked.envelope.header
        key = (h.sender, h.message_id)
        letter = checked.envelope.letter
        if resend_guard is not None and letter is not None:
            for r in h.recipients:
                ref = await self.find_letter(letter_number=letter.number, letter_date=letter.date, sender=h.sender,
                                             recipient=r)
                if ref is not None and ref.message_id.split(".r")[0] != resend_guard:
                    raise LetterSentOtherwise("sent otherwise", recipient=r)
        if key in self.messages:
            old = self.messages[key]
            if old.sha256 != checked.sha256_hex:
                raise Conflict("message id reused", code="message.id_reused", field="Header/MessageId")
            return _Result(old.message_id, self.order.index(old) + 1, b"receipt", True, old.sha256)
        msg = _Message(h.sender, h.message_id, checked.sha256_hex, checked.raw, evidence, channel,
                       {r: (uuid.uuid4(), "inbox") for r in h.recipients})
        self.messages[key] = msg
        self.order.append(msg)
        self.clock.advance(1)
        return _Result(msg.message_id, len(self.order), b"receipt", False, msg.sha256)

    def _envelope(self, msg: _Message):

        return read_envelope(parse(msg.envelope))

    async def inbox(self, agency, *, limit=50, receipts=True):
        items = []
        for msg in self.order:
            d = msg.deliveries.get(agency)
            if d and d[1] == "inbox":
                env = self._envelope(msg)
                if not receipts and env.header.message_type.value == "receipt":
                    continue
                items.append(_Item(d[0], msg.message_id, msg.sender, env.header.message_type.value, msg.envelope,
                                   T0))
        return items[:limit]

    async def ack(self, agency, delivery_id, *, ack=None):
        for msg in self.order:
            d = msg.deliveries.get(agency)
            if d and d[0] == delivery_id:
                if d[1] == "withdrawn":
                    raise NotFound("withdrawn", code="inbox.not_found")
                msg.deliveries[agency] = (d[0], "delivered")
                return "delivered"
        raise NotFound(f"no delivery {delivery_id} for {agency}", code="inbox.not_found")

    async def message_status(self, sender, message_id):
        msg = self.messages.get((sender, message_id))
        if msg is None:
            raise NotFound("no such message", code="message.not_found")
        return {"message_id": message_id,
                "recipients": [{"recipient": r, "delivery_id": str(d[0]), "status": d[1]}
                               for r, d in msg.deliveries.items()]}

    async def find_letter(self, *, letter_number, letter_date, sender=None, recipient=None):
        for msg in reversed(self.order):
            env = self._envelope(msg)
            letter = env.letter
            if letter is None or letter.number != letter_number or letter.date != letter_date:
                continue
            if sender is not None and msg.sender != sender:
                continue
            live = [r for r, d in msg.deliveries.items() if d[1] != "withdrawn"]
            if recipient is not None and recipient not in live:
                continue
            if live:
                return LetterRef(msg.message_id, msg.sender, tuple(live))
        return None

    async def withdraw(self, sender, *, letter_number, letter_date, recipient):
        count = 0
        for msg in self.order:
            env = self._envelope(msg)
            if (msg.sender == sender and env.letter is not None and env.letter.number == letter_number
                    and env.letter.date == letter_date and recipient in msg.deliveries
                    and msg.deliveries[recipient][1] != "withdrawn"):
                msg.deliveries[recipient] = (msg.deliveries[recipient][0], "withdrawn")
                count += 1
        return count

    async def outbound(self, sender, *, limit=100):
        out = []
        for msg in self.order:
            if msg.sender != sender:
                continue
            env = self._envelope(msg)
            number = env.letter.number if env.letter else env.notifier.letter_number
            states = {d[1] for d in msg.deliveries.values()}
            out.append(OutboundItem(msg.message_id, number, "delivered" if states == {"delivered"} else
                                    sorted(states)[0]))
        return out[-limit:]


@pytest.fixture
def directory() -> Directory:
    return Directory.from_dict(DIRECTORY)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def exchange(directory, clock) -> MemoryExchange:
    return MemoryExchange(directory, clock)


@pytest.fixture
def settings() -> EcmsSettings:
    return EcmsSettings(public_url="https://gateway.example/ecms-ws01/service2")


@pytest.fixture
def facade(exchange, settings, clock) -> EcmsFacade:
    return EcmsFacade(exchange, settings=settings, clock=clock.now)
