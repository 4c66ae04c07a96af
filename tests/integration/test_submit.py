"""Submission through the real HTTP API on a real database."""

import hashlib
import json

import pytest

from gateway.core import appkeys as keys
from gateway.core import xml
from gateway.core.envelope import NotifierKind, Secrecy
from pki.sign import sign_envelope
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes, notifier_bytes, stored_counts, trickle


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


async def counts(pool):
    return await stored_counts(pool)


async def test_accepts_a_letter_in_one_transaction(make_client, pool):
    client = await make_client()
    data = letter_bytes(recipients=(CMI, KKN), message_id="m-1")
    r = await client.post("/v1/messages", data=data, headers=auth())
    assert r.status == 202
    assert "Set-Cookie" not in r.headers  # the console's session belongs to the console only

    receipt = xml.parse(await r.read())
    xml.validate("envelope-v1.xsd", receipt)
    ns = {"e": "urn:th:gov:saraban:envelope:1"}
    assert receipt.findtext("e:Header/e:MessageType", namespaces=ns) == "receipt"
    assert receipt.findtext("e:Header/e:Recipients/e:Recipient", namespaces=ns) == OPM
    assert receipt.findtext("e:Receipt/e:Kind", namespaces=ns) == "submission"
    assert receipt.findtext("e:Receipt/e:MessageId", namespaces=ns) == "m-1"
    assert receipt.findtext("e:Receipt/e:Sha256", namespaces=ns) == hashlib.sha256(data).hexdigest()
    assert await counts(pool) == {"messages": 1, "deliveries": 2, "audit_events": 1, "receipts": 0}
    stored = await pool.fetchrow("SELECT received, received_sha256, letter_number, subject FROM messages")
    assert stored["received"] == data and stored["received_sha256"] == hashlib.sha256(data).digest()
    assert stored["subject"] == "ขอเชิญประชุมคณะกรรมการ"

    status = await (await client.get("/v1/messages/m-1", headers=auth())).json()
    assert {d["recipient"]: d["status"] for d in status["recipients"]} == {CMI: "inbox", KKN: "inbox"}


async def test_duplicate_returns_the_original_receipt_and_stores_nothing(make_client, pool):
    client = await make_client()
    data = letter_bytes(message_id="m-dup")
    first = await client.post("/v1/messages", data=data, headers=auth())
    second = await client.post("/v1/messages", data=data, headers=auth())
    assert (first.status, second.status) == (202, 200)
    assert await first.read() == await second.read()
    assert (await counts(pool))["messages"] == 1


async def test_reused_message_id_with_other_content_is_a_conflict(make_client, pool):
    client = await make_client()
    await client.post("/v1/messages", data=letter_bytes(message_id="m-x", subject="หนึ่ง"), headers=auth())
    r = await client.post("/v1/messages", data=letter_bytes(message_id="m-x", subject="สอง"), headers=auth())
    assert r.status == 409 and (await r.json())["code"] == "message.id_reused"
    assert (await counts(pool))["messages"] == 1


def _unknown_recipient():
    return letter_bytes(recipients=(CMI, "9999999999"))


BAD = [
    ("not xml", lambda: b"this is not xml", 400, "envelope.not_xml", None),
    ("dtd", lambda: b'<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>', 400, "envelope.dtd_forbidden", None),
    ("xsd", lambda: letter_bytes().replace(b"<Speed>urgent</Speed>", b"<Speed>soon</Speed>"), 400,
     "envelope.schema_invalid", "Speed"),
    ("unknown recipient", _unknown_recipient, 422, "envelope.unknown_recipient",
     "Header/Recipients/Recipient[2]"),
    ("top secret", lambda: letter_bytes(secrecy=Secrecy.TOP_SECRET), 422, "policy.top_secret", "Letter/Secrecy"),
    ("digest", lambda: letter_bytes(pdf=b"%PDF-1.4 aaaa").replace(
        b"JVBERi0xLjQgYWFhYQ==", b"JVBERi0xLjQgYmJiYg=="), 422, "attachment.digest_mismatch",
     ("Attachments/Attachment[1]/Sha256", "Attachments/Attachment[@Id='att-1']/Sha256")),
    ("comment in the subject", lambda: letter_bytes().replace("ขอเชิญ".encode(), "ขอเชิญ<!---->".encode()), 400,
     "envelope.comment_forbidden", "Envelope/Letter/Subject"),
    ("processing instruction", lambda: letter_bytes().replace(b"<Sender>", b"<?saraban x?><Sender>"), 400,
     "envelope.pi_forbidden", "Envelope/Header"),
    ("receipt submitted", lambda: letter_bytes().replace(b"<MessageType>letter</MessageType>",
                                                        b"<MessageType>notifier</MessageType>"), 422,
     "envelope.type_mismatch", "Header/MessageType"),
]


