"""Whole e-CMS conversations through the facade (in-memory exchange, real intake)."""

from __future__ import annotations

import base64

from lxml import etree

from gateway.core.ecmswire import soap
from gateway.ecms.handler import EcmsFacade
from gateway.ecms.settings import EcmsSettings
from tests.ecms.conftest import load_vector
from tests.ecms.helpers import body_child, errors, request

U = soap.U
R = f"{{{soap.RAM_NS}}}"


async def _ok(facade, data, caller):
    answer = await facade.handle(data, caller=caller)
    assert answer.status == 200, answer.body[:400]
    assert errors(answer.body) == [], answer.body[:600]
    return body_child(answer.body)


async def _pull(facade, caller):
    return await _ok(facade, request(U.CorrespondenceLetterInboundRequest()), caller)


async def _delete(facade, caller, pid):
    return await facade.handle(request(U.CorrespondenceLetterDeleteRequest(U.ProcessID(pid))), caller=caller)


def _notifier(name, letter_id="อก 0905/0007", date="2012-09-07", accept_id=None, accept_dept=None):
    parts = [U.LetterID(letter_id)]
    if accept_id is not None:
        parts.append(U.AcceptID(accept_id))
    parts += [U.CorrespondenceDate(date), U.Subject("ขอเชิญประชุมคณะทำงาน")]
    if accept_dept:
        parts.append(U.AcceptDepartment(U.Code(accept_dept)))
    return request(U.CorrespondenceLetterOutboundRequest(getattr(U, name)(*parts)))


async def test_send_pull_delete_keeps_the_letter_intact(facade, exchange):
    sent = await _ok(facade, load_vector("letter-vb-linqws"), "11008")
    pid = sent.findtext("ProcessID")
    assert pid.startswith("ecms.")
    assert sent.find(f"{{{soap.RSM_NS}}}GovernmentDocument/{R}CorrespondenceLetter/{R}ID").text == "อก 0905/0007"
    stored = exchange.messages[("11008", pid)]
    assert stored.channel == "ecms" and stored.evidence == load_vector("letter-vb-linqws")

    pulled = await _pull(facade, "11002")
    process_id = pulled.findtext("ProcessID")
    letter_el = pulled.find(f"{{{soap.RSM_NS}}}GovernmentDocument/{R}CorrespondenceLetter")
    # clients take the first ram:ID of the answer as the letter number
    assert next(pulled.iter(f"{R}ID")).text == "อก 0905/0007"
    assert letter_el.findtext(f"{R}Subject") == "ขอเชิญประชุมคณะทำงาน"
    assert letter_el.findtext(f"{R}CorrespondenceDate") == "2012-09-07"
    assert letter_el.findtext(f"{R}SenderParty/{R}DepartmentOrganization/{R}ID") == "11008"
    assert letter_el.findtext(f"{R}SenderParty/{R}GivenName") == "อัครวัฒน์"
    assert letter_el.findtext(f"{R}ReceiverParty/{R}JobTitle") == "ปลัดกระทรวง"
    assert letter_el.findtext(f"{R}Attachment") == "สำเนาคำสั่ง 1 ฉบับ"
    assert base64.b64decode(letter_el.findtext(f"{R}AttachmentBinaryObject")) == base64.b64decode("t7TKzbrK6KfLudGnytfN")
    assert letter_el.find(f"{R}MainLetterBinaryObject").get("mimeCode") == "application/pdf"
    assert pulled.find(f"{{{soap.RSM_NS}}}GovernmentDocument/{R}GovernmentSignature/{R}SignerParty/{R}Title").text \
        == "ผู้อำนวยการ"

    # the sender cannot dequeue the receiver's item
    other = await _delete(facade, "11008", process_id)
    assert errors(other.body) == ["ECMS-307"]
    done = await _delete(facade, "11002", process_id)
    assert errors(done.body) == [] and body_child(done.body).findtext("ProcessID") == process_id
    assert list(await _pull(facade, "11002")) == []  # empty answer element once the queue is empty


async def test_a_retried_letter_gets_the_original_process_id(facade, exchange, clock):
    first = (await _ok(facade, load_vector("letter-mildoc-xlinq"), "11008")).findtext("ProcessID")
    clock.advance(30)  # the retry is built later: CreatedAt differs, the letter does not
    second = (await _ok(facade, load_vector("letter-mildoc-xlinq"), "11008")).findtext("ProcessID")
    assert first == second
    assert len(exchange.order) == 1


async def test_a_different_letter_under_the_same_number_needs_a_withdrawal(facade):
    await _ok(facade, load_vector("letter-vb-linqws"), "11008")
    changed = load_vector("letter-vb-linqws").replace("ขอเชิญประชุมคณะทำงาน".encode(), "แก้ไขเรื่อง".encode())
    answer = await facade.handle(changed, caller="11008")
    assert errors(answer.body) == ["ECMS-306"]


async def test_each_notifier_reaches_the_sender_and_maps_back(facade):
    await _ok(facade, load_vector("letter-vb-linqws"), "11008")
    pid = (await _pull(facade, "11002")).findtext("ProcessID")
    assert errors((await _delete(facade, "11002", pid)).body) == []
    for name, accept_id in [("ReceiveLetterNotifier", None), ("AcceptLetterNotifier", "รับ 1234/2567"),
                            ("RejectLetterNotifier", None), ("InvalidLetterNotifier", None)]:
        sent = await _ok(facade, _notifier(name, accept_id=accept_id), "11002")
        echo = sent.find(name)
        assert echo.findtext("AcceptDepartment/Code") == "11002"
        assert echo.findtext("AcceptDate")
        got = await _pull(facade, "11008")
        n = got.find(name)
        assert n is not None, etree.tostring(got)
        assert n.findtext("LetterID") == "อก 0905/0007"
        assert n.findtext("CorrespondenceDate") == "2012-09-07"
        assert n.findtext("AcceptDepartment/Code") == "11002"
        if accept_id:
            assert n.findtext("AcceptID") == accept_id
        assert errors((await _delete(facade, "11008", got.findtext("ProcessID"))).body) == []
    # the sender says the registry number was wrong: it goes to the receiver
    await _ok(facade, _notifier("InvalidAcceptIDNotifier", accept_id="รับ 1234/2567"), "11008")
    got = await _pull(facade, "11002")
    assert got.find("InvalidAcceptIDNotifier").findtext("AcceptID") == "รับ 1234/2567"


