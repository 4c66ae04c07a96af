"""Several gateway processes commit audit events concurrently: one consistent, signed chain.

Three real `gateway serve` processes share one database; clients submit and
acknowledge through all of them at once (so events are numbered in one order
and committed in another), and one process is SIGKILLed mid-run (possibly
while it holds the sealer's turn). Afterwards the chain in the database
verifies from the genesis with only the gateway certificate: no gap, no fork,
every event chained exactly once, covered by signed checkpoints.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
import asyncpg
import pytest

from gateway.audit.live import status, verify_database
from gateway.storage import db
from tests.support import (
    CMI,
    KKN,
    OPM,
    TOKENS,
    GatewayProcess,
    free_port,
    gateway_env,
    letter_bytes,
    wait_for,
    write_directory,
)


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


@pytest.mark.slow
async def test_concurrent_processes_build_one_verifiable_chain(database_url, workdir, dev_pki):
    directory = write_directory(workdir / "directory.json")
    procs = []
    for _ in range(3):
        port = free_port()
        env = gateway_env(database_url=database_url, directory=directory, port=port, data_dir=workdir,
                          GATEWAY_SEAL="true", GATEWAY_PKI_DIR=str(dev_pki.directory),
                          GATEWAY_AUDIT_CHECKPOINT_EVENTS="40", GATEWAY_AUDIT_CHECKPOINT_SECONDS="1",
                          GATEWAY_AUDIT_SEAL_INTERVAL_S="0.05", GATEWAY_RATE_PER_AGENCY="0")
        procs.append(GatewayProcess(env=env, port=port, log_path=workdir / f"gw-{port}.log").start())
    try:
        for p in procs:
            await p.wait_ready()
        rng = random.Random(5)
        async with aiohttp.ClientSession() as s:
            async def client(i: int):
                for j in range(25):
                    p = rng.choice([q for q in procs if q.proc.poll() is None])
                    try:
                        async with s.post(f"{p.url}/v1/messages", headers=auth(),
                                          data=letter_bytes(recipients=(CMI, KKN), message_id=f"c{i}-{j}")) as r:
                            assert r.status in (202, 200), await r.text()
                    except aiohttp.ClientError:
                        continue  # the process was just killed; the letter may or may not be stored
                    for agency in (CMI, KKN):
                        try:
                            async with s.get(f"{p.url}/v1/inbox?limit=5", headers=auth(agency)) as r:
                                items = (await r.json())["items"] if r.status == 200 else []
                            for item in items[:2]:
                                async with s.post(f"{p.url}/v1/inbox/{item['delivery_id']}/ack",
                                                  headers=auth(agency)) as r:
                                    assert r.status in (200, 404, 409)
                        except aiohttp.ClientError:
                            continue

            async def killer():
                conn = await asyncpg.connect(database_url)
                try:
                    await wait_for(lambda: conn.fetchval("SELECT count(*) > 60 FROM messages"), timeout=30,
                                   what="load under way")
                finally:
                    await conn.close()
                procs[0].kill()

            await asyncio.gather(*(client(i) for i in range(8)), killer())
        pool = await db.create_pool(database_url, min_size=1, max_size=2)
        try:
            written = await pool.fetchval("SELECT count(*) FROM audit_events")
            assert written > 300

            async def sealed():
                st = await status(pool)
                return st.unsealed == 0 and st.last_checkpoint_seq == st.head_seq

            await wait_for(sealed, timeout=30, what="every event chained and covered by a checkpoint")
            report = await verify_database(pool, dev_pki.gateway_cert)
            assert report.ok, report.summary()
            assert report.events == written
            assert report.checkpoints >= 2
            # the chain links every event exactly once, in seq order
            seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM audit_chain ORDER BY seq")]
            assert seqs == [r["seq"] for r in await pool.fetch("SELECT seq FROM audit_events ORDER BY seq")]
        finally:
            await pool.close()
    finally:
        for p in procs:
            p.stop()
