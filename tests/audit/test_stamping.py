"""Seals and receipts time-stamped in batches by a real TSA on loopback (stopped and started again), and
their RFC 4998 records renewed through 2026-2040 with a fake clock: TSA replaced, SHA-256 declared weak."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from gateway.audit.ers import evidence_records_for, verify_evidence_record
from gateway.audit.renewal import RenewalPolicy, renew
from gateway.audit.sealer import ChainSealer, SealerSettings
from gateway.audit.stamping import StampingJob, StampSettings, pending
from gateway.audit.tsa import http_digest_stamper
from gateway.core import appkeys as keys
from gateway.core.clock import FakeClock
from gateway.storage import messages
from tests.audit.tsa_pki import Tsa, TsaRoot, TsaServer
from tests.support import OPM, TOKENS, letter_bytes, wait_for

UTC = dt.UTC


def d(y: int, m: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(y, m, day, tzinfo=UTC)


def seal_bytes(i: int, size: int = 5000) -> bytes:
    head = f'<?xml version="1.0" encoding="UTF-8"?><Envelope id="{i}"><Subject>หนังสือที่ {i}</Subject><Body>'
    return (head + "ก" * ((size - len(head.encode())) // 3) + "</Body></Envelope>").encode()


async def accept_letters(pool, clock: FakeClock, first: int, n: int) -> list[str]:
    """``n`` letters accepted as the exchange accepts them (message, audit event), then sealed into the chain."""
    batch = []
    for i in range(first, first + n):
        body = seal_bytes(i)
        batch.append(messages.NewMessage(
            sender="0100000000", message_id=f"m-{i}", message_type="letter", conversation_id=None,
            ref_to_message_id=None, letter_number=f"นร 0100/{i}", letter_date=clock.now().date(), subject=f"เรื่อง {i}",
            speed=None, secrecy=None, channel="native", received_sha256=hashlib.sha256(body).digest(),
            received=body, forwarded=body + b"<!-- sealed -->", evidence=None, receipt=f"<Receipt n='{i}'/>".encode() * 40,
            accepted_at=clock.now(), expires_at=clock.now() + dt.timedelta(days=7),
            deliveries=[messages.NewDelivery(id=uuid.uuid4(), recipient="0200000000", route="push", status="queued")],
            audit={}))
    await messages.insert_many(pool, batch)
    sealer = ChainSealer(pool, clock=clock, settings=SealerSettings())
    await sealer.seal_until(await pool.fetchval("SELECT max(seq) FROM audit_events"))
    return [m.message_id for m in batch]


@pytest.fixture
async def tsa_now():
    root = TsaRoot(d(2025), d(2060))
    now = dt.datetime.now(UTC)
    server = TsaServer(Tsa(root, now - dt.timedelta(days=1), now + dt.timedelta(days=730), "TSA now"))
    await server.start()
    yield root, server
    await server.stop()


async def test_every_seal_and_receipt_is_stamped_and_a_tsa_outage_only_delays_it(pool, tsa_now, tmp_path):
    root, server = tsa_now
    clock = FakeClock(dt.datetime.now(UTC))
    async with aiohttp.ClientSession() as session:
        job = StampingJob(pool, clock=clock, stamper=http_digest_stamper(session, server.url),
                          settings=StampSettings(batch=25))
        ids = await accept_letters(pool, clock, 0, 30)
        assert (await pending(pool)).count == 30
        assert await job.stamp_all() == 60  # a seal and a receipt each, two trees (25 + 5 letters)
        assert (await pending(pool)).count == 0 and server.tsa.requests == 2

        # a delivery receipt (as apply_delivery_transitions writes it: the receipt and the event together)
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT d.id, d.message_pk FROM deliveries d JOIN messages m "
                                      "ON m.pk = d.message_pk WHERE m.message_id = $1", ids[3])
            await conn.execute("INSERT INTO receipts (message_pk, delivery_id, kind, receipt, created_at) "
                               "VALUES ($1, $2, 'delivery', $3, $4)", row["message_pk"], row["id"],
                               b"<DeliveryReceipt/>" * 50, clock.now())
            await conn.execute("INSERT INTO audit_events (at, actor, kind, message_pk, delivery_id) "
                               "VALUES ($1, 'test', 'delivery.delivered', $2, $3)", clock.now(),
                               row["message_pk"], row["id"])
        await ChainSealer(pool, clock=clock).seal_until(await pool.fetchval("SELECT max(seq) FROM audit_events"))
        assert await job.stamp_all() == 1

        # the TSA goes away: intake goes on, the new letters wait, nothing half-stored
        await server.stop()
        more = await accept_letters(pool, clock, 30, 10)
        r = await job.stamp_once()
        assert r.error and r.stamped == 0
        p = await pending(pool)
        assert p.count == 10 and p.oldest is not None
        assert await pool.fetchval("SELECT count(*) FROM er_items") == 61
        await server.start()  # back, same address
        assert await job.stamp_all() == 20
        assert (await pending(pool)).count == 0

    for mid, kinds in ((ids[3], ["delivery-receipt", "receipt", "seal"]), (more[7], ["receipt", "seal"])):
        recs = await evidence_records_for(pool, mid)
        assert sorted(r.kind for r in recs) == kinds
        for rec in recs:
            check = await verify_evidence_record(rec.er, rec.data, dt.datetime.now(UTC), [root.cert])
            assert check.ok, check.summary()
        seal = next(r for r in recs if r.kind == "seal")
        check = await verify_evidence_record(seal.er, seal.data[:-1] + b"!", dt.datetime.now(UTC), [root.cert])
        assert not check.ok and check.problems[0].code == "er.data_mismatch"

    # a batch's token passes `openssl ts -verify` on its own, against the tree's root
    stamp = await pool.fetchrow("SELECT root, token FROM er_stamps ORDER BY id LIMIT 1")
    (tmp_path / "t.der").write_bytes(stamp["token"])
    (tmp_path / "ca.pem").write_bytes(root.pem())
    res = subprocess.run(["openssl", "ts", "-verify", "-digest", stamp["root"].hex(), "-in", str(tmp_path / "t.der"),
                          "-token_in", "-CAfile", str(tmp_path / "ca.pem")], capture_output=True, text=True)
    assert "Verification: OK" in res.stdout, res.stdout + res.stderr


async def test_records_from_2026_verify_in_2040_after_tsa_replacement_and_sha256_weakness(pool):
    clock = FakeClock(d(2026, 11, 22))
    root = TsaRoot(d(2025), d(2060))
    tsa_a = Tsa(root, d(2025, 6), d(2031, 6), "TSA A 2025-2031", clock=clock.now)
    tsa_b = Tsa(root, d(2030, 6), d(2037), "TSA B 2030-2037", clock=clock.now)
    tsa_c = Tsa(root, d(2036), d(2045), "TSA C 2036-2045", clock=clock.now)
    server = TsaServer(tsa_a)
    await server.start()
    weak = {"sha256": d(2035)}
    try:
        async with aiohttp.ClientSession() as session:
            stamper = http_digest_stamper(session, server.url)
            ids = await accept_letters(pool, clock, 0, 20)
            await StampingJob(pool, clock=clock, stamper=stamper).stamp_all()

            clock._now = d(2031, 3)  # TSA A's certificate ends mid-2031: replaced by TSA B, records renewed
            server.tsa = tsa_b
            r = await renew(pool, clock=clock, stamper=stamper, policy=RenewalPolicy(alg="sha512"))
            assert (r.tips_renewed, r.rehashed, r.tokens) == (1, 0, 1)
            r = await renew(pool, clock=clock, stamper=stamper, policy=RenewalPolicy(alg="sha512"))
            assert r.tokens == 0  # nothing renewed twice

            clock._now = d(2034, 6)  # SHA-256 declared weak from 2035: every record re-hashed at once
            policy = RenewalPolicy(weak=weak, alg="sha512")
            r = await renew(pool, clock=clock, stamper=stamper, policy=policy)
            assert r.rehashed == 40 and r.bytes_hashed > 40 * 2000

            clock._now = d(2036, 8)  # TSA B ends 2037-01 (within 180 days): renewed by TSA C
            server.tsa = tsa_c
            r = await renew(pool, clock=clock, stamper=stamper, policy=policy)
            assert (r.tips_renewed, r.rehashed) == (1, 0)  # the SHA-256 tips are superseded, not renewed
    finally:
        await server.stop()

    recs = await evidence_records_for(pool, ids[5], sender="0100000000")
    assert len(recs) == 2 and await evidence_records_for(pool, ids[5], sender="0200000000") == []
    for rec in recs:
        check = await verify_evidence_record(rec.er, rec.data, d(2040), [root.cert], weak=weak)
        assert check.ok, check.summary()
        assert [(s.chain, s.index) for s in check.relied_on] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    seal = next(r for r in recs if r.kind == "seal")
    changed = bytearray(seal.data)
    changed[100] ^= 1
    check = await verify_evidence_record(seal.er, bytes(changed), d(2040), [root.cert], weak=weak)
    assert not check.ok and check.problems[0].code == "er.data_mismatch"

    # the 2036 renewal missing: a precise no naming the time-stamp and why
    await pool.execute("DELETE FROM er_stamp_renewals WHERE stamp_id = (SELECT max(id) FROM er_stamps)")
    seal = next(r for r in await evidence_records_for(pool, ids[5]) if r.kind == "seal")
    check = await verify_evidence_record(seal.er, seal.data, d(2040), [root.cert], weak=weak)
    assert [(p.code, p.where) for p in check.problems] == [("er.renewal_missing", "chain 1, time-stamp 0")]


async def test_gateway_audit_renew_killed_mid_way_resumes_and_renews_every_record_once(pool, database_url, tsa_now):
    root, server = tsa_now
    clock = FakeClock(dt.datetime.now(UTC))
    async with aiohttp.ClientSession() as session:
        ids = await accept_letters(pool, clock, 0, 60)
        await StampingJob(pool, clock=clock, stamper=http_digest_stamper(session, server.url)).stamp_all()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "GATEWAY_DATABASE_URL": database_url,
           "GATEWAY_AUDIT_TSA_URL": server.url, "GATEWAY_WEAK_HASHES": "sha256@2035-01-01",
           "GATEWAY_LOG_FORMAT": "json"}
    cmd = [sys.executable, "-m", "gateway.cli.main", "audit", "renew", "--chunk", "10", "--progress"]
    server.delay_s = 0.3
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    seen = []
    while len(seen) < 2:  # two chunks committed, then SIGKILL in the middle of the third
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "the renewal ended before it was killed"
        if line.startswith("hash-tree "):
            seen.append(line)
    proc.kill()
    await proc.wait()
    assert seen == ["hash-tree 10/120\n", "hash-tree 20/120\n"]
    done = await pool.fetchval("SELECT count(*) FROM er_items WHERE alg = 'sha512'")
    assert 20 <= done < 120
    assert await pool.fetchval("SELECT renew_item FROM er_state") > 0

    server.delay_s = 0.0
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert f"{120 - done} records re-hashed with sha512" in out.decode() and "resumed after item" in out.decode()
    # every record renewed exactly once: two chains each, and the hash-tree stamps cover each item once
    assert await pool.fetchval("SELECT count(*) FROM er_items WHERE chains = 2 AND alg = 'sha512'") == 120
    assert await pool.fetchval("SELECT count(*) FROM er_item_chains WHERE chain = 1") == 120
    assert await pool.fetchval("SELECT sum(leaves) FROM er_stamps WHERE purpose = 'hash-tree-renewal'") == 120
    assert await pool.fetchval("SELECT renew_item FROM er_state") == 0  # the run finished
    recs = await evidence_records_for(pool, ids[42])
    for rec in recs:
        check = await verify_evidence_record(rec.er, rec.data, dt.datetime.now(UTC), [root.cert],
                                             weak={"sha256": d(2035)})
        assert check.ok and [s.alg for s in check.relied_on] == ["sha256", "sha512"], check.summary()


async def test_in_the_gateway_a_tsa_outage_never_stops_intake_and_letters_are_stamped_when_it_returns(
        app_client, tsa_now):
    root, server = tsa_now
    await server.stop()
    client = await app_client(audit_tsa_url=server.url, er_stamp_interval_s=0.05)
    pool = client.app[keys.POOL]
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    data = letter_bytes(subject="ขอเชิญประชุม")
    assert (await client.post("/v1/messages", data=data, headers=headers)).status == 202
    mid = await pool.fetchval("SELECT message_id FROM messages WHERE subject = 'ขอเชิญประชุม'")
    await wait_for(lambda: _some_pending(pool), what="the letter pending a time-stamp")
    assert await evidence_records_for(pool, mid) == []
    await server.start()
    await wait_for(lambda: _none_pending(pool), timeout=60, what="the letter time-stamped after the TSA returned")
    recs = await evidence_records_for(pool, mid)
    assert sorted(r.kind for r in recs) == ["receipt", "seal"]
    for rec in recs:
        check = await verify_evidence_record(rec.er, rec.data, dt.datetime.now(UTC), [root.cert])
        assert check.ok, check.summary()


async def _some_pending(pool) -> bool:
    return (await pending(pool)).count > 0


async def _none_pending(pool) -> bool:
    return (await pending(pool)).count == 0