async def test_reject_withdraw_resend(facade, exchange):
    await _ok(facade, load_vector("letter-vb-linqws"), "11008")
    pid = (await _pull(facade, "11002")).findtext("ProcessID")
    await _delete(facade, "11002", pid)
    await _ok(facade, _notifier("RejectLetterNotifier"), "11002")
    rejected = await _pull(facade, "11008")
    assert rejected.find("RejectLetterNotifier") is not None
    withdraw = request(U.CorrespondenceDeleteGovernmentDocumentRequest(
        U.LetterID("อก 0905/0007"), U.CorrespondenceDate("2012-09-07"),
        U.SenderDepartment(U.Code("11008")), U.AcceptDepartment(U.Code("11002"))))
    answer = await _ok(facade, withdraw, "11008")
    assert answer.findtext("LetterID") == "อก 0905/0007"
    # resend the very same letter: a new message (generation 1), delivered again
    resent = (await _ok(facade, load_vector("letter-vb-linqws"), "11008")).findtext("ProcessID")
    assert resent.endswith(".r1")
    assert len(exchange.order) == 3  # letter, reject notifier, resent letter
    again = await _pull(facade, "11002")
    assert again.findtext("ProcessID") != pid
    # withdrawing twice finds nothing left
    assert errors((await facade.handle(withdraw, caller="11008")).body) == []
    assert errors((await facade.handle(withdraw, caller="11008")).body) == ["ECMS-305"]


async def test_special_request_returns_the_named_item(facade):
    await _ok(facade, load_vector("letter-vb-linqws"), "11008")
    await _ok(facade, load_vector("letter-mildoc-xlinq"), "11008")
    special = request(U.CorrespondenceLetterInboundSpecialRequest(U.GovernmentDocument(
        U.LetterID("กห 0201/123"), U.CorrespondenceDate("2020-01-15"),
        U.SenderDepartment(U.Code("11008")), U.AcceptDepartment(U.Code("11002")))))
    got = await _ok(facade, special, "11002")
    assert next(got.iter(f"{R}ID")).text == "กห 0201/123"


async def test_outbound_status_lists_sent_items(facade):
    pid = (await _ok(facade, load_vector("letter-vb-linqws"), "11008")).findtext("ProcessID")
    got = await _ok(facade, request(U.OutboundStatusRequest()), "11008")
    rows = [(o.findtext("ProcessID"), o.findtext("LetterID"), o.findtext("ProcessStatus")) for o in got.iter("Outbound")]
    assert rows == [(pid, "อก 0905/0007", "inbox")]


async def test_lookups(facade):
    orgs = await _ok(facade, request(U.GetOrganizationList()), "11008")
    rows = {o.findtext("OrganizationID"): (o.findtext("Th-Name"), o.findtext("ECMS-URL")) for o in orgs.iter("OrganizationList")}
    assert rows["11002"] == ("สำนักงานปลัดกระทรวง ICT", "https://gateway.example/ecms-ws01/service2")
    ministries = await _ok(facade, request(U.GetMinistryOrganizationList()), "11008")
    ids = [m.findtext("MinistryID") for m in ministries.iter("MinistryOrganizationList")]
    assert "11" in ids and "20" in ids
    speeds = await _ok(facade, request(U.GetSpeedCodes()), "11008")
    assert [s.findtext("Code") for s in speeds.iter("SpeedCode")] == ["001", "002", "003", "004"]
    secrets = await _ok(facade, request(U.GetSecretCodes()), "11008")
    assert [s.findtext("Name") for s in secrets.iter("SecretCode")][-1] == "ลับที่สุด"
    mimes = await _ok(facade, request(U.GetMimeCodes()), "11008")
    assert "application/pdf" in [m.findtext("Code") for m in mimes.iter("MimeCode")]
    time = await _ok(facade, request(U.TimeCheckRequest()), "11008")
    assert time.findtext("ECMSTime") == "2024-05-01T09:30:00+07:00"


async def test_unauthenticated_caller_gets_error_detail(facade):
    answer = await facade.handle(request(U.GetOrganizationList()), caller=None)
    assert answer.status == 200 and errors(answer.body) == ["ECMS-200"]
    assert body_child(answer.body).tag == "GetOrganizationListResponse"


async def test_unsigned_letters_refused_when_policy_says_so(exchange, clock):
    strict = EcmsFacade(exchange, settings=EcmsSettings(accept_unsigned=False), clock=clock.now)
    answer = await strict.handle(load_vector("letter-vb-linqws"), caller="11008")
    assert errors(answer.body) == ["ECMS-402"]
    assert exchange.order == []


async def test_error_detail_children_are_positional(facade):
    answer = await facade.handle(load_vector("letter-wrong-sender"), caller="11008")
    detail = next(etree.fromstring(answer.body).iter("ErrorDetail"))
    assert [c.tag for c in detail] == ["ErrorCode", "ErrorDescription"]
    assert "auth.wrong_sender" in detail[1].text and "SenderParty" in detail[1].text
