"""A mixed conversation: an e-CMS agency (mil-doc, route e-CMS) and a native agency (the gateway's
own API) exchange letters and notifiers both ways, in every admission mode of the e-CMS side.

The native side pulls ``GET /v1/inbox``, reads the sealed envelope, acknowledges, and submits
notifiers and letters to ``POST /v1/messages``; it keeps getting delivery receipts (it can fetch
them), the e-CMS side does not (it could not).
"""

from __future__ import annotations

import datetime as dt
import ssl
import uuid
from typing import Any

import pytest

from gateway.core import appkeys as keys
from gateway.core.envelope import Envelope, Header, MessageType, Notifier, NotifierKind
from gateway.core.envelope_builder import build_envelope
from gateway.core.envelope_reader import read_envelope
from gateway.core.xml import parse
from tests.ecms.replay import MODES, NATIVE, A, Conversation, Wire, key_stored_nowhere, nothing_stored, replay
from tests.ecms.replay_clients import Letter, MilDoc
from tests.support import BANGKOK, TOKENS, letter_bytes

pytestmark = pytest.mark.timeout(300)

PDF = b"%PDF-1.4\n% mixed conversation\n%%EOF\n"
TO_NATIVE = Letter(number="นร 0105/2201", date="2026-11-20", subject="ขอความร่วมมือสำรวจข้อมูลบุคลากร",
                   sender=A, receiver=NATIVE, pdf=PDF)


class Native:
    """The native agency's system: token (or its client certificate) on the gateway's own API."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.base = wire.running.native_base or wire.running.base  # the main listener: its own API
        ctx: ssl.SSLContext | None = wire.running.contexts.get(NATIVE)
        self.ssl: Any = ctx if ctx is not None else False
        self.headers = {"Authorization": f"Bearer {TOKENS[NATIVE]}"}

    async def inbox(self) -> list[dict[str, Any]]:
        async with self.wire.http.get(f"{self.base}/v1/inbox", headers=self.headers, ssl=self.ssl) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["items"]

    async def envelope(self, item: dict[str, Any]) -> Envelope:
        async with self.wire.http.get(self.base + item["href"], headers=self.headers, ssl=self.ssl) as r:
            assert r.status == 200, await r.text()
            return read_envelope(parse(await r.read()))

    async def ack(self, item: dict[str, Any]) -> None:
        async with self.wire.http.post(f"{self.base}{item['href']}/ack", headers=self.headers, ssl=self.ssl) as r:
            assert r.status == 200, await r.text()

    async def submit(self, data: bytes) -> None:
        async with self.wire.http.post(f"{self.base}/v1/messages", data=data, ssl=self.ssl,
                                       headers={**self.headers, "Content-Type": "application/xml"}) as r:
            assert r.status < 300, await r.text()


def _eq(got: object, want: object) -> None:
    assert got == want, f"{got!r} != {want!r}"


async def conversation(wire: Wire, c: Conversation) -> None:
    ecms, native = MilDoc(wire, A), Native(wire)
    running = wire.running
    refused = running.refused is not None  # A's requests all refused; the native agency still gets in
    exchange = running.app[keys.EXCHANGE]
    box: dict[str, Any] = {}

    async def ecms_sends() -> None:
        got = await ecms.send_letter(TO_NATIVE)
        assert got["Status"], got
        box["letter_id"] = got["ProcessID"]

    async def native_pulls() -> None:
        if refused:
            _eq(await native.inbox(), [])  # nothing came from the refused agency
            return
        [item] = await native.inbox()
        env = await native.envelope(item)
        assert env.letter is not None
        _eq((env.header.sender, env.letter.number, env.letter.subject), (A, TO_NATIVE.number, TO_NATIVE.subject))
        _eq([a.content for a in env.attachments if a.role == "main"], [PDF])
        await native.ack(item)

    async def native_accepts() -> None:
        if refused:
            return  # there is no letter to answer: the native system sends nothing
        created = dt.datetime(2026, 11, 20, 14, 0, tzinfo=BANGKOK)
        await native.submit(build_envelope(Envelope(
            header=Header(message_id=str(uuid.uuid4()), message_type=MessageType.NOTIFIER, created_at=created,
                          sender=NATIVE, recipients=(A,), ref_to_message_id=box["letter_id"]),
            body=Notifier(kind=NotifierKind.ACCEPTED, letter_number=TO_NATIVE.number,
                          letter_date=dt.date(2026, 11, 20), registry_number="ขก 3310"))))

    async def ecms_reads_accept() -> None:
        got = await ecms.receive_notifier()
        _eq((got.get("kind"), got["No"], got["AcceptId"], got["AcceptDept"]),
            ("AcceptLetterNotifier", TO_NATIVE.number, "ขก 3310", NATIVE))

    async def native_sends() -> None:
        await native.submit(letter_bytes(sender=NATIVE, recipients=(A,), subject="แจ้งผลการสำรวจข้อมูลบุคลากร",
                                         pdf=PDF))

    async def ecms_pulls() -> None:
        got = await ecms.receive_document()
        _eq((got.get("kind"), got["Subject"], got["SenderOrg"], got["Main"]),
            ("letter", "แจ้งผลการสำรวจข้อมูลบุคลากร", NATIVE, PDF))
        _eq(got["delete"], [])
        box["native_letter"] = got

    async def ecms_accepts() -> None:
        # where it was refused it never got the letter; its user still presses the button on what it has
        letter = box.get("native_letter") if not refused else {"No": "", "Date": ""}
        got = await ecms.send_notifier("AcceptLetterNotifier", letter["No"], letter["Date"], "", "กห 5501")
        assert got["Status"], got

    async def native_reads_accept() -> None:
        items = await native.inbox()
        if refused:
            _eq(items, [])  # no notifier came, and no receipt: its letter was never taken
            return
        kinds = sorted(i["type"] for i in items)
        _eq(kinds, ["notifier", "receipt", "receipt"])  # the native side gets its receipts
        [item] = [i for i in items if i["type"] == "notifier"]
        env = await native.envelope(item)
        assert env.notifier is not None
        _eq((env.header.sender, env.notifier.kind, env.notifier.registry_number),
            (A, NotifierKind.ACCEPTED, "กห 5501"))
        for i in items:
            await native.ack(i)

    async def nothing_piles_up() -> None:
        # where A was refused, the native letter still waits for it, untaken
        _eq([i.message_type for i in await exchange.inbox.inbox(A)], ["letter"] if refused else [])
        _eq(await native.inbox(), [])

    steps = [
        ("e-CMS agency sends a letter to the native agency", ecms_sends),
        ("native agency pulls, reads and acknowledges it", native_pulls),
        ("native agency sends an accepted notifier", native_accepts),
        ("e-CMS agency pulls it as AcceptLetterNotifier", ecms_reads_accept),
        ("native agency sends a letter to the e-CMS agency", native_sends),
        ("e-CMS agency pulls and deletes it", ecms_pulls),
        ("e-CMS agency sends AcceptLetterNotifier", ecms_accepts),
        ("native agency reads the notifier and its receipts", native_reads_accept),
        ("nothing left in either inbox", nothing_piles_up),
        ("no URL key is stored", lambda: key_stored_nowhere(running)),
    ]
    if refused:
        steps.append(("refused: nothing stored from the e-CMS agency", lambda: nothing_stored(running, A)))
    for name, run in steps:
        await c.step(name, run)


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_mixed_conversation(mode, database_url, workdir, dev_pki):
    await replay("mixed", mode, conversation, database_url, workdir, dev_pki)
