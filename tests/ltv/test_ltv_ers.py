"""Evidence records in the evidence bundle: a letter's seal and receipt, stamped in a batch by a real TSA on
loopback, travel in the bundle with the file each covers, and ``audit verify --at`` takes the earliest proven
time from them; a record changed or the file it covers changed is a precise no."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization

from gateway.audit import ers
from gateway.audit.ltv_check import check_bundle_at
from gateway.audit.stamping import StampingJob, StampSettings
from gateway.audit.tsa import http_digest_stamper
from gateway.core import appkeys as keys
from gateway.core.directory import Directory
from gateway.http.app import create_app
from gateway.storage import audit
from tests.audit.tsa_pki import Tsa, TsaRoot, TsaServer
from tests.ltv.test_ltv_gateway import AT_2040, auth, bundle_of, cli, gateway, rewrite, signed_letter  # noqa: F401
from tests.support import CMI, Office, directory_dict

UTC = dt.UTC


async def test_bundle_carries_the_letters_evidence_records_and_verify_at_relies_on_them(gateway, workdir):  # noqa: F811
    now = gateway.clock.now()  # the TSA stamps at the gateway's (fake) time, as the responders answer
    root = TsaRoot(now - dt.timedelta(days=400), now + dt.timedelta(days=9000))
    tsa = TsaServer(Tsa(root, now - dt.timedelta(days=1), now + dt.timedelta(days=730), "TSA ทดสอบ",
                        clock=gateway.clock.now))
    await tsa.start()
    try:
        r = await gateway.post("/v1/messages", data=signed_letter(gateway.world, subject="หลักฐานประทับเวลา"),
                               headers=auth())
        assert r.status == 202, await r.text()
        pool = gateway.app[keys.POOL]
        pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'หลักฐานประทับเวลา'")
        await bundle_of(gateway, pk)  # seals the chain: the stamping job follows the sealed chain
        async with aiohttp.ClientSession() as session:
            job = StampingJob(pool, clock=gateway.clock, stamper=http_digest_stamper(session, tsa.url),
                              settings=StampSettings(batch=100))
            assert await job.stamp_all() >= 2
    finally:
        await tsa.stop()
    bundle = await bundle_of(gateway, pk)
    z = zipfile.ZipFile(io.BytesIO(bundle))
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["evidence_records"] == ["evidence-records/receipt.ers", "evidence-records/seal.ers"]
    assert manifest["evidence_record_data"]["evidence-records/seal.ers"] == "forwarded.xml"

    await gateway.world.stop()  # later: responders gone
    at = now + dt.timedelta(days=540)  # within the TSA certificate's two years
    verifier = ers.bundle_verifier(at, [root.cert, gateway.signer.certificate])
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=at, er_verifier=verifier)
    assert rep.ok, rep.summary()
    assert any("evidence record" in n for n in rep.notes), rep.summary()
    # in 2040 with no renewal since (the TSA certificate ended in two years): a precise no
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=AT_2040,
                                er_verifier=ers.bundle_verifier(AT_2040, [root.cert]))
    assert not rep.ok and any("seal.ers: er.renewal_missing" in p.message for p in rep.problems), rep.summary()

    # without the TSA's root the records do not prove anything: a precise no naming the record
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=AT_2040,
                                er_verifier=ers.bundle_verifier(at, [gateway.signer.certificate]))
    assert not rep.ok and any("seal.ers" in p.message for p in rep.problems), rep.summary()
    # the record itself changed: unreadable or mismatched, named
    broken = rewrite(bundle, lambda n, d: d[:-3] + b"\x00\x00\x00" if n == "evidence-records/seal.ers" else d)
    rep = await check_bundle_at(broken, gateway.signer.certificate, at=at, er_verifier=verifier)
    assert not rep.ok and any("seal.ers: er." in p.message for p in rep.problems), rep.summary()

    # the auditor's command, with the TSA's root beside the gateway's certificate
    (workdir / "bundle.zip").write_bytes(bundle)
    (workdir / "gateway.pem").write_bytes(gateway.signer.certificate.public_bytes(serialization.Encoding.PEM))
    (workdir / "tsa.pem").write_bytes(root.pem())
    done = await cli("audit", "verify", str(workdir / "bundle.zip"), "--cert", str(workdir / "gateway.pem"),
                     "--at", f"{at:%Y-%m-%d}", "--tsa-root", str(workdir / "tsa.pem"))
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr
    done = await cli("audit", "verify", str(workdir / "bundle.zip"), "--cert", str(workdir / "gateway.pem"),
                     "--at", f"{at:%Y-%m-%d}", "--tsa-root", str(workdir / "tsa.pem"),
                     "--weak-hashes", f"sha256@{now + dt.timedelta(days=30):%Y-%m-%d}")
    assert done.returncode == 1 and "er.hash_weak" in done.stdout, done.stdout + done.stderr


async def test_delivery_receipt_records_are_stored_once(gateway, workdir):  # noqa: F811
    """A delivery receipt named by two delivery.delivered events (an office's acknowledgement recorded twice)
    is one object: one item, one leaf, one path, and the stamping job does not stall on it; in the bundle the
    receipt's bytes are one file, which its evidence record names (content-addressed, not a second copy)."""
    office = await Office(name="cmi").start()
    settings = gateway.app[keys.SETTINGS]
    app = create_app(settings, clock=gateway.clock, directory=Directory.from_dict(json.loads(json.dumps(
        directory_dict({CMI: {"kind": "push", "url": office.url}})))), audit_signer=gateway.signer)
    client = TestClient(TestServer(app))
    await client.start_server()
    now = gateway.clock.now()
    root = TsaRoot(now - dt.timedelta(days=400), now + dt.timedelta(days=9000))
    tsa = TsaServer(Tsa(root, now - dt.timedelta(days=1), now + dt.timedelta(days=730), "TSA ทดสอบ",
                        clock=gateway.clock.now))
    await tsa.start()
    try:
        r = await client.post("/v1/messages", data=signed_letter(gateway.world, subject="ใบรับครั้งเดียว"),
                              headers=auth())
        assert r.status == 202, await r.text()
        d = app[keys.DISPATCHER]
        await d.dispatch_once()
        await d.drain()
        pool = app[keys.POOL]
        pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'ใบรับครั้งเดียว'")
        delivered = await pool.fetchrow("SELECT delivery_id, details FROM audit_events WHERE kind = "
                                        "'delivery.delivered' AND message_pk = $1", pk)
        await audit.append(pool, at=gateway.clock.now(), actor=CMI, kind="delivery.delivered", message_pk=pk,
                           delivery_id=delivered["delivery_id"], details=delivered["details"])
        client.signer = gateway.signer
        await bundle_of(client, pk)  # the chain sealed: the job follows it
        async with aiohttp.ClientSession() as session:
            job = StampingJob(pool, clock=gateway.clock, stamper=http_digest_stamper(session, tsa.url),
                              settings=StampSettings(batch=100))
            stamped = await job.stamp_all()
        # the letter's seal and submission receipt, its one delivery receipt (and the receipt's own message)
        kinds = dict(await pool.fetch("SELECT kind, count(*) FROM er_items WHERE message_pk = $1 GROUP BY kind", pk))
        assert kinds == {"seal": 1, "receipt": 1, "delivery-receipt": 1}
        assert stamped == await pool.fetchval("SELECT count(*) FROM er_items")
        # one leaf per distinct content: a delivery receipt is also the sealed body of the receipt's message
        distinct = await pool.fetchval(
            "SELECT count(DISTINCT sha256(CASE i.kind "
            "WHEN 'seal' THEN forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) "
            "WHEN 'receipt' THEN message_receipt(m.receipt, m.received, m.forwarded, m.forwarded_edits, "
            "m.forwarded_inserts) "
            "ELSE r.receipt END)) FROM er_items i JOIN messages m ON m.pk = i.message_pk "
            "LEFT JOIN receipts_full r ON r.pk = i.receipt_pk")
        assert [r["leaves"] for r in await pool.fetch("SELECT leaves FROM er_stamps")] == [distinct]
        assert distinct < stamped
        bundle = await bundle_of(client, pk)
    finally:
        await tsa.stop()
        await client.close()
        await office.stop()
    z = zipfile.ZipFile(io.BytesIO(bundle))
    assert not [n for n in z.namelist() if n.startswith("evidence-records/") and not n.endswith(".ers")]
    covers = json.loads(z.read("manifest.json"))["evidence_record_data"]
    receipt_er = next(n for n in covers if "delivery-receipt" in n)
    assert covers[receipt_er].startswith("receipts/") and covers[receipt_er] in z.namelist()
    verifier = ers.bundle_verifier(now + dt.timedelta(days=30), [root.cert])
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=now + dt.timedelta(days=30),
                                er_verifier=verifier)
    assert rep.ok, rep.summary()
