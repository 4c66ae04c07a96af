"""BOI-DMS (ScoreSolutions, VB.NET) replayed through a whole conversation, in every admission mode.

Two BOI-DMS installations, A (0100000000) and B (1550100000), whose route is e-CMS: look-ups, a
letter with a Thai subject and a PDF, pull and delete, receive / accept / invalid-accept-id / reject /
invalid notifiers, withdraw and resend, outbound status, refusals; nothing piles up in their native
inboxes. Every request is the client's own string and every answer is read as its code reads it
(:mod:`tests.ecms.replay_clients`).
"""

from __future__ import annotations

import base64

import pytest

from gateway.core import appkeys as keys
from gateway.ecms.settings import ECMS_PATH
from tests.ecms.dotnet import Document
from tests.ecms.replay import MODES, A, B, Conversation, Wire, key_stored_nowhere, nothing_stored, replay
from tests.ecms.replay_clients import BoiDms, Letter
from tests.ecms.vector_export import export

pytestmark = pytest.mark.timeout(300)

PDF = b"%PDF-1.4\n% BOI test letter\n%%EOF\n"
L1 = Letter(number="นร 1305/501", date="2026-11-20", subject="ขอเชิญประชุมคณะทำงานส่งเสริมการลงทุน",
            sender=A, receiver=B, pdf=PDF, speed="2", references=(("นร 1305/400", "2026-10-01", "เรื่องเดิม"),))
L2 = Letter(number="นร 1305/502", date="2026-11-21", subject="ขอข้อมูลโครงการ (ฉบับผิด)", sender=A, receiver=B,
            pdf=PDF, attachments=(("application/pdf", b"%PDF-1.4\n% enclosure\n%%EOF\n"),))
#: Marked ลับ (SecretCode 2): carried over TLS, refused over the legacy listener's plain HTTP.
L_SECRET = Letter(number="นร 1305/503", date="2026-11-21", subject="รายงานการตรวจสอบภายใน (ลับ)", sender=A, receiver=B,
                  pdf=PDF, secret="2")
L2_FIXED = Letter(number=L2.number, date=L2.date, subject="ขอข้อมูลโครงการ", sender=A, receiver=B, pdf=PDF)


def _eq(got: object, want: object) -> None:
    assert got == want, f"{got!r} != {want!r}"


