"""Revocation data of the time-stamping authority's certificate kept with its tokens (issue 16): the stamping
job's tokens carry the TSA's CRL as CAdES revocation-values (an unsigned attribute: the token still passes
``openssl ts -verify``), every evidence record in a bundle carries it, and the verifier relies on it: a TSA
certificate the kept CRL lists as revoked before the stamp is a precise no."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import shutil
import subprocess
import zipfile

import aiohttp
import pytest

from gateway.audit import ers as audit_ers
from gateway.audit.ltv_check import check_bundle_at
from gateway.audit.tsa import http_digest_stamper
from gateway.audit.wiring import stamping_job
from gateway.core import appkeys as keys
from gateway.core.clock import FakeClock
from pki import ers
from pki.ers_verify import verify_evidence_record
from pki.ltv_tsa import augmenting, revocation_values
from tests.audit.tsa_pki import Tsa, TsaRoot, TsaServer
from tests.ltv.test_ltv_gateway import auth, bundle_of, gateway, signed_letter  # noqa: F401
from tests.support import free_port

NOW = dt.datetime(2026, 6, 1, 3, 0, tzinfo=dt.UTC)


@pytest.fixture
async def tsa_server():
    clock = FakeClock(NOW)
    root = TsaRoot(NOW - dt.timedelta(days=400), NOW + dt.timedelta(days=9000))
    port = free_port()
    tsa = Tsa(root, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=730), "TSA มีรายการเพิกถอน",
              clock=clock.now, crl_url=f"http://127.0.0.1:{port}/root.crl")
    server = TsaServer(tsa, port=port)
    server.clock = clock
    await server.start()
    yield server
    await server.stop()


def record_over(data: bytes, token: bytes) -> bytes:
    return ers.encode_record([[ers.make_ats("sha256", None, token)]], ["sha256"])


async def test_tokens_carry_the_tsa_crl_and_still_verify(tsa_server, tmp_path):
    data = b"sealed letter"
    async with aiohttp.ClientSession() as session:
        stamp = augmenting(http_digest_stamper(session, tsa_server.url), session=session)
        token = await stamp(ers.digest("sha256", data), "sha256")
    ocsps, crls = revocation_values(token)
    assert tsa_server.crl_requests == 1 and len(crls) == 1 and not ocsps
    assert crls[0]["tbs_cert_list"]["issuer"].native["common_name"] == "Test TSA Root"
    check = await verify_evidence_record(record_over(data, token), data, NOW + dt.timedelta(days=30),
                                         [tsa_server.tsa.root.cert])
    assert check.ok, check.summary()
    assert "1 CRL" in check.relied_on[0].revocation
    if shutil.which("openssl"):  # the unsigned attribute leaves the TSA's signature whole
        (tmp_path / "t.der").write_bytes(token)
        (tmp_path / "ca.pem").write_bytes(tsa_server.tsa.root.pem())
        res = subprocess.run(["openssl", "ts", "-verify", "-digest", ers.digest("sha256", data).hex(), "-in",
                              str(tmp_path / "t.der"), "-token_in", "-CAfile", str(tmp_path / "ca.pem")],
                             capture_output=True, text=True)
        assert "Verification: OK" in res.stdout, res.stdout + res.stderr


async def test_a_tsa_certificate_the_kept_crl_lists_as_revoked_is_a_precise_no(tsa_server):
    data = b"sealed letter"
    tsa_server.revoked[tsa_server.tsa.cert.serial_number] = NOW - dt.timedelta(hours=1)
    async with aiohttp.ClientSession() as session:
        stamp = augmenting(http_digest_stamper(session, tsa_server.url), session=session)
        token = await stamp(ers.digest("sha256", data), "sha256")
    check = await verify_evidence_record(record_over(data, token), data, NOW + dt.timedelta(days=30),
                                         [tsa_server.tsa.root.cert])
    assert not check.ok and check.problems[0].code == "er.token_invalid", check.summary()
    assert "revoked" in check.problems[0].detail


async def test_the_gateways_stamping_job_keeps_the_tsa_crl_in_every_bundled_record(gateway, tsa_server):  # noqa: F811
    r = await gateway.post("/v1/messages", data=signed_letter(gateway.world, subject="เก็บรายการเพิกถอน TSA"),
                           headers=auth())
    assert r.status == 202, await r.text()
    pool = gateway.app[keys.POOL]
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject = 'เก็บรายการเพิกถอน TSA'")
    await bundle_of(gateway, pk)
    settings = dataclasses.replace(gateway.app[keys.SETTINGS], audit_tsa_url=tsa_server.url)
    job = stamping_job(gateway.app, settings)
    assert job is not None and await job.stamp_all() >= 2
    bundle = await bundle_of(gateway, pk)
    z = zipfile.ZipFile(io.BytesIO(bundle))
    records = json.loads(z.read("manifest.json"))["evidence_records"]
    assert records
    for name in records:
        record = ers.EvidenceRecord.load(z.read(name))
        tokens = [ats["time_stamp"].dump() for chain in record["archive_time_stamp_sequence"] for ats in chain]
        assert tokens and all(len(revocation_values(t)[1]) == 1 for t in tokens), name
    at = NOW + dt.timedelta(days=30)
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=at,
                                er_verifier=audit_ers.bundle_verifier(at, [tsa_server.tsa.root.cert]))
    assert rep.ok, rep.summary()