@pytest.mark.parametrize("name,make,status,code,field", BAD, ids=[b[0] for b in BAD])
async def test_bad_input_has_its_own_code_and_stores_nothing(make_client, pool, name, make, status, code, field):
    client = await make_client()
    data = make()
    r = await client.post("/v1/messages", data=data, headers=auth())
    body = await r.json()
    assert (r.status, body["code"]) == (status, code), body
    # the refusal is in the audit log: who, why and the digest of what was refused, not the bytes
    (event,) = await pool.fetch("SELECT actor, message_pk, details FROM audit_events WHERE kind = 'message.rejected'")
    assert (event["actor"], event["message_pk"], event["details"]["code"]) == (OPM, None, code)
    assert event["details"]["sha256"] == hashlib.sha256(data).hexdigest()
    if isinstance(field, tuple):
        assert body["field"] in field
    elif field is not None:
        assert field in body["field"]
    assert body["message"]
    assert await counts(pool) == {"messages": 0, "deliveries": 0, "audit_events": 0, "receipts": 0}


async def test_signed_letter_with_a_comment_in_its_signed_text_is_refused(make_client, pool, dev_pki):
    """Canonical XML ignores comments, so the signature would verify while the stored bytes read
    differently: ขอเชิญ<!---->ประชุม reads as ขอเชิญ to a receiver's parser."""

    client = await make_client(require_signature=True, seal=True, revocation="off")
    signed = sign_envelope(letter_bytes(message_id="m-comment"), dev_pki.agency_signer(OPM))
    hidden = signed.replace("ขอเชิญประชุม".encode(), "ขอเชิญ<!---->ประชุม".encode())
    assert hidden != signed
    r = await client.post("/v1/messages", data=hidden, headers=auth())
    assert (r.status, (await r.json())["code"]) == (400, "envelope.comment_forbidden")
    assert await counts(pool) == {"messages": 0, "deliveries": 0, "audit_events": 0, "receipts": 0}
    assert (await client.post("/v1/messages", data=signed, headers=auth())).status == 202


async def test_wrong_sender_for_the_token_is_forbidden(make_client, pool):
    client = await make_client()
    r = await client.post("/v1/messages", data=letter_bytes(sender=OPM), headers=auth(CMI))
    assert r.status == 403 and (await r.json())["code"] == "auth.wrong_sender"
    assert (await counts(pool))["messages"] == 0


async def test_oversized_body_is_refused_before_reading(make_client, pool):
    client = await make_client(max_body_bytes=10_000)
    r = await client.post("/v1/messages", data=letter_bytes(pdf=b"x" * 20_000), headers=auth())
    assert r.status == 413 and (await r.json())["code"] in ("envelope.too_large", "request.too_large")
    assert (await counts(pool))["messages"] == 0


async def test_a_trickled_body_times_out_with_408_and_nothing_stored(make_client, pool):
    # slowloris: the headers promise 5000 bytes, 10 arrive, then nothing; the gateway answers within
    # its body deadline (0.3 s + 5000 B at 1 MB/s here) and closes, instead of waiting for ever
    client = await make_client(body_timeout_s=0.3, body_min_rate=1_000_000)
    head, body, elapsed = await trickle(
        client.server.host, client.server.port,
        b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/xml\r\n"
        + f"Authorization: Bearer {TOKENS[OPM]}\r\nContent-Length: 5000\r\n\r\n".encode(), b"<?xml vers")
    # answered at the deadline, and the connection is not kept for the rest of the trickle
    # (aiohttp lingers at most its lingering_time for it, then closes)
    assert head.startswith(b"HTTP/1.1 408") and b"Connection: close" in head, head
    assert json.loads(body)["code"] == "request.timeout" and elapsed < 5
    assert await counts(pool) == {"messages": 0, "deliveries": 0, "audit_events": 0, "receipts": 0}