async def conversation(wire: Wire, c: Conversation) -> None:
    a, b = BoiDms(wire, A), BoiDms(wire, B)
    running = wire.running
    exchange = running.app[keys.EXCHANGE]
    box: dict[str, str] = {}

    async def ministries() -> None:
        rows = await a.get_ministry_list()
        assert ("สำนักนายกรัฐมนตรี", "01") in rows, rows

    async def organizations() -> None:
        rows = {r["OrganizationID"]: r for r in await b.get_organization_list()}
        _eq((rows[B]["En-Name"], rows[B]["Th-Name"]), ("Chiang Mai Provincial Hall", "ศาลากลางจังหวัดเชียงใหม่"))
        _eq({r["ECMS-URL"] for r in rows.values()}, {wire.running.base + ECMS_PATH})

    async def send(letter: Letter, key: str) -> None:
        got = await a.send_letter(letter)
        assert got["ProcessID"].startswith("ecms."), got
        box[key] = got["ProcessID"]

    async def pull_letter(letter: Letter) -> None:
        got = await b.receive_letter()
        _eq((got["ID"], got["CorrespondenceDate"], got["Subject"]), (letter.number, letter.date, letter.subject))
        _eq((got["SenderPartyDepartment"], got["ReceiverPartyDepartment"]), (A, B))
        _eq(base64.b64decode(got["MainBase64"]), letter.pdf)
        _eq(got["MainMime"], "application/pdf")
        _eq(got["references"], list(letter.references))
        _eq([(m, base64.b64decode(x)) for m, x in got["attachments"]], list(letter.attachments))
        box["pid"] = got["ProcessID"]

    async def delete(who: BoiDms) -> None:
        pid = box.get("pid", "")  # where nothing was pulled (refused) the client sends what it has
        _eq((await who.delete(pid))["ProcessID"], pid)

    async def empty(who: BoiDms) -> None:
        _eq((await who.receive_letter())["ProcessID"], "")

    async def notify(who: BoiDms, element: str, letter: Letter, accept_id: str | None = None) -> None:
        got = await who.send_notifier(element, letter.number, letter.date, letter.subject, accept_id)
        assert got["ProcessID"].startswith("ecms.n."), got
        if accept_id is not None:
            _eq(got["AcceptID"], accept_id)

    async def pull_notifier(who: BoiDms, element: str, letter: Letter, answering: str,
                            accept_id: str | None = None) -> None:
        got = await who.receive_notifier(element)
        _eq((got["LetterID"], got["CorrespondenceDate"], got["AcceptDepartmentCode"]),
            (letter.number, letter.date, answering))
        if accept_id is not None:
            _eq(got["AcceptID"], accept_id)
        box["pid"] = got["ProcessID"]

    async def pull_receive_notifier() -> None:
        got = await a.receive_letter()  # ReceiveReceiveLetterNotifier reads it with the letter reader
        assert got["ProcessID"], got
        box["pid"] = got["ProcessID"]

    async def withdraw() -> None:
        _eq((await a.withdraw(L2.number, L2.date, A, B))["ProcessID"], L2.number)

    async def resend() -> None:
        got = await a.send_letter(L2_FIXED)
        assert got["ProcessID"].startswith("ecms.") and got["ProcessID"] != box["l2"], got

    async def outbound_status() -> None:
        _eq(await a.outbound_status(), [])  # its own request is not XML: answered 200, read as no rows

    async def refused_unknown_receiver() -> None:
        got = await a.send_letter(Letter(number="นร 1305/999", date="2026-11-22", subject="ผู้รับไม่มีในทำเนียบ",
                                         sender=A, receiver="9999999999", pdf=PDF))
        _eq(got["ProcessID"], "")  # refused: HTTP 200, an empty ProcessID and the ErrorDetail

    async def refused_truncated() -> None:
        body = await wire.post(A, b'<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="')
        assert b"ECMS-100" in body

    async def send_secret() -> None:
        got = await a.send_letter(L_SECRET)
        if not running.secrets_refused:
            assert got["ProcessID"].startswith("ecms."), got
            return
        _eq(got["ProcessID"], "")  # refused over plain HTTP: the ErrorDetail says why, in Thai first
        answer = Document(wire.log[-1][3])
        codes = [n.inner_text for n in answer.get_elements_by_tag_name("ErrorCode")]
        [text] = [n.inner_text for n in answer.get_elements_by_tag_name("ErrorDescription")]
        _eq(codes, ["ECMS-303"])
        assert text.startswith("policy.secret_over_plain_http") or "policy.secret_over_plain_http" in text, text
        assert "ลับ" in text and "HTTPS" in text, text

    async def pull_secret() -> None:
        if running.secrets_refused:
            await empty(b)  # nothing was stored: nothing to pull
            return
        await pull_letter(L_SECRET)
        await delete(b)

    async def no_receipts_piled() -> None:
        for agency in (A, B):
            _eq([i.message_type for i in await exchange.inbox.inbox(agency)], [])
        kept = await wire.running.app[keys.POOL].fetchval(
            "SELECT count(*) FROM messages m WHERE message_type = 'receipt'"
            " AND message_receipt(receipt, received, forwarded, forwarded_edits, forwarded_inserts) IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = m.pk)")
        # each item pulled and deleted (8, and the letter marked ลับ where it was taken): its signed receipt
        # kept, not queued; a refused agency had nothing taken
        want = 0 if running.refused else 8 if running.secrets_refused else 9
        assert kept == want, (kept, want)

    steps = [
        ("GetMinistryOrganizationList", ministries),
        ("GetOrganizationList (name, NextSibling, ECMS-URL)", organizations),
        ("A sends a letter (Thai subject, PDF, reference)", lambda: send(L1, "l1")),
        ("B pulls it", lambda: pull_letter(L1)),
        ("B deletes it", lambda: delete(b)),
        ("B's queue is empty", lambda: empty(b)),
        ("B sends ReceiveLetterNotifier", lambda: notify(b, "ReceiveLetterNotifier", L1)),
        ("A pulls it", pull_receive_notifier),
        ("A deletes it", lambda: delete(a)),
        ("B sends AcceptLetterNotifier (processID)", lambda: notify(b, "AcceptLetterNotifier", L1, "รับ 88/2569")),
        ("A pulls it", lambda: pull_notifier(a, "AcceptLetterNotifier", L1, B, "รับ 88/2569")),
        ("A deletes it", lambda: delete(a)),
        ("A sends InvalidAcceptIDNotifier", lambda: notify(a, "InvalidAcceptIDNotifier", L1, "รับ 88/2569")),
        ("B pulls it (processID)", lambda: pull_notifier(b, "InvalidAcceptIDNotifier", L1, B, "รับ 88/2569")),
        ("B deletes it", lambda: delete(b)),
        ("A sends a letter marked ลับ (refused over plain HTTP)", send_secret),
        ("B pulls and deletes it (nothing over plain HTTP)", pull_secret),
        ("A sends a second letter (attachment)", lambda: send(L2, "l2")),
        ("B pulls it", lambda: pull_letter(L2)),
        ("B deletes it", lambda: delete(b)),
        ("B sends RejectLetterNotifier", lambda: notify(b, "RejectLetterNotifier", L2)),
        ("A pulls it (processID)", lambda: pull_notifier(a, "RejectLetterNotifier", L2, B)),
        ("A deletes it", lambda: delete(a)),
        ("A withdraws the letter", withdraw),
        ("A resends it corrected", resend),
        ("B pulls the resent letter", lambda: pull_letter(L2_FIXED)),
        ("B deletes it", lambda: delete(b)),
        ("B sends InvalidLetterNotifier", lambda: notify(b, "InvalidLetterNotifier", L2_FIXED)),
        ("A pulls it", lambda: pull_notifier(a, "InvalidLetterNotifier", L2_FIXED, B)),
        ("A deletes it", lambda: delete(a)),
        ("A's verbatim OutboundStatusRequest", outbound_status),
        ("refused: unknown receiver", refused_unknown_receiver),
        ("refused: truncated XML, HTTP 200", refused_truncated),
        ("no delivery receipts pile up in A's or B's inbox", no_receipts_piled),
        ("no URL key is stored (wsa:to carries the configured URL)", lambda: key_stored_nowhere(running)),
    ]
    if running.refused:
        steps.append(("refused: nothing stored from A or B", lambda: nothing_stored(running, A, B)))
    for name, run in steps:
        await c.step(name, run)


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_boi_dms_conversation(mode, database_url, workdir, dev_pki):
    def conformance_kit(c: Conversation, wire: Wire) -> None:
        if mode == "token":
            export(c, wire, (L1.number, L2.number, L_SECRET.number))

    await replay("BOI-DMS", mode, conversation, database_url, workdir, dev_pki, after=conformance_kit)
