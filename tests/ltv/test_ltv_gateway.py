"""Issue 16 through the real gateway: validation material kept at acceptance, the evidence bundle judged
``--at 2040-01-01`` from the bundle alone, and validation-pending through an OCSP/CRL outage.

Real PostgreSQL, the real app over HTTP, a test PKI made in code (tests/ltv/world.py) whose OCSP
responder and CRL server run on loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization

from gateway.audit.evidence import build_bundle
from gateway.audit.ltv_check import check_bundle_at
from gateway.core import appkeys as keys
from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.exchange.pending import PendingChecks
from gateway.http.app import create_app
from gateway.storage import users
from pki.keys import FileSigner
from pki.sign import sign_envelope
from tests.audit.conftest import PASSWORD, login
from tests.audit.keys import TestSigner
from tests.integration.conftest import make_settings
from tests.integration.test_signed_acks import sign_ack
from tests.integration.test_submit import auth
from tests.ltv.world import World, office_signer
from tests.support import CMI, OPM, Office, directory_dict, letter_bytes, wait_for

AT_2040 = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
#: The gateway's (fake) time at the start of each test: not the machine's.
ACCEPTED = dt.datetime(2026, 6, 1, 3, 0, tzinfo=dt.UTC)


async def start_gateway(database_url, workdir, **extra) -> TestClient:
    """The gateway app on loopback with the world's PKI, hard-fail revocation and one fake clock for all."""
    # one clock for all: the responders answer at its time and the gateway's trust store judges at it
    # (deadlines, backoff and certificate validity alike), weeks away from the machine's clock
    clock = FakeClock(ACCEPTED)
    world = await World(clock.now, code=OPM).start()
    (workdir / "root.pem").write_bytes(world.root.ca.cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "issuing.pem").write_bytes(world.issuing.ca.cert.public_bytes(serialization.Encoding.PEM))
    settings = make_settings(database_url, workdir, require_signature=True, revocation="hard-fail",
                             trust_anchors=str(workdir / "root.pem"), trust_intermediates=str(workdir / "issuing.pem"),
                             fetch_allow=f"127.0.0.1:{world.port}", audit_seal_interval_s=3600,
                             validation_pending_hours=1.0, **extra)
    signer = TestSigner()
    app = create_app(settings, clock=clock, directory=Directory.from_dict(json.loads(json.dumps(directory_dict()))),
                     audit_signer=signer)
    client = TestClient(TestServer(app))
    await client.start_server()
    client.world, client.clock, client.signer = world, clock, signer
    return client


@pytest.fixture
async def gateway(database_url, workdir):
    client = await start_gateway(database_url, workdir)
    yield client
    await client.close()
    await client.world.stop()


def signed_letter(world: World, **kw) -> bytes:
    signer = FileSigner(world.author.key, world.author.cert, [world.issuing.ca.cert])
    return sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,), **kw), signer)


async def bundle_of(client, pk: int) -> bytes:
    pool = client.app[keys.POOL]
    sealer = client.app[keys.AUDIT_SEALER]

    async def sealed():
        await sealer.seal_once(force_checkpoint=True)
        head = await pool.fetchval("SELECT seq FROM audit_chain_head")
        return head >= await pool.fetchval("SELECT max(seq) FROM audit_events")

    await wait_for(sealed, timeout=10, what="sealing")
    await sealer.seal_once(force_checkpoint=True)
    bundle = await build_bundle(pool, pk, certificate=client.signer.certificate)
    assert bundle is not None
    return bundle


def rewrite(bundle: bytes, change) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(bundle))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n in src.namelist():
            data = change(n, src.read(n))
            if data is not None:
                z.writestr(n, data)
    return out.getvalue()


async def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway.cli.main", *args], env=env,
                                   capture_output=True, text=True, timeout=120)


