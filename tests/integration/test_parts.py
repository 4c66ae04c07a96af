"""Files beside the envelope (multipart/related) through the real API, store and dispatcher."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import os
import uuid

import pytest
from aiohttp import web
from lxml import etree

from gateway.cli import letters
from gateway.core import appkeys as keys
from gateway.core.clock import BANGKOK
from gateway.core.ecmswire import soap
from gateway.core.envelope import Attachment, Envelope, Header, Letter, MessageType, Secrecy, Speed
from gateway.core.envelope_builder import build_envelope
from gateway.core.parts import STORE_CHUNK, build_related
from gateway.ecms.settings import ECMS_PATH
from pki.sign import sign_envelope
from tests.ecms.helpers import request
from tests.ecms.test_http import LegacyNode
from tests.support import CMI, KKN, OPM, TOKENS, delivery_ack, free_port, stored_counts

BIG = os.urandom(2 * STORE_CHUNK + 12345)  # three stored chunks
SMALL_PDF = b"%PDF-1.4\n% inline cover letter\n"


def auth(agency=OPM, ctype=None):
    h = {"Authorization": f"Bearer {TOKENS[agency]}"}
    if ctype:
        h["Content-Type"] = ctype
    return h


def external_letter(*, message_id=None, content=BIG, declared=None, ref_id="att-2", recipients=(CMI,)) -> bytes:
    """An envelope with a small inline main PDF and a large enclosure sent as part <att-2>."""
    created = dt.datetime(2026, 11, 22, 9, 30, tzinfo=BANGKOK)
    declared = content if declared is None else declared
    return build_envelope(Envelope(
        header=Header(message_id=message_id or str(uuid.uuid4()), message_type=MessageType.LETTER,
                      created_at=created, sender=OPM, recipients=tuple(recipients)),
        body=Letter(number="นร 0105/ว 124", date=created.date(), subject="ส่งแผนที่ภาพถ่ายทางอากาศ",
                    addressee="ผู้ว่าราชการจังหวัด", speed=Speed.NORMAL, secrecy=Secrecy.NORMAL,
                    signer_name="นายสมชาย ใจดี", signer_position="ปลัดสำนักนายกรัฐมนตรี",
                    enclosures=("แผนที่",)),
        attachments=(
            Attachment(id="att-1", file_name="หนังสือ.pdf", mime_type="application/pdf", content=SMALL_PDF,
                       role="main"),
            Attachment.external_part(id=ref_id, file_name="แผนที่.tif", mime_type="image/tiff",
                                     size=len(declared), sha256=hashlib.sha256(declared).hexdigest()),
        )))


async def counts(pool):
    return await stored_counts(pool, ("messages", "deliveries", "message_parts", "message_part_chunks"))


def spool_files(workdir) -> list:
    spool = workdir / "spool"
    return list(spool.rglob("*")) if spool.exists() else []


async def test_large_file_beside_the_envelope_is_stored_in_chunks_and_pulled_back(make_client, pool, workdir):
    client = await make_client()
    env = external_letter(message_id="big-1")
    body, ctype = build_related(env, {"att-2": ("image/tiff", BIG)})
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert r.status == 202, await r.text()
    assert r.headers["X-Saraban-Sha256"] == hashlib.sha256(env).hexdigest()  # the receipt names the envelope
    assert await counts(pool) == {"messages": 1, "deliveries": 1, "message_parts": 1, "message_part_chunks": 3,
                                  "audit_events": 1}
    assert await pool.fetchval("SELECT received FROM messages") == env
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted'")
    assert details["parts"] == {"att-2": hashlib.sha256(BIG).hexdigest()}
    assert spool_files(workdir) == []

    # a repeat is the same letter: the original receipt, nothing stored twice
    again = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert again.status == 200 and await again.read() == await r.read()
    assert (await counts(pool))["message_part_chunks"] == 3

    items = (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"]
    assert [p["content_id"] for p in items[0]["parts"]] == ["att-2"]
    part = items[0]["parts"][0]
    assert (part["size"], part["sha256"]) == (len(BIG), hashlib.sha256(BIG).hexdigest())
    item = await client.get(items[0]["href"], headers=auth(CMI))
    assert await item.read() == env and part["href"] in item.headers["Link"]
    got = await client.get(part["href"], headers=auth(CMI))
    assert got.status == 200 and got.headers["Content-Type"] == "image/tiff"
    assert got.headers["X-Saraban-Sha256"] == hashlib.sha256(BIG).hexdigest()
    assert await got.read() == BIG
    # another agency cannot fetch it, and an unknown part is a clear 404
    assert (await client.get(part["href"], headers=auth(KKN))).status == 404
    missing = await client.get(items[0]["href"] + "/parts/att-9", headers=auth(CMI))
    assert (missing.status, (await missing.json())["code"]) == (404, "inbox.part_not_found")


@pytest.mark.parametrize("case, status, code", [
    ("tampered", 422, "attachment.digest_mismatch"),
    ("short", 422, "attachment.digest_mismatch"),
    ("missing", 422, "attachment.part_missing"),
    ("extra", 422, "attachment.part_unreferenced"),
    ("bad_ref", 422, "attachment.content_ref_invalid"),
    ("bad_cid", 400, "request.multipart_invalid"),
    ("twice", 400, "request.multipart_invalid"),
    ("not_xml_first", 415, "request.unsupported_media_type"),
    ("too_large", 413, "attachment.part_too_large"),
    ("no_boundary", 400, "request.multipart_invalid"),
])
async def test_refusals_store_nothing_and_leave_no_spool(make_client, pool, workdir, case, status, code):
    client = await make_client(max_part_bytes=3 * STORE_CHUNK)
    env = external_letter()
    files = {"att-2": ("image/tiff", BIG)}
    ctype = None
    if case == "tampered":
        files = {"att-2": ("image/tiff", BIG[:-1] + bytes([BIG[-1] ^ 1]))}
    elif case == "short":
        files = {"att-2": ("image/tiff", BIG[:-1])}
    elif case == "missing":
        files = {}
    elif case == "extra":
        files["att-3"] = ("text/plain", b"unannounced")
    elif case == "bad_ref":
        env = env.replace(b"cid:att-2", b"cid:att-1")
    elif case == "bad_cid":
        files = {"att 2": ("image/tiff", BIG)}
    elif case == "too_large":
        big = os.urandom(3 * STORE_CHUNK + 1)
        env, files = external_letter(content=big), {"att-2": ("image/tiff", big)}
    body, ctype = build_related(env, files)
    if case == "twice":
        body, ctype = build_related(env, {"att-2": ("image/tiff", BIG)})
        head, _, tail = body.rpartition(b"--saraban-")  # repeat the att-2 part before the closing boundary
        start = body.index(b"Content-ID: <att-2>")
        part = body[body.rindex(b"--saraban-", 0, start):len(head)]
        body = head + part + b"--saraban-" + tail
    elif case == "not_xml_first":
        body = body.replace(b"application/xml; charset=utf-8", b"text/plain", 1)
    elif case == "no_boundary":
        ctype = "multipart/related"
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    answer = await r.json()
    assert (r.status, answer["code"]) == (status, code), answer
    assert answer["field"]
    assert await counts(pool) == {"messages": 0, "deliveries": 0, "message_parts": 0, "message_part_chunks": 0,
                                  "audit_events": 0}
    assert spool_files(workdir) == []


async def test_signed_letter_binds_its_parts_and_a_swapped_part_is_refused(make_client, pool, dev_pki):

    client = await make_client(require_signature=True, seal=True, revocation="off")
    signed = sign_envelope(external_letter(message_id="signed-big"), dev_pki.agency_signer(OPM))
    swapped = os.urandom(len(BIG))  # same size, other bytes: only the signed digest tells
    body, ctype = build_related(signed, {"att-2": ("image/tiff", swapped)})
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert (r.status, (await r.json())["code"]) == (422, "attachment.digest_mismatch")
    # the signature covers the declared digest: rewriting it breaks the signature
    forged = signed.replace(hashlib.sha256(BIG).hexdigest().encode(), hashlib.sha256(swapped).hexdigest().encode())
    body, ctype = build_related(forged, {"att-2": ("image/tiff", swapped)})
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert r.status == 422 and (await r.json())["code"].startswith("signature.")
    assert (await counts(pool))["messages"] == 0
    body, ctype = build_related(signed, {"att-2": ("image/tiff", BIG)})
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert r.status == 202, await r.text()
    assert (await counts(pool))["message_part_chunks"] == 3


class MultipartOffice:
    """A push office that reads multipart/related deliveries the way an integrator would."""

    def __init__(self):
        self.received: dict[str, dict[str, bytes]] = {}
        self.types: dict[str, str] = {}
        """Content-ID -> the Content-Type the part was pushed with."""
        self.runner = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        delivery_id = request.headers["X-Saraban-Delivery-Id"]
        assert request.content_type == "multipart/related"
        parts = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts[part.headers["Content-ID"].strip("<>")] = await part.read()
            self.types[part.headers["Content-ID"].strip("<>")] = part.headers["Content-Type"]
        self.received[delivery_id] = parts
        return web.Response(body=delivery_ack(delivery_id=uuid.UUID(delivery_id)), content_type="application/xml")

    async def start(self):

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/inbox", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/inbox"
        return self


async def test_push_delivers_the_envelope_and_its_parts_as_multipart(make_client, pool):
    office = await MultipartOffice().start()
    try:
        client = await make_client(routes={CMI: {"kind": "push", "url": office.url}})
        env = external_letter(message_id="big-push")
        body, ctype = build_related(env, {"att-2": ("image/tiff", BIG)})
        assert (await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))).status == 202
        d = client.app[keys.DISPATCHER]
        assert await d.dispatch_once() == 1
        await d.drain()
        (parts,) = office.received.values()
        assert list(parts) == ["envelope", "att-2"]
        assert parts["envelope"] == env and parts["att-2"] == BIG
        assert await pool.fetchval("SELECT status::text FROM deliveries WHERE recipient = $1", CMI) == "delivered"
    finally:
        await office.runner.cleanup()


async def _submit_big(client, message_id):
    env = external_letter(message_id=message_id)
    body, ctype = build_related(env, {"att-2": ("image/tiff", BIG)})
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert r.status == 202, await r.text()
    return env


async def _dispatch(client):
    d = client.app[keys.DISPATCHER]
    assert await d.dispatch_once() == 1
    await d.drain()


async def test_folder_route_writes_the_parts_before_the_envelope(make_client, pool, workdir):
    drop = workdir / "drop-cmi"
    client = await make_client(routes={CMI: {"kind": "folder", "path": str(drop)}})
    env = await _submit_big(client, "big-folder")
    await _dispatch(client)
    delivery_id = await pool.fetchval("SELECT id::text FROM deliveries WHERE recipient = $1", CMI)
    assert sorted(p.name for p in drop.iterdir()) == [f"{delivery_id}.att-2", f"{delivery_id}.xml"]
    assert (drop / f"{delivery_id}.xml").read_bytes() == env
    assert (drop / f"{delivery_id}.att-2").read_bytes() == BIG


def _inline_contents(soap_bytes: bytes) -> list[bytes]:
    """Every base64 binary object of an e-CMS letter, decoded."""


    root = etree.fromstring(soap_bytes)
    return [base64.b64decode(el.text) for el in root.iter()
            if isinstance(el.tag, str) and el.tag.endswith(("MainLetterBinaryObject", "AttachmentBinaryObject"))]


async def test_ecms_node_route_and_ecms_pull_get_the_file_inline(make_client, pool):

    node = LegacyNode()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(ECMS_PATH, node.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()

    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        client = await make_client(routes={KKN: {"kind": "ecms", "url": f"http://127.0.0.1:{port}{ECMS_PATH}"}})
        await _submit_big(client, "big-ecms")  # to CMI, a pull office
        # KKN runs its own e-CMS node: the file is read back from the store and sent inline
        env_kkn = external_letter(message_id="big-to-node", recipients=(KKN,))
        body, ctype = build_related(env_kkn, {"att-2": ("image/tiff", BIG)})
        assert (await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))).status == 202
        await _dispatch(client)
        (sent,) = node.seen.values()
        assert BIG in _inline_contents(sent) and SMALL_PDF in _inline_contents(sent)
        # CMI pulls through the e-CMS endpoint: the same file, inline
        r = await client.post(ECMS_PATH, data=request(soap.U.CorrespondenceLetterInboundRequest()),
                              headers={"Authorization": f"Bearer {TOKENS[CMI]}", "Content-Type": "text/xml"})
        assert r.status == 200
        assert BIG in _inline_contents(await r.read())
    finally:
        await runner.cleanup()


async def test_cli_sends_a_large_pdf_beside_the_envelope(make_client, pool, tmp_path):


    client = await make_client()
    pdf = tmp_path / "แผนที่.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + os.urandom(letters.INLINE_LIMIT))  # just over the inline limit
    args = argparse.Namespace(url=str(client.make_url("")), token=TOKENS[OPM], sender=OPM, to=[CMI],
                              subject="ส่งแผนที่", number=None, addressee="ผู้ว่าราชการจังหวัด", speed="normal",
                              secrecy="normal", signer_name="นายทดสอบ ระบบ", signer_position="ปลัด",
                              pdf=[str(pdf)], message_id="cli-big", unsigned=True, multipart=False,
                              sign_key=None, sign_cert=None, data_dir=None, pki_dir=None, database_url=None,
                              receipt_out=str(tmp_path / "receipt.xml"), xml=False, json=False)
    assert await letters.letter_send(args) == 0
    assert (tmp_path / "receipt.xml").read_bytes().startswith(b"<?xml")
    row = await pool.fetchrow("SELECT m.parts, p.size, p.sha256 FROM messages m JOIN message_parts p "
                              "ON p.message_pk = m.pk WHERE m.message_id = 'cli-big'")
    assert (row["parts"], row["size"]) == (1, pdf.stat().st_size)
    assert row["sha256"] == hashlib.sha256(pdf.read_bytes()).digest()
