"""Validation-pending survives a SIGKILL: letters held while the responders are down are forwarded by
the restarted gateway process once they answer again. A real ``gateway serve`` process, real
PostgreSQL, the test PKI's OCSP/CRL server on loopback."""

from __future__ import annotations

import datetime as dt
import json

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization

from pki.keys import FileSigner
from pki.sign import sign_envelope
from tests.ltv.world import World
from tests.support import (
    CMI,
    OPM,
    TOKENS,
    GatewayProcess,
    directory_dict,
    free_port,
    gateway_env,
    letter_bytes,
    wait_for,
)

pytestmark = pytest.mark.slow


async def test_pending_letters_survive_a_sigkill_and_are_forwarded_after_restart(database_url, workdir):
    world = await World(lambda: dt.datetime.now(dt.UTC), code=OPM).start()
    (workdir / "root.pem").write_bytes(world.root.ca.cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "issuing.pem").write_bytes(world.issuing.ca.cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "directory.json").write_text(json.dumps(directory_dict(), ensure_ascii=False), encoding="utf-8")
    port = free_port()
    env = gateway_env(database_url=database_url, directory=workdir / "directory.json", port=port, data_dir=workdir,
                      GATEWAY_REQUIRE_SIGNATURE="true", GATEWAY_REVOCATION="hard-fail",
                      GATEWAY_TRUST_ANCHORS=str(workdir / "root.pem"),
                      GATEWAY_TRUST_INTERMEDIATES=str(workdir / "issuing.pem"),
                      GATEWAY_FETCH_ALLOW=f"127.0.0.1:{world.port}", GATEWAY_VALIDATION_RECHECK_S="0.5",
                      GATEWAY_RATE_PER_AGENCY="0")
    gw = GatewayProcess(env=env, port=port, log_path=workdir / "gateway.log").start()
    conn = await asyncpg.connect(database_url)
    try:
        await gw.wait_ready(60)
        world.down = True
        signer = FileSigner(world.author.key, world.author.cert, [world.issuing.ca.cert])
        ids = []
        async with aiohttp.ClientSession() as s:
            for i in range(5):
                data = sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,), message_id=f"held-{i}"), signer)
                async with s.post(f"{gw.url}/v1/messages", data=data, headers={
                        "Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}) as r:
                    assert r.status == 202, await r.text()
                    assert b"submission-pending" in await r.read()
                ids.append(f"held-{i}")
        assert await conn.fetchval("SELECT count(*) FROM validation_pending") == 5
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0
        gw.kill()  # SIGKILL while every letter is held
        world.down = False
        gw.start()
        await gw.wait_ready(60)

        async def all_forwarded():
            return await conn.fetchval(
                "SELECT count(*) FROM deliveries d JOIN messages m ON m.pk = d.message_pk "
                "WHERE m.message_id = ANY($1::text[]) AND d.recipient = $2", ids, CMI) == 5

        await wait_for(all_forwarded, timeout=60, what="every held letter forwarded after the restart")
        assert await conn.fetchval("SELECT count(*) FROM validation_pending") == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_events WHERE kind = 'validation.completed'") == 5
    finally:
        await conn.close()
        gw.stop()
        await world.stop()