async def test_letter_accepted_now_verifies_in_2040_from_the_bundle_alone(gateway, workdir):
    world = gateway.world
    data = signed_letter(world, subject="หลักฐานระยะยาว")
    r = await gateway.post("/v1/messages", data=data, headers=auth())
    assert r.status == 202, await r.text()
    pool = gateway.app[keys.POOL]
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'หลักฐานระยะยาว'")
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted' AND message_pk = $1", pk)
    assert details["validation"] == "valid" and details["trust_snapshot"] >= 1
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE kind = 'trust.snapshot'") == 1
    kinds = dict(await pool.fetch("SELECT kind, count(*) FROM validation_items GROUP BY kind"))
    assert kinds["ocsp"] == 1 and kinds["crl"] == 1 and kinds["report"] == 1 and kinds["cert"] == 3

    # a second letter by the same key: the same OCSP answer (cached until nextUpdate), no new certificate
    r = await gateway.post("/v1/messages", data=signed_letter(world, subject="อีกฉบับ"), headers=auth())
    assert r.status == 202
    assert world.ocsp_requests == 1
    assert dict(await pool.fetch("SELECT kind, count(*) FROM validation_items GROUP BY kind"))["cert"] == 3

    bundle = await bundle_of(gateway, pk)
    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(bundle)).read("manifest.json"))
    assert manifest["directory_version"] is not None and "directory.json" in names
    assert manifest["evidence_records"] == [] and len(manifest["validation_reports"]) == 1
    # 2040: the author's certificate expired in 2028, the issuing CA was revoked in 2030, responders are gone
    world.revoked[world.issuing.ca.cert.serial_number] = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    await world.stop()
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=AT_2040)
    assert rep.ok, rep.summary()
    assert any("author's signature" in n and "2040-01-01" in n for n in rep.notes), rep.summary()
    # the auditor's command: only the bundle, the gateway's certificate and the date
    (workdir / "bundle.zip").write_bytes(bundle)
    (workdir / "gateway.pem").write_bytes(gateway.signer.certificate.public_bytes(serialization.Encoding.PEM))
    done = await cli("audit", "verify", str(workdir / "bundle.zip"), "--cert", str(workdir / "gateway.pem"),
                     "--at", "2040-01-01")
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr

    # one OCSP answer removed: a precise no naming the item
    ocsp_name = next(n for n in names if n.endswith(".ocsp.der"))
    no_ocsp = rewrite(bundle, lambda n, d: None if n == ocsp_name else d)
    rep = await check_bundle_at(no_ocsp, gateway.signer.certificate, at=AT_2040)
    assert not rep.ok and any(p.code == "validation" and ocsp_name[len("validation/"):][:16] in p.message
                              for p in rep.problems), rep.summary()
    (workdir / "bundle.zip").write_bytes(no_ocsp)
    done = await cli("audit", "verify", str(workdir / "bundle.zip"), "--cert", str(workdir / "gateway.pem"),
                     "--at", "2040-01-01")
    assert done.returncode == 1 and "validation" in done.stdout, done.stdout + done.stderr
    # one byte changed in a kept CRL: named as changed
    crl_name = next(n for n in names if n.endswith(".crl.der"))
    flipped = rewrite(bundle, lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n == crl_name else d)
    rep = await check_bundle_at(flipped, gateway.signer.certificate, at=AT_2040)
    assert not rep.ok and any("changed" in p.message for p in rep.problems), rep.summary()
    # one byte changed in the letter: the chain and the signature both say so
    changed = rewrite(bundle, lambda n, d: d.replace("หลักฐานระยะยาว".encode(), "หลักฐานระยะสั้น".encode())
                      if n == "received.xml" else d)
    rep = await check_bundle_at(changed, gateway.signer.certificate, at=AT_2040)
    assert not rep.ok and any(p.code == "validation" and "signature.invalid" in p.message for p in rep.problems)


