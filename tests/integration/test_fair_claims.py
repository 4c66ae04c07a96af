"""Fairness: a circular letter to many offices never holds an ordinary letter behind it."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.core import appkeys as keys
from gateway.storage import deliveries
from gateway.storage import directory as store
from tests.integration.test_dispatch import cycle
from tests.support import CMI, KKN, OPM, TOKENS, Office, letter_bytes

pytestmark = pytest.mark.asyncio
OFFICES = [f"98{i:08d}" for i in range(120)]


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


async def test_an_ordinary_letter_is_claimed_before_a_circular_s_backlog(make_client, pool, clock):
    client = await make_client(routes={KKN: {"kind": "push", "url": "http://127.0.0.1:9/kkn"}})
    offices = {code: {"code": code, "name_th": f"สำนักงานทดสอบ {code}", "name_en": f"Test office {code}",
                      "kind": "local_administration", "parent": CMI, "generated": True,
                      "route": {"kind": "push", "url": f"http://127.0.0.1:9/{code}"}} for code in OFFICES}
    async with pool.acquire() as conn:
        await store.apply(conn, offices, at=clock.now(), actor="test", reason="offices", only=False)
    await client.app[keys.EXCHANGE].live_directory.reload()
    r = await client.post("/v1/messages", data=letter_bytes(recipients=tuple(OFFICES), message_id="circular"),
                          headers=auth())
    assert r.status == 202, await r.text()
    clock.advance(1)
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(KKN,), message_id="ordinary"),
                          headers=auth())
    assert r.status == 202, await r.text()
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE bulk") == len(OFFICES)
    clock.advance(1)
    claimed = await deliveries.claim_due(pool, now=clock.now(), limit=10, lease=dt.timedelta(seconds=60),
                                         worker="w")
    assert len(claimed) == 10 and KKN in [c.recipient for c in claimed]  # due later, yet claimed first
    assert sum(1 for c in claimed if c.message_id == "circular") == 9  # the rest of the batch is not wasted


async def test_the_sender_sees_a_summary_and_pages_of_recipients(make_client, pool, clock):
    client = await make_client()
    offices = {code: {"code": code, "name_th": f"สำนักงานทดสอบ {code}", "name_en": f"Test office {code}",
                      "kind": "local_administration", "parent": CMI, "route": {"kind": "pull"}} for code in OFFICES}
    async with pool.acquire() as conn:
        await store.apply(conn, offices, at=clock.now(), actor="test", reason="offices", only=False)
    await client.app[keys.EXCHANGE].live_directory.reload()
    r = await client.post("/v1/messages", data=letter_bytes(recipients=tuple(OFFICES), message_id="circular"),
                          headers=auth())
    assert r.status == 202
    seen, after = [], None
    while True:
        q = {"limit": "50", **({"after": after} if after else {})}
        body = await (await client.get("/v1/messages/circular", params=q, headers=auth())).json()
        assert body["summary"]["total"] == len(OFFICES) and body["summary"]["by_status"]["inbox"] == len(OFFICES)
        seen += [x["recipient"] for x in body["recipients"]]
        after = body["next"]
        if after is None:
            break
    assert seen == sorted(OFFICES)


async def test_a_circular_where_some_offices_fail_reaches_every_other_office(make_client, pool, clock):
    good, down, refusing = (await Office(name="good").start(), await Office(name="down", fail_first=10**6).start(),
                            await Office(name="refusing", fail_first=10**6, fail_status=404).start())
    try:
        client = await make_client()
        where = {code: (good if i % 5 else down if i % 10 else refusing) for i, code in enumerate(OFFICES[:60])}
        offices = {code: {"code": code, "name_th": f"สำนักงานทดสอบ {code}", "name_en": f"Test office {code}",
                          "kind": "local_administration", "parent": CMI,
                          "route": {"kind": "push", "url": office.url}} for code, office in where.items()}
        async with pool.acquire() as conn:
            await store.apply(conn, offices, at=clock.now(), actor="test", reason="offices", only=False)
        await client.app[keys.EXCHANGE].live_directory.reload()
        r = await client.post("/v1/messages", data=letter_bytes(recipients=tuple(where), message_id="circular"),
                              headers=auth())
        assert r.status == 202
        for _ in range(3):
            await cycle(client)
        got = {r["recipient"]: r["status"] for r in await pool.fetch(
            "SELECT d.recipient, d.status::text AS status FROM deliveries d JOIN messages m ON m.pk = d.message_pk "
            "WHERE m.message_id = 'circular'")}
        assert {c for c, s in got.items() if s == "delivered"} == {c for c, o in where.items() if o is good}
        assert {c for c, s in got.items() if s == "dead"} == {c for c, o in where.items() if o is refusing}
        assert {c for c, s in got.items() if s == "retry_wait"} == {c for c, o in where.items() if o is down}
        assert len(good.received) == 48 and len(set(good.message_ids.values())) == 1
    finally:
        for o in (good, down, refusing):
            await o.stop()
