"""The e-CMS endpoint on the real service: create_app on a real PostgreSQL database, requests
over HTTP to /ecms-ws01/service2 and the native API side by side (agencies of tests/support)."""

from __future__ import annotations

from gateway.ecms import soap
from gateway.ecms.handler import ECMS_PATH
from tests.ecms.helpers import body_child, errors, request
from tests.support import CMI, OPM, TOKENS, letter_bytes

U = soap.U
R = f"{{{soap.RAM_NS}}}"


def auth(agency=OPM, content_type="application/xml"):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": content_type}


async def soap_call(client, agency, data: bytes) -> bytes:
    r = await client.post(ECMS_PATH, data=data, headers=auth(agency, "text/xml"))
    assert r.status == 200, await r.text()
    return await r.read()


async def test_receipts_never_hide_a_letter_from_an_ecms_client(make_client, clock):
    client = await make_client()
    for i in range(60):
        r = await client.post("/v1/messages", data=letter_bytes(message_id=f"m-{i}"), headers=auth(OPM))
        assert r.status == 202, await r.text()
    items = (await (await client.get("/v1/inbox?limit=100", headers=auth(CMI))).json())["items"]
    assert len(items) == 60
    for item in items:  # each acknowledgement puts a delivery receipt into OPM's inbox
        assert (await client.post(f"/v1/inbox/{item['delivery_id']}/ack", headers=auth(CMI))).status == 200
    clock.advance(1)  # the letter is queued after every receipt
    r = await client.post("/v1/messages", headers=auth(CMI),
                          data=letter_bytes(sender=CMI, recipients=(OPM,), message_id="cmi-1", subject="ตอบรับ"))
    assert r.status == 202, await r.text()

    answer = await soap_call(client, OPM, request(U.CorrespondenceLetterInboundRequest()))
    assert errors(answer) == []
    pulled = body_child(answer)
    letter = pulled.find(f"{{{soap.RSM_NS}}}GovernmentDocument/{R}CorrespondenceLetter")
    assert letter is not None and letter.findtext(f"{R}Subject") == "ตอบรับ"
    # the receipts stay for the native inbox, ahead of the letter
    native = (await (await client.get("/v1/inbox?limit=100", headers=auth(OPM))).json())["items"]
    assert [i["type"] for i in native] == ["receipt"] * 60 + ["letter"]
    assert native[-1]["delivery_id"] == pulled.findtext("ProcessID")

    answer = await soap_call(client, OPM, request(U.CorrespondenceLetterDeleteRequest(
        U.ProcessID(pulled.findtext("ProcessID")))))
    assert errors(answer) == []
    # nothing left in e-CMS form: an empty answer although 60 receipts still wait
    assert len(body_child(await soap_call(client, OPM, request(U.CorrespondenceLetterInboundRequest())))) == 0