async def test_an_office_signed_ack_is_kept_and_verifies_in_2040(gateway, workdir, database_url):
    world = gateway.world
    office_cert = office_signer(world, CMI)
    cmi_signer = FileSigner(office_cert.key, office_cert.cert, [world.issuing.ca.cert])
    office = await Office(name="cmi", answer=lambda did, body: sign_ack(
        cmi_signer, did, sha256=hashlib.sha256(body).hexdigest())).start()
    try:
        # the same gateway database, a second app whose directory pushes to the office
        settings = gateway.app[keys.SETTINGS]
        app = create_app(settings, clock=gateway.clock, directory=Directory.from_dict(json.loads(json.dumps(
            directory_dict({CMI: {"kind": "push", "url": office.url}})))), audit_signer=gateway.signer)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            r = await client.post("/v1/messages", data=signed_letter(world, subject="ตอบรับลงนาม"), headers=auth())
            assert r.status == 202, await r.text()
            d = app[keys.DISPATCHER]
            await d.dispatch_once()
            await d.drain()
            pool = app[keys.POOL]
            pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'ตอบรับลงนาม'")
            details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'delivery.delivered' "
                                          "AND message_pk = $1", pk)
            assert details["ack_verified"] is True and details["validation_sha256"]
            client.signer = gateway.signer
            bundle = await bundle_of(client, pk)
        finally:
            await client.close()
    finally:
        await office.stop()
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=AT_2040)
    assert rep.ok, rep.summary()
    assert any("-ack.xml (signed by" in n for n in rep.notes), rep.summary()

    def flip(name: str, data: bytes) -> bytes:  # one character of the office's signature value changed
        if not name.endswith("-ack.xml"):
            return data
        i = data.index(b"SignatureValue>") + len(b"SignatureValue>")
        return data[:i] + (b"B" if data[i:i + 1] != b"B" else b"C") + data[i + 1:]

    rep = await check_bundle_at(rewrite(bundle, flip), gateway.signer.certificate, at=AT_2040)
    assert not rep.ok and any("no signed acknowledgement" in p.message for p in rep.problems), rep.summary()


async def test_ocsp_outage_under_hard_fail_holds_the_letter_then_forwards_it(gateway):
    world, clock = gateway.world, gateway.clock
    pool = gateway.app[keys.POOL]
    world.down = True
    r = await gateway.post("/v1/messages", data=signed_letter(world, subject="รอตรวจ", message_id="held-1"),
                           headers=auth())
    assert r.status == 202, await r.text()
    assert b"submission-pending" in await r.read()
    status = await (await gateway.get("/v1/messages/held-1", headers=auth())).json()
    assert status["validation"]["state"] == "pending" and status["recipients"] == []
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'รอตรวจ'")
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 0  # nothing claimable
    assert await pool.fetchval("SELECT count(*) FROM validation_pending WHERE message_pk = $1", pk) == 1
    checks = pending_checks(gateway)
    assert (await checks.run_once())["retry"] in (0, 1)  # the background job may have taken it first
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 0
    count, oldest = await checks.held()
    assert count == 1 and oldest is not None

    async def gauge():  # the app's own re-check loop sets the gauges each round (every 5 s)
        text = await (await gateway.get("/metrics")).text()
        return "gateway_validation_pending 1.0" in text and "gateway_validation_pending_oldest_seconds" in text

    await wait_for(gauge, timeout=15, what="the validation-pending gauge")
    await users.add(pool, username="op", password=PASSWORD, role=users.Role.OPERATOR, agency=None,
                    now=dt.datetime.now(dt.UTC), actor="test")
    await login(gateway, "op")
    page = await (await gateway.get("/console/queues")).text()
    assert "รอตรวจสถานะใบรับรอง" in page and "1 ฉบับ" in page
    world.down = False
    clock.advance(3600 - 60)  # within the pending time, after any backoff

    async def forwarded():
        await checks.run_once()
        return await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 1

    await wait_for(forwarded, timeout=10, what="the pending letter forwarded")
    assert await pool.fetchval("SELECT count(*) FROM validation_pending") == 0
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'validation.completed' "
                                  "AND message_pk = $1", pk)
    assert details["validation"] == "valid" and details["validation_sha256"]
    status = await (await gateway.get("/v1/messages/held-1", headers=auth())).json()
    assert status["validation"] is None and len(status["recipients"]) == 1


