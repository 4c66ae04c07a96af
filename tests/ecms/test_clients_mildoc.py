"""mil-doc (NatchaphonBounprakong, C#) replayed through a whole conversation, in every admission mode.

Two mil-doc installations, A (0100000000) and B (1550100000), whose route is e-CMS: every look-up it
offers (ministries, organizations, secrecy, speed and MIME codes, time), letters with a Thai subject
and a PDF, written with its empty ReferenceCorrespondence and empty AttachmentBinaryObject when a
letter has none, pulled and deleted, all five notifiers, withdraw and resend, outbound status and
refusals read from ErrorDetail by position (:mod:`tests.ecms.replay_clients`).
"""

from __future__ import annotations

import pytest

from gateway.core import appkeys as keys
from gateway.ecms.settings import ECMS_PATH
from tests.ecms.replay import MODES, A, B, Conversation, Wire, key_stored_nowhere, nothing_stored, replay
from tests.ecms.replay_clients import Letter, MilDoc
from tests.ecms.vector_export import export

pytestmark = pytest.mark.timeout(300)

PDF = b"%PDF-1.4\n% mil-doc test letter\n%%EOF\n"
L1 = Letter(number="กห 0201/1501", date="2026-11-20", subject="ขอเชิญประชุมซักซ้อมแผนการรักษาความปลอดภัย",
            sender=A, receiver=B, pdf=PDF, speed="3")
L2 = Letter(number="กห 0201/1502", date="2026-11-21", subject="ขออนุมัติเดินทางไปราชการ (ฉบับผิด)", sender=A,
            receiver=B, pdf=PDF, references=(("กห 0201/1400", "2026-10-02", "อนุมัติหลักการ"),
                                             ("กห 0201/1401", "2026-10-03", "")),
            attachments=(("application/pdf", b"%PDF-1.4\n% enclosure 1\n%%EOF\n"),
                         ("image/png", b"\x89PNG\r\n\x1a\n")))
#: Marked ลับมาก (SecretCode 3): carried over TLS, refused over the legacy listener's plain HTTP.
L_SECRET = Letter(number="กห 0201/1503", date="2026-11-21", subject="แผนการเคลื่อนย้ายกำลังพล (ลับมาก)", sender=A,
                  receiver=B, pdf=PDF, secret="3")
L2_FIXED = Letter(number=L2.number, date=L2.date, subject="ขออนุมัติเดินทางไปราชการ", sender=A, receiver=B, pdf=PDF)


def _eq(got: object, want: object) -> None:
    assert got == want, f"{got!r} != {want!r}"


