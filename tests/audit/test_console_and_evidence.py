"""Console pages and the evidence bundle on a real database, end to end in process."""

import datetime as dt
import io
import re
import zipfile

from gateway.audit.verify import check_bundle
from gateway.core import appkeys as keys
from gateway.http.console import thai_datetime
from tests.audit.conftest import login
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes, wait_for


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


def test_buddhist_era_dates_in_bangkok():

    assert thai_datetime(dt.datetime(2026, 11, 22, 3, 15, tzinfo=dt.UTC)) == "22 พ.ย. 2569 10:15 น."


async def test_search_timeline_and_requeue_in_the_console(app_client):
    client = await app_client()
    pool = client.app[keys.POOL]
    data = letter_bytes(recipients=(CMI, KKN), subject="ขออนุมัติงบประมาณโครงการ")
    assert (await client.post("/v1/messages", data=data, headers=auth())).status == 202
    for i in range(3):
        await client.post("/v1/messages", data=letter_bytes(subject=f"เรื่องอื่น {i}"), headers=auth())
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject LIKE '%งบประมาณ%'")
    dead = await pool.fetchval("UPDATE deliveries SET status = 'dead', last_error = 'HTTP 404' "
                               "WHERE message_pk = $1 AND recipient = $2 RETURNING id", pk, KKN)
    assert (await login(client, "operator")).status == 302
    page = await (await client.get("/console/letters", params={"subject": "งบประมาณ"})).text()
    assert "ขออนุมัติงบประมาณโครงการ" in page and "เรื่องอื่น" not in page
    page = await (await client.get(f"/console/letters/{pk}")).text()
    assert 'data-kind="message.accepted"' in page and "รับเข้าระบบ" in page and "2569" in page
    assert re.search(r'<progress value="0" max="2">', page) and "ส่งถึงแล้ว 0 จาก 2 แห่ง" in page
    assert "ส่งไม่สำเร็จ 1" in page
    # speed and secrecy as a clerk reads them, the code beside
    assert 'ด่วน <span class="code">(urgent)</span> / ปกติ <span class="code">(normal)</span>' in page
    page = await (await client.get("/console/dead")).text()
    assert str(dead) in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = await client.post(f"/console/deliveries/{dead}/requeue", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 302
    assert await pool.fetchval("SELECT status::text FROM deliveries WHERE id = $1", dead) == "inbox"
    assert await pool.fetchval("SELECT actor FROM audit_events WHERE kind = 'delivery.requeued'") == "user:operator"
    for path in ("/console/queues", "/console/directory", "/console/audit"):
        r = await client.get(path)
        assert r.status == 200 and r.content_type == "text/html" and r.charset == "utf-8", path


async def test_keyset_pages_cover_every_letter_once(app_client):
    client = await app_client()
    for i in range(7):
        assert (await client.post("/v1/messages", data=letter_bytes(subject=f"หน้า {i}"), headers=auth())).status == 202
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    seen, after = [], None
    while True:
        params = {"limit": "3", **({"after": after} if after else {})}
        body = await (await client.get("/v1/audit/letters", params=params, headers=h)).json()
        seen += [i["pk"] for i in body["items"]]
        after = body["next"]
        if not after:
            break
    assert len(seen) == 7 == len(set(seen))
    r = await client.get("/v1/audit/letters/export", params={"format": "csv", "subject": "หน้า"}, headers=h)
    text = (await r.read()).decode("utf-8-sig")
    assert text.count("\n") == 8 and "หน้า 6" in text


async def test_status_search_pages_each_matching_letter_once_newest_first(app_client):
    # ?status= walks deliveries in that status (search_messages_by_status), not letters: a letter with
    # two dead deliveries must still appear once, pages must not overlap, other filters still apply.
    client = await app_client()
    pool = client.app[keys.POOL]
    for i in range(7):
        data = letter_bytes(recipients=(CMI, KKN), subject=f"สถานะ {i}")
        assert (await client.post("/v1/messages", data=data, headers=auth())).status == 202
    pks = [r["pk"] for r in await pool.fetch("SELECT pk FROM messages WHERE message_type = 'letter' ORDER BY pk")]
    dead = pks[0:1] + pks[2:6]  # pks[2]: both deliveries dead, the others one
    await pool.execute("UPDATE deliveries SET status = 'dead' WHERE message_pk = ANY($1) AND recipient = $2",
                       dead, KKN)
    await pool.execute("UPDATE deliveries SET status = 'dead' WHERE message_pk = $1", pks[2])
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    seen, after = [], None
    while True:
        params = {"status": "dead", "limit": "2", **({"after": after} if after else {})}
        body = await (await client.get("/v1/audit/letters", params=params, headers=h)).json()
        seen += [i["pk"] for i in body["items"]]
        after = body["next"]
        if not after:
            break
    assert seen == sorted(dead, reverse=True)
    body = await (await client.get("/v1/audit/letters", params={"status": "dead", "subject": "สถานะ 3"},
                                   headers=h)).json()
    assert [i["pk"] for i in body["items"]] == [pks[3]]
    body = await (await client.get("/v1/audit/letters", params={"status": "dead", "agency": CMI}, headers=h)).json()
    assert [i["pk"] for i in body["items"]] == sorted(dead, reverse=True)
    body = await (await client.get("/v1/audit/letters", params={"status": "dead", "agency": "1234567890"},
                                   headers=h)).json()
    assert body["items"] == []
    assert (await login(client, "operator")).status == 302
    page = await (await client.get("/console/letters", params={"status": "dead"})).text()
    assert "สถานะ 2" in page and "สถานะ 1" not in page and "สถานะ 6" not in page


async def test_evidence_bundle_verifies_offline_and_detects_a_swapped_envelope(app_client, signer):
    # this test seals by itself: the background sealer (an hour apart) cannot sign a checkpoint that
    # ends the proof at the letter's own event before the other letters' events are written
    client = await app_client(audit_seal_interval_s=3600)
    pool = client.app[keys.POOL]
    sealer = client.app[keys.AUDIT_SEALER]
    # A first checkpoint now: with none yet, the background sealer would sign one as soon as this
    # letter's event is chained, racing the other letters' events that the proof must show as digests.
    async def first_checkpoint():  # none is signed while the chain is empty: wait for start-up's events
        await sealer.seal_once(force_checkpoint=True)
        return await pool.fetchval("SELECT count(*) FROM audit_checkpoints") > 0

    await wait_for(first_checkpoint, timeout=10, what="a first checkpoint")
    data = letter_bytes(recipients=(CMI,), subject="หลักฐาน")
    assert (await client.post("/v1/messages", data=data, headers=auth())).status == 202
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'หลักฐาน'")
    for i in range(4):  # other letters' events between this one's and the checkpoint
        await client.post("/v1/messages", data=letter_bytes(subject=f"อื่น {i}"), headers=auth())
    last = await pool.fetchval("SELECT max(seq) FROM audit_events")

    async def chained():
        await sealer.seal_once()
        return await _head_at(pool, last)

    await wait_for(chained, timeout=10, what="sealing")
    await sealer.seal_once(force_checkpoint=True)
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    r = await client.get(f"/v1/audit/letters/{pk}/evidence.zip", headers=h)
    assert r.status == 200
    bundle = await r.read()
    z = zipfile.ZipFile(io.BytesIO(bundle))
    assert z.read("received.xml") == data
    proof = z.read("chain-001.jsonl")
    assert b'"type":"digest"' in proof and "อื่น".encode() not in proof  # others' events only as digests
    rep = check_bundle(bundle, signer.certificate)
    assert rep.ok and rep.checkpoints == 1, rep.summary()
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as out:
        for n in z.namelist():
            out.writestr(n, data.replace("หลักฐาน".encode(), "ปลอม".encode()) if n == "received.xml" else z.read(n))
    rep = check_bundle(forged.getvalue(), signer.certificate)
    assert not rep.ok and any("received.xml" in p.message for p in rep.problems)


async def _head_at(pool, seq):
    return await pool.fetchval("SELECT seq FROM audit_chain_head") >= seq