async def test_missing_or_bad_credentials(make_client):
    client = await make_client()
    r = await client.post("/v1/messages", data=letter_bytes(), headers={"Content-Type": "application/xml"})
    assert r.status == 401 and (await r.json())["code"] == "auth.required"
    r = await client.post("/v1/messages", data=letter_bytes(),
                          headers={"Authorization": "Bearer wrong", "Content-Type": "application/xml"})
    assert r.status == 401 and (await r.json())["code"] == "auth.invalid_token"


async def test_wrong_content_type(make_client):
    client = await make_client()
    r = await client.post("/v1/messages", data=letter_bytes(),
                          headers={"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "text/plain"})
    assert r.status == 415 and (await r.json())["code"] == "request.unsupported_media_type"


async def test_pull_inbox_ack_issues_a_delivery_receipt_to_the_sender(make_client, pool):
    client = await make_client()
    data = letter_bytes(recipients=(CMI,), message_id="m-pull")
    await client.post("/v1/messages", data=data, headers=auth())
    items = (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"]
    assert [i["message_id"] for i in items] == ["m-pull"]
    delivery_id = items[0]["delivery_id"]
    # another agency can neither read nor acknowledge it
    assert (await client.get(f"/v1/inbox/{delivery_id}", headers=auth(KKN))).status == 404
    assert (await client.post(f"/v1/inbox/{delivery_id}/ack", headers=auth(KKN))).status == 404
    got = await client.get(f"/v1/inbox/{delivery_id}", headers=auth(CMI))
    assert await got.read() == data  # unsealed in this app: exactly the bytes received
    r = await client.post(f"/v1/inbox/{delivery_id}/ack", headers=auth(CMI))
    assert (await r.json())["status"] == "delivered"
    # idempotent
    assert (await client.post(f"/v1/inbox/{delivery_id}/ack", headers=auth(CMI))).status == 200
    assert (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"] == []
    sender_inbox = (await (await client.get("/v1/inbox", headers=auth(OPM))).json())["items"]
    assert [(i["type"], i["sender"]) for i in sender_inbox] == [("receipt", CMI)]
    receipt_env = await (await client.get(f"/v1/inbox/{sender_inbox[0]['delivery_id']}", headers=auth(OPM))).read()
    assert delivery_id.encode() in receipt_env and hashlib.sha256(data).hexdigest().encode() in receipt_env
    status = await (await client.get("/v1/messages/m-pull", headers=auth())).json()
    assert status["recipients"][0]["status"] == "delivered"
    assert await pool.fetchval("SELECT count(*) FROM receipts WHERE kind = 'delivery'") == 1


async def test_notifier_is_carried_like_a_letter(make_client):
    client = await make_client()
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="m-n"), headers=auth())
    r = await client.post("/v1/messages", data=notifier_bytes(sender=CMI, recipient=OPM, ref="m-n"),
                          headers=auth(CMI))
    assert r.status == 202
    items = (await (await client.get("/v1/inbox", headers=auth(OPM))).json())["items"]
    assert [i["type"] for i in items] == ["notifier"]


async def test_health_readiness_and_metrics(make_client):
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    await client.post("/v1/messages", data=b"junk", headers=auth())
    text = await (await client.get("/metrics")).text()
    assert 'gateway_messages_rejected_total{code="envelope.not_xml"} 1.0' in text


async def test_unknown_route_is_json(make_client):
    client = await make_client()
    r = await client.get("/v1/nothing-here")
    assert r.status == 404 and (await r.json())["code"] == "not_found"


async def test_business_cycle_accept_reject_withdraw_resend(make_client):

    client = await make_client()
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI, KKN), message_id="m-biz"), headers=auth())
    # Chiang Mai registers it with its registry number; Khon Kaen rejects it
    r = await client.post("/v1/messages", data=notifier_bytes(sender=CMI, recipient=OPM, ref="m-biz",
                                                              registry_number="รับที่ 4567"), headers=auth(CMI))
    assert r.status == 202
    r = await client.post("/v1/messages", data=notifier_bytes(sender=KKN, recipient=OPM, ref="m-biz",
                                                              kind=NotifierKind.REJECTED), headers=auth(KKN))
    assert r.status == 202
    status = await (await client.get("/v1/messages/m-biz", headers=auth())).json()
    by = {x["recipient"]: x for x in status["recipients"]}
    assert (by[CMI]["answer"], by[CMI]["registry_number"]) == ("accepted", "รับที่ 4567")
    assert by[KKN]["answer"] == "rejected"
    # the sender withdraws it from Khon Kaen only, then sends a corrected letter
    r = await client.post("/v1/messages/m-biz/withdraw", json={"recipients": [KKN]}, headers=auth())
    body = await r.json()
    assert r.status == 200 and body["withdrawn"] == 1
    assert {x["recipient"]: x["status"] for x in body["status"]["recipients"]} == {CMI: "inbox", KKN: "withdrawn"}
    inbox = (await (await client.get("/v1/inbox", headers=auth(KKN))).json())["items"]
    assert inbox == []
    assert (await client.post("/v1/messages", data=letter_bytes(recipients=(KKN,), message_id="m-biz-2"),
                              headers=auth())).status == 202
    # another agency cannot withdraw it
    r = await client.post("/v1/messages/m-biz/withdraw", headers=auth(CMI))
    assert r.status == 404