async def conversation(wire: Wire, c: Conversation) -> None:
    a, b = MilDoc(wire, A), MilDoc(wire, B)
    running = wire.running
    exchange = running.app[keys.EXCHANGE]
    box: dict[str, str] = {}

    async def ministries() -> None:
        assert ("สำนักนายกรัฐมนตรี", "01") in await a.lookup("GetMinistryOrganizationList", "Th-Name", "MinistryID")

    async def organizations() -> None:
        rows = {r[3]: r for r in await a.lookup("GetOrganizationList", "En-Name", "Th-Name", "ECMS-URL",
                                                "OrganizationID")}
        _eq(rows[B][:3], ("Chiang Mai Provincial Hall", "ศาลากลางจังหวัดเชียงใหม่", wire.running.base + ECMS_PATH))
        _eq(rows[A][1], "สำนักนายกรัฐมนตรี")

    async def secrets() -> None:
        _eq(await a.lookup("GetSecretCodes", "Value", "Description"),
            [("001", "ปกติ"), ("002", "ลับ"), ("003", "ลับมาก"), ("004", "ลับที่สุด")])

    async def speeds() -> None:
        _eq(await a.lookup("GetSpeedCodes", "Value", "Description"),
            [("001", "ปกติ"), ("002", "ด่วน"), ("003", "ด่วนมาก"), ("004", "ด่วนที่สุด")])

    async def mimes() -> None:
        assert ("pdf", "application/pdf") in await a.lookup("GetMimeCodes", "File-Extension", "Content-type")

    async def time_check() -> None:
        assert (await a.time_check()).startswith("20")

    async def send(letter: Letter, key: str) -> None:
        got = await a.send_letter(letter, message_id="scp1 ส่งหนังสือไปให้ scp2")
        assert got["Status"] and got["ProcessID"].startswith("ecms."), got
        box[key] = got["ProcessID"]

    async def pull_letter(letter: Letter) -> None:
        got = await b.receive_document()
        _eq(got.get("kind"), "letter")
        _eq((got["No"], got["Date"], got["Subject"]), (letter.number, letter.date, letter.subject))
        _eq((got["SenderOrg"], got["ReceiverOrg"], got["SenderName"]), (A, B, "พันเอก สมชาย"))
        _eq((got["Main"], got["MimeCode"]), (letter.pdf, "application/pdf"))
        # the client skips all-empty references and empty attachments itself; none are sent back
        _eq(sorted(got["References"]), sorted(letter.references))
        _eq(sorted(got["Attachments"]), sorted(letter.attachments))
        _eq(got["delete"], [])

    async def empty(who: MilDoc) -> None:
        _eq(await who.receive_document(), {})

    async def notify(who: MilDoc, element: str, letter: Letter, accept_id: str | None = None) -> None:
        got = await who.send_notifier(element, letter.number, letter.date, letter.subject, accept_id)
        assert got["Status"] and got["ProcessID"].startswith("ecms.n."), got

    async def pull_notifier(who: MilDoc, kind: str, letter: Letter, answering: str,
                            accept_id: str | None = None) -> None:
        got = await who.receive_notifier()
        _eq((got.get("kind"), got["No"], got["Date"], got["AcceptDept"]), (kind, letter.number, letter.date, answering))
        if accept_id is not None:
            _eq(got["AcceptId"], accept_id)
        _eq(got["delete"], [])

    async def pull_invalid_accept_id() -> None:
        got = await b.receive_document()  # RequestReceiveDocument handles InvalidAcceptIDNotifier
        _eq((got.get("kind"), got["No"], got["AcceptDept"]), ("InvalidAcceptIDNotifier", L1.number, B))
        _eq(got["delete"], [])

    async def send_secret() -> None:
        got = await a.send_letter(L_SECRET)
        if not running.secrets_refused:
            assert got["Status"] and got["ProcessID"].startswith("ecms."), got
            return
        [(code, text)] = got["errors"]  # refused over plain HTTP: the ErrorDetail it shows its user
        _eq(code, "ECMS-303")
        assert "policy.secret_over_plain_http" in text and "ลับมาก" in text and "HTTPS" in text, text

    async def pull_secret() -> None:
        if running.secrets_refused:
            await empty(b)  # nothing was stored: nothing to pull
            return
        await pull_letter(L_SECRET)

    async def withdraw() -> None:
        _eq(await a.withdraw(L2.number, L2.date, A, B), [])

    async def resend() -> None:
        got = await a.send_letter(L2_FIXED)
        assert got["Status"] and got["ProcessID"] != box["l2"], got

    async def outbound_status() -> None:
        rows = await a.outbound_status()
        assert (box["l1"], L1.number) in [(p, n) for p, n, _ in rows], rows

    async def refused_unknown_receiver() -> None:
        got = await a.send_letter(Letter(number="กห 0201/9999", date="2026-11-22", subject="ไม่มีผู้รับ", sender=A,
                                         receiver="9999999999", pdf=PDF))
        _eq([code for code, _ in got["errors"]], ["ECMS-300"])

    async def refused_wrong_sender() -> None:
        got = await b.send_letter(L1)  # B names A as the sender
        _eq([code for code, _ in got["errors"]], ["ECMS-201"])

    async def refused_not_xml() -> None:
        _eq([code for code, _ in await a.raw("ส่งหนังสือ".encode())], ["ECMS-100"])

    async def refused_unknown_operation() -> None:
        data = (b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
                b"<GetOrganizationListV2 /></SOAP-ENV:Body></SOAP-ENV:Envelope>")
        _eq([code for code, _ in await a.raw(data)], ["ECMS-104"])

    async def refused_bad_process_id() -> None:
        _eq([code for code, _ in await b.delete("ไม่มี")], ["ECMS-307"])

    async def no_receipts_piled() -> None:
        for agency in (A, B):
            _eq([i.message_type for i in await exchange.inbox.inbox(agency)], [])

    steps = [
        ("GetMinistryOrganizationList", ministries),
        ("GetOrganizationList", organizations),
        ("GetSecretCodes (Value/Description)", secrets),
        ("GetSpeedCodes (Value/Description)", speeds),
        ("GetMimeCodes (File-Extension/Content-type)", mimes),
        ("TimeCheckRequest", time_check),
        ("A sends a letter (Thai subject, PDF, empty reference and attachment)", lambda: send(L1, "l1")),
        ("B pulls and deletes it", lambda: pull_letter(L1)),
        ("B's queue is empty", lambda: empty(b)),
        ("B sends ReceiveLetterNotifier", lambda: notify(b, "ReceiveLetterNotifier", L1)),
        ("A pulls and deletes it", lambda: pull_notifier(a, "ReceiveLetterNotifier", L1, B)),
        ("B sends AcceptLetterNotifier", lambda: notify(b, "AcceptLetterNotifier", L1, "รับ 77/2569")),
        ("A pulls and deletes it", lambda: pull_notifier(a, "AcceptLetterNotifier", L1, B, "รับ 77/2569")),
        ("A sends InvalidAcceptIDNotifier", lambda: notify(a, "InvalidAcceptIDNotifier", L1, "รับ 77/2569")),
        ("B pulls and deletes it", pull_invalid_accept_id),
        ("A sends a letter marked ลับมาก (refused over plain HTTP)", send_secret),
        ("B pulls and deletes it (nothing over plain HTTP)", pull_secret),
        ("A sends a second letter (two references, two attachments)", lambda: send(L2, "l2")),
        ("B pulls and deletes it", lambda: pull_letter(L2)),
        ("B sends RejectLetterNotifier", lambda: notify(b, "RejectLetterNotifier", L2)),
        ("A pulls and deletes it", lambda: pull_notifier(a, "RejectLetterNotifier", L2, B)),
        ("A withdraws the letter", withdraw),
        ("A resends it corrected", resend),
        ("B pulls and deletes the resent letter", lambda: pull_letter(L2_FIXED)),
        ("B sends InvalidLetterNotifier", lambda: notify(b, "InvalidLetterNotifier", L2_FIXED)),
        ("A pulls and deletes it", lambda: pull_notifier(a, "InvalidLetterNotifier", L2_FIXED, B)),
        ("OutboundStatusRequest", outbound_status),
        ("refused: unknown receiver (ErrorDetail by position)", refused_unknown_receiver),
        ("refused: another agency as sender", refused_wrong_sender),
        ("refused: not XML, HTTP 200", refused_not_xml),
        ("refused: unknown operation, HTTP 200", refused_unknown_operation),
        ("refused: unknown ProcessID", refused_bad_process_id),
        ("no delivery receipts pile up in A's or B's inbox", no_receipts_piled),
        ("no URL key is stored (wsa:To carries the configured URL)", lambda: key_stored_nowhere(running)),
    ]
    if running.refused:
        steps.append(("refused: nothing stored from A or B", lambda: nothing_stored(running, A, B)))
    for name, run in steps:
        await c.step(name, run)


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_mil_doc_conversation(mode, database_url, workdir, dev_pki):
    def conformance_kit(c: Conversation, wire: Wire) -> None:
        if mode == "token":
            export(c, wire, (L1.number, L2.number, L_SECRET.number))

    await replay("mil-doc", mode, conversation, database_url, workdir, dev_pki, after=conformance_kit)
