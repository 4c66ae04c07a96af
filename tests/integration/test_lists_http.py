"""Distribution lists through the real edges: the native API and the e-CMS endpoint (create_app on a
real database; the lists seeded in that database)."""

from __future__ import annotations

import dataclasses

from gateway.core.clock import FakeClock
from gateway.core.envelope_builder import build_envelope
from gateway.core.lists import DistributionList
from gateway.ecms.settings import ECMS_PATH
from gateway.storage import lists as lists_store
from tests.ecms.helpers import errors
from tests.integration.test_ecms import ecms_letter
from tests.support import CMI, KKN, MOI, OPM, TOKENS, letter, notifier_bytes

HALLS = DistributionList("two-halls", "ศาลากลางจังหวัดเชียงใหม่และขอนแก่น", (CMI, KKN, OPM), None, ecms_code="99001")


def auth(agency=OPM, content_type="application/xml"):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": content_type}


def to_lists(*names: str, recipients=(), message_id: str = "circular-1") -> bytes:
    env = letter(recipients=recipients, message_id=message_id)
    return build_envelope(dataclasses.replace(env, header=dataclasses.replace(env.header, recipient_lists=names)))


async def delivered_to(pool) -> list[str]:
    return [r["recipient"] for r in await pool.fetch("SELECT recipient FROM deliveries ORDER BY recipient")]


async def test_native_letter_to_a_list_and_to_an_unknown_one(make_client, pool):
    await lists_store.upsert(pool, [HALLS], at=FakeClock().now())
    client = await make_client()
    r = await client.post("/v1/messages", data=to_lists("two-halls", recipients=(MOI, CMI)), headers=auth())
    assert r.status == 202, await r.text()
    assert await delivered_to(pool) == sorted([CMI, KKN, MOI])  # the sender, on the list, is left out

    r = await client.post("/v1/messages", data=to_lists("two-halls", "nobody", message_id="circular-2"),
                          headers=auth())
    assert r.status == 422
    body = await r.json()
    assert (body["code"], body["field"]) == ("envelope.unknown_recipient", "Header/Recipients/RecipientList[2]")
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1

    # the sender's progress: statuses, and one registry that registered the letter (เลขทะเบียนรับ)
    r = await client.post("/v1/messages", data=notifier_bytes(sender=CMI, recipient=OPM, ref="circular-1"),
                          headers=auth(CMI))
    assert r.status == 202, await r.text()
    pk = await pool.fetchval("SELECT pk FROM messages WHERE message_id = 'circular-1'")
    progress = await lists_store.progress(pool, pk)
    assert progress.total == 3 and progress.by_status["inbox"] == 3 and progress.answers == {"accepted": 1}
    page = await lists_store.recipients_page(pool, pk, limit=2)
    assert [s.recipient for s in page.items] == sorted([CMI, KKN, MOI])[:2] and page.next_after is not None


async def test_ecms_letter_to_a_list_code(make_client, pool):
    await lists_store.upsert(pool, [HALLS], at=FakeClock().now())
    client = await make_client()
    data = ecms_letter().replace(f"<ram:ID>{CMI}</ram:ID>".encode(), b"<ram:ID>99001</ram:ID>")
    r = await client.post(ECMS_PATH, data=data, headers=auth(OPM, "text/xml"))
    assert r.status == 200 and errors(await r.read()) == []
    assert await delivered_to(pool) == [CMI, KKN]
    (row,) = await pool.fetch("SELECT list_name, member_count FROM list_expansions")
    assert tuple(row) == ("two-halls", 2)

    unknown = ecms_letter("อีกเรื่อง").replace(f"<ram:ID>{CMI}</ram:ID>".encode(), b"<ram:ID>99002</ram:ID>")
    r = await client.post(ECMS_PATH, data=unknown, headers=auth(OPM, "text/xml"))
    assert errors(await r.read()) == ["ECMS-300"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
