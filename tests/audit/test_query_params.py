"""Bad query parameters on the staff API and the console answer 400 naming the parameter, never a 500."""

from __future__ import annotations

import base64
import csv
import io
import json

from tests.audit.conftest import login
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes

BIG = str(1 << 70)
API = [
    ("/v1/audit/letters?status=bogus", "status"),
    ("/v1/audit/letters?type=bogus", "type"),
    ("/v1/audit/letters?since=yesterday", "since"),
    ("/v1/audit/letters?after=" + base64.urlsafe_b64encode(f"2026-01-01T00:00:00+00:00|{BIG}".encode()).decode(),
     "after"),
    ("/v1/audit/letters?after=!!notbase64", "after"),
    ("/v1/audit/letters/export?status=bogus", "status"),
    ("/v1/audit/letters/export?format=xlsx", "format"),
    ("/v1/audit/letters/export?after=bm9waXBl", "after"),
    ("/v1/audit/events?before=" + BIG, "before"),
    ("/v1/audit/events?letter=abc", "letter"),
    (f"/v1/audit/letters/{BIG}/evidence.zip", "pk"),
    ("/v1/deliveries/dead?after_at=soon&after_id=x", "after_at"),
    ("/v1/deliveries/dead?after_at=2026-01-01T00:00:00&after_id=not-a-uuid", "after_id"),
]


async def test_staff_api_refuses_bad_parameters_with_400(app_client):
    client = await app_client()
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    for path, field in API:
        r = await client.get(path, headers=h)
        body = await r.json()
        assert (r.status, body["code"], body["field"]) == (400, "request.invalid", field), (path, body)
    # the API's own spelling of a status is a valid filter
    r = await client.get("/v1/audit/letters?status=retry-wait", headers=h)
    assert r.status == 200 and (await r.json())["items"] == []


async def test_the_longest_documented_query_reaches_the_api_and_one_longer_answers_in_json(app_client):
    """A 1000-character Thai subject and number (9 KB each once percent-encoded) pass the HTTP layer;
    one character more is the API's own 400 naming the field, not the HTTP parser's plain text."""
    client = await app_client()
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    r = await client.get("/v1/audit/letters", params={"subject": "ก" * 1000, "number": "ข" * 1000}, headers=h)
    assert r.status == 200 and (await r.json())["items"] == [], await r.text()
    r = await client.get("/v1/audit/letters", params={"subject": "ก" * 1001}, headers=h)
    assert r.content_type == "application/json"
    assert (r.status, (await r.json())["field"]) == (400, "subject")


CONSOLE = ["/console/letters?status=bogus", "/console/letters?type=x", "/console/letters?after_at=x&after_pk=1",
           f"/console/letters?after_at=2026-01-01T00:00:00&after_pk={BIG}", f"/console/letters/{BIG}",
           "/console/dead?after_at=x&after_id=y"]


async def test_console_refuses_bad_parameters_without_a_500(app_client):
    client = await app_client()
    assert (await login(client, "auditor")).status in (302, 303)
    for path in CONSOLE:
        r = await client.get(path)
        assert 400 <= r.status < 500, (path, r.status, (await r.text())[:300])


async def test_events_by_agency_number_and_thai_subject_with_streamed_export(app_client):


    client = await app_client()
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    send = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    for i, (to, subject) in enumerate([(CMI, "ขอเชิญประชุมน้ำท่วม"), (KKN, "รายงานภัยแล้ง"), (CMI, "แจ้งวันหยุด")]):
        assert (await client.post("/v1/messages", data=letter_bytes(recipients=(to,), subject=subject,
                                                                     message_id=f"ev-{i}"), headers=send)).status == 202

    async def events(**query):
        r = await client.get("/v1/audit/events", params=query, headers=h)
        assert r.status == 200, await r.text()
        return [(e["kind"], e["details"].get("message_id")) for e in (await r.json())["items"]]

    assert await events(subject="น้ำท่วม") == [("message.accepted", "ev-0")]
    assert await events(agency=KKN, kind="message.accepted") == [("message.accepted", "ev-1")]
    assert [m for _, m in await events(agency=CMI, kind="message.accepted")] == ["ev-2", "ev-0"]
    assert await events(number="ไม่มีเลขนี้") == []

    r = await client.get("/v1/audit/events/export", params={"format": "csv", "agency": CMI,
                                                            "kind": "message.accepted"}, headers=h)
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    assert rows[0][:4] == ["seq", "at", "actor", "kind"] and len(rows) == 3
    assert [json.loads(row[6])["message_id"] for row in rows[1:]] == ["ev-2", "ev-0"]
    r = await client.get("/v1/audit/events/export", params={"format": "jsonl", "subject": "ภัยแล้ง"}, headers=h)
    lines = [json.loads(x) for x in (await r.read()).decode().splitlines()]
    assert [x["details"]["message_id"] for x in lines] == ["ev-1"]
