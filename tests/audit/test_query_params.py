"""Bad query parameters on the staff API and the console answer 400 naming the parameter, never a 500."""

from __future__ import annotations

import base64

from tests.audit.conftest import login

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


CONSOLE = ["/console/letters?status=bogus", "/console/letters?type=x", "/console/letters?after_at=x&after_pk=1",
           f"/console/letters?after_at=2026-01-01T00:00:00&after_pk={BIG}", f"/console/letters/{BIG}",
           "/console/dead?after_at=x&after_id=y"]


async def test_console_refuses_bad_parameters_without_a_500(app_client):
    client = await app_client()
    assert (await login(client, "auditor")).status in (302, 303)
    for path in CONSOLE:
        r = await client.get(path)
        assert 400 <= r.status < 500, (path, r.status, (await r.text())[:300])
