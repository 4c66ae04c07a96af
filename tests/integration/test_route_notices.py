"""A route change is told to the agency over its old route and over its new one, once."""

from __future__ import annotations

import pytest

from gateway.core import appkeys as keys
from gateway.storage import directory as store
from tests.integration.test_dispatch import cycle, offices  # noqa: F401  (fixture)
from tests.support import CMI

pytestmark = pytest.mark.asyncio


async def test_a_redirected_route_is_told_to_the_old_and_the_new_office(make_client, offices, pool, clock):  # noqa: F811
    old, new = await offices(name="old"), await offices(name="new")
    client = await make_client(routes={CMI: {"kind": "push", "url": old.url}})
    entry = (await store.entries(pool))[CMI]
    async with pool.acquire() as conn:
        await store.apply(conn, {CMI: {**entry, "route": {"kind": "push", "url": new.url}}}, at=clock.now(),
                          actor="user:admin", reason="ย้ายระบบสารบรรณ", only=False)
    live = client.app[keys.EXCHANGE].live_directory
    await live.reload()
    await live.notices.send(0, 2)  # again, as another process would: nothing more is sent
    assert await cycle(client) == 2
    [to_old], [to_new] = old.received.values(), new.received.values()
    for body in (to_old, to_new):
        text = body.decode()
        assert "แจ้งการเปลี่ยนช่องทางรับหนังสือของศาลากลางจังหวัดเชียงใหม่" in text
        assert old.url in text and new.url in text and "user:admin" in text and "ย้ายระบบสารบรรณ" in text
    rows = await pool.fetch("SELECT m.message_id, d.status::text AS status, d.pinned_route FROM messages m "
                            "JOIN deliveries d ON d.message_pk = m.pk WHERE m.channel = 'gateway' "
                            "AND m.message_id LIKE 'route-notice-%' ORDER BY m.message_id")
    assert [(r["message_id"], r["status"]) for r in rows] == [
        (f"route-notice-2-{CMI}-new", "delivered"), (f"route-notice-2-{CMI}-old", "delivered")]
    assert rows[1]["pinned_route"] == {"kind": "push", "url": old.url} and rows[0]["pinned_route"] is None
    audit = await pool.fetch("SELECT details FROM audit_events WHERE kind = 'message.accepted' "
                             "AND details->>'kind' = 'route change notice'")
    assert sorted(a["details"]["route"] for a in audit) == ["new", "old"]


async def test_a_change_that_keeps_the_route_sends_no_notice(make_client, pool, clock):
    client = await make_client()
    entry = (await store.entries(pool))[CMI]
    async with pool.acquire() as conn:
        await store.apply(conn, {CMI: {**entry, "name_en": "Chiang Mai Provincial Hall (renamed)"}}, at=clock.now(),
                          actor="user:admin", reason="x", only=False)
    await client.app[keys.EXCHANGE].live_directory.reload()
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE message_id LIKE 'route-notice-%'") == 0
