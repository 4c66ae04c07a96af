"""``/v1/directory/...``: search and show for every participant, history for staff, change for admins only."""

from __future__ import annotations

import pytest

from gateway.core import appkeys as keys
from tests.fuzz.staff import staff_tokens
from tests.support import CMI, KKN, OPM, TOKENS

pytestmark = pytest.mark.asyncio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_search_show_history_and_change(make_client, pool):
    client = await make_client()
    staff = await staff_tokens(pool)
    agency = bearer(TOKENS[OPM])
    r = await client.get("/v1/directory/agencies", params={"q": "เชียงใหม่"}, headers=agency)
    body = await r.json()
    assert r.status == 200 and [a["code"] for a in body["items"]] == [CMI]
    assert body["items"][0]["kind_th"] == "ศาลากลางจังหวัด" and "token_sha256" not in body["items"][0]
    r = await client.get("/v1/directory/agencies", params={"kind": "provincial_administration", "province": "40"},
                         headers=agency)
    assert [a["code"] for a in (await r.json())["items"]] == [KKN]
    for bad, field in (({"kind": "castle"}, "kind"), ({"province": "5"}, "province"), ({"q": "a\x00"}, "q")):
        r = await client.get("/v1/directory/agencies", params=bad, headers=agency)
        assert r.status == 400 and (await r.json())["field"] == field, bad
    r = await client.get("/v1/directory/agencies/9999999999", headers=agency)
    assert r.status == 404 and (await r.json())["code"] == "agency.not_found"
    # only an admin changes the directory
    entry = {"name_th": "ศาลากลางจังหวัดเชียงใหม่", "name_en": "Chiang Mai Provincial Hall", "parent": "1500000000",
             "kind": "provincial_administration", "province": "50",
             "route": {"kind": "push", "url": "https://cmi.example/in"}, "reason": "ย้ายไปรับแบบ push"}
    for who in (TOKENS[OPM], staff["operator"], staff["auditor"]):
        r = await client.put(f"/v1/directory/agencies/{CMI}", json=entry, headers=bearer(who))
        assert r.status == 403, who
    r = await client.put(f"/v1/directory/agencies/{CMI}", json=entry, headers=bearer(staff["admin"]))
    assert r.status == 200 and (await r.json()) == {"version": 2, "added": 0, "changed": 1, "removed": 0}
    assert client.app[keys.DIRECTORY][CMI].route.kind == "push"  # in force in this process at once
    assert client.app[keys.DIRECTORY].agency_for_token(TOKENS[CMI]) == CMI  # its token was kept
    r = await client.put(f"/v1/directory/agencies/{CMI}", json={**entry, "province": "5"},
                         headers=bearer(staff["admin"]))
    assert r.status == 400 and "province" in (await r.json())["field"]
    r = await client.put(f"/v1/directory/agencies/{CMI}", data=b"[1", headers=bearer(staff["admin"]))
    assert r.status == 400 and (await r.json())["field"] == "body"
    r = await client.get(f"/v1/directory/agencies/{CMI}/history", headers=bearer(staff["operator"]))
    items = (await r.json())["items"]
    assert [i["version"] for i in items] == [2, 1] and items[0]["actor"] == "user:admin"
    assert items[0]["before"]["route"] == {"kind": "pull"} and items[0]["after"]["route"]["url"] == "https://cmi.example/in"
    r = await client.get(f"/v1/directory/agencies/{CMI}/history", headers=agency)
    assert r.status == 403
    # an agency sees the route kind, not where it goes; the past is still shown
    r = await client.get(f"/v1/directory/agencies/{CMI}", headers=agency)
    assert (await r.json())["agency"]["route"] == {"kind": "push"}
    r = await client.get(f"/v1/directory/agencies/{CMI}", params={"at": "1"}, headers=agency)
    assert (await r.json())["agency"]["route"] == {"kind": "pull"} and (await r.json())["version"] == 1
