"""A route through a named hub: a district office served through its provincial hall's inbox."""

from __future__ import annotations

import uuid

import pytest

from gateway.core import appkeys as keys
from gateway.storage import directory as store
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes

pytestmark = pytest.mark.asyncio
DISTRICT = "1550100101"  # ที่ว่าการอำเภอเมืองเชียงใหม่, served through the Chiang Mai provincial hall


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


async def test_a_hub_receives_and_acknowledges_its_offices_letters(make_client, pool, clock):
    client = await make_client()
    async with pool.acquire() as conn:
        await store.apply(conn, {DISTRICT: {
            "code": DISTRICT, "name_th": "ที่ว่าการอำเภอเมืองเชียงใหม่", "name_en": "Mueang Chiang Mai District Office",
            "kind": "district_office", "parent": CMI, "province": "50", "district": "5001",
            "route": {"kind": "via", "agency": CMI}}}, at=clock.now(), actor="admin", reason="test", only=False)
    await client.app[keys.EXCHANGE].live_directory.reload()
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(DISTRICT,), message_id="via-1"),
                          headers=auth())
    assert r.status == 202, await r.text()
    # the hub's inbox holds it, naming the office it is for; another agency's does not
    items = (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"]
    [item] = [i for i in items if i["message_id"] == "via-1"]
    assert item["recipient"] == DISTRICT
    r = await client.get(f"/v1/inbox/{item['delivery_id']}", headers=auth(KKN))
    assert r.status == 404
    r = await client.get(f"/v1/inbox/{item['delivery_id']}", headers=auth(CMI))
    assert r.status == 200 and r.headers["X-Saraban-Recipient"] == DISTRICT
    r = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", headers=auth(CMI))
    assert r.status == 200, await r.text()
    row = await pool.fetchrow("SELECT status::text AS status, recipient FROM deliveries WHERE id = $1",
                              uuid.UUID(item["delivery_id"]))
    assert row["status"] == "delivered" and row["recipient"] == DISTRICT
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'delivery.delivered' "
                                  "ORDER BY seq DESC LIMIT 1")
    assert details["recipient"] == DISTRICT and details["via"] == CMI
    # the sender sees the office itself delivered
    status = await (await client.get("/v1/messages/via-1", headers=auth())).json()
    assert [(d["recipient"], d["status"]) for d in status["recipients"]] == [(DISTRICT, "delivered")], status