@pytest.mark.parametrize("how", ["revoked", "timeout"])
async def test_pending_letter_refused_with_a_notifier_when_revoked_or_out_of_time(gateway, how):
    world, clock = gateway.world, gateway.clock
    pool = gateway.app[keys.POOL]
    world.down = True
    r = await gateway.post("/v1/messages", data=signed_letter(world, subject="จะถูกปฏิเสธ", message_id="refused-1"),
                           headers=auth())
    assert r.status == 202
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'จะถูกปฏิเสธ'")
    if how == "revoked":
        world.down = False
        world.revoked[world.author.cert.serial_number] = clock.now() - dt.timedelta(minutes=1)
        clock.advance(120)
    else:
        clock.advance(3600 + 1)
    checks = pending_checks(gateway)

    async def refused():
        await checks.run_once()
        return await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'validation.refused' "
                                   "AND message_pk = $1", pk)

    details = await wait_for(refused, timeout=10, what="the refusal")
    assert details["code"] == ("certificate.revoked" if how == "revoked" else "validation.timeout")
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 0
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE pk = $1", pk) == 1  # kept: nothing lost
    notice = await pool.fetchrow("SELECT m.message_type, d.recipient FROM messages m JOIN deliveries d ON "
                                 "d.message_pk = m.pk WHERE m.message_id = $1", f"validation-refused-{pk}")
    assert notice["message_type"] == "notifier" and notice["recipient"] == OPM
    status = await (await gateway.get("/v1/messages/refused-1", headers=auth())).json()
    assert status["validation"] == {"state": "refused", "code": details["code"]}


def pending_checks(client) -> PendingChecks:
    accept = client.app[keys.EXCHANGE].accept
    return PendingChecks(pool=client.app[keys.POOL], trust=client.app[keys.TRUST].store, recorder=accept.validation,
                         clock=client.clock, directory=accept.directory, adapters=accept.adapters, sealer=accept.sealer,
                         gateway_code=accept.gateway_code, ttl_s=accept.ttl_s, wake=lambda: None,
                         pdf_checker=accept.intake.pdf_checker)


async def test_the_trust_store_judges_at_the_gateways_clock_not_the_machines(gateway):
    """The author's certificate ends on 2028-01-01: with the gateway's clock moved past it, the letter is
    refused as expired, whatever the machine's clock says; the OCSP answer was made at the gateway's time."""
    r = await gateway.post("/v1/messages", data=signed_letter(gateway.world, subject="ตามนาฬิกา"), headers=auth())
    assert r.status == 202, await r.text()  # 2026-06: the responder's answer is fresh at the gateway's time
    gateway.clock.advance((dt.datetime(2028, 3, 1, tzinfo=dt.UTC) - gateway.clock.now()).total_seconds())
    r = await gateway.post("/v1/messages", data=signed_letter(gateway.world, subject="หมดอายุ"), headers=auth())
    assert r.status == 422, await r.text()
    assert "certificate.expired" in await r.text()


async def test_directory_json_is_bound_by_digest_to_the_signed_chain(gateway):
    """The sender's directory entry in force at acceptance travels in the bundle; the signed event names its
    SHA-256, so an edited entry (a pinned certificate added, a name changed), another version or no entry at
    all is a precise no naming directory.json."""
    r = await gateway.post("/v1/messages", data=signed_letter(gateway.world, subject="ผูกสมุดรายชื่อ"), headers=auth())
    assert r.status == 202, await r.text()
    pool = gateway.app[keys.POOL]
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'ผูกสมุดรายชื่อ'")
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted' "
                                  "AND message_pk = $1", pk)
    assert len(details["directory_entry_sha256"]) == 64
    bundle = await bundle_of(gateway, pk)
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=AT_2040)
    assert rep.ok, rep.summary()
    assert any("directory.json" in n and "bound" in n for n in rep.notes), rep.summary()

    def edit(change):
        def apply(name: str, data: bytes) -> bytes:
            if name != "directory.json":
                return data
            doc = json.loads(data)
            change(doc)
            return json.dumps(doc, ensure_ascii=False).encode()
        return rewrite(bundle, apply)

    cases = {
        "name": edit(lambda d: d["entry"].update(name_th="หน่วยงานปลอม")),
        "pins": edit(lambda d: d["entry"].update(certificates=["ab" * 32])),
        "version": edit(lambda d: d.update(version=d["version"] + 1)),
        "missing": rewrite(bundle, lambda n, d: None if n == "directory.json" else d),
    }
    for what, changed in cases.items():
        rep = await check_bundle_at(changed, gateway.signer.certificate, at=AT_2040)
        assert not rep.ok, what
        assert any(p.code == "validation" and "directory.json" in p.message for p in rep.problems), \
            (what, rep.summary())