async def test_a_runaway_agency_gets_429_with_retry_after_and_others_are_served(make_client, pool):
    client = await make_client(rate_per_agency=1, rate_burst=2)
    statuses = [(await client.post("/v1/messages", data=letter_bytes(), headers=auth())).status for _ in range(3)]
    assert statuses == [202, 202, 429]
    r = await client.post("/v1/messages", data=letter_bytes(), headers=auth())
    assert r.status == 429 and (await r.json())["code"] == "throttled.agency" and int(r.headers["Retry-After"]) >= 1
    r = await client.post("/v1/messages", data=notifier_bytes(sender=CMI, recipient=OPM, ref="x",
                                                              registry_number="1"), headers=auth(CMI))
    assert r.status == 202
    assert await pool.fetchval("SELECT count(*) FROM messages") == 3


async def test_a_full_outbound_queue_gets_429_and_keeps_what_it_accepted(make_client, pool):
    client = await make_client(routes={CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}}, max_queue_depth=2)
    codes = [(await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())).status
             for _ in range(3)]
    assert codes == [202, 202, 202]  # the depth is read at most once a second

    admission = client.app[keys.EXCHANGE].accept.admission
    admission._depth_at = float("-inf")  # as if a second has passed: the next request refreshes the depth
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())
    await admission._refresh  # the background read of the depth has finished
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())
    assert r.status == 429 and (await r.json())["code"] == "throttled.queue_full"
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'queued'") >= 3


async def test_directory_changes_and_seals_are_audited(make_client, pool):

    await make_client(seal=True)
    await make_client(seal=True)  # same directory again: not a change
    events = await pool.fetch("SELECT details FROM audit_events WHERE kind = 'directory.changed'")
    assert len(events) == 1 and len(events[0]["details"]["sha256"]) == 64
    client = await make_client(routes={CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}}, seal=True)
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE kind = 'directory.changed'") == 2
    await client.post("/v1/messages", data=letter_bytes(message_id="m-sealed"), headers=auth())
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted' AND message_pk = "
                                  "(SELECT pk FROM messages WHERE message_id = 'm-sealed')")
    forwarded = await pool.fetchval("SELECT forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) FROM messages WHERE message_id = 'm-sealed'")
    # the route change of the third start (Chiang Mai: pull -> push) was told to Chiang Mai, over both routes
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE message_id LIKE 'route-notice-%'") == 2
    assert details["sealed"] is True and details["forwarded_sha256"] == hashlib.sha256(forwarded).hexdigest()
    assert b"GatewaySeal" in forwarded
