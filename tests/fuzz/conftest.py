"""One real gateway per test module for the hostile corpus and the fuzzers.

Per-test databases (``database_url``) cost a clone and an app start each; a fuzzer sends
hundreds of requests, so each module gets one database cloned from the migrated template
and one in-process app (real aiohttp server on loopback, real PostgreSQL). Rejections
store nothing, so the examples do not disturb each other; tests that need a letter to be
accepted first use fresh message ids.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings

from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.http.app import create_app
from gateway.storage import db
from tests.conftest import _admin, _dsn_for
from tests.integration.conftest import make_settings
from tests.support import OPM, TOKENS, directory_dict, stored_counts

#: The request body limit of the module's gateway: above every corpus file, small enough
#: that the oversized-body rule is cheap to generate.
MAX_BODY_BYTES = 2 * 1024 * 1024

#: How long the module's gateway keeps reading a body it refused before it closes (aiohttp's default: 10 s).
LINGERING_S = 2.0

#: e-CMS agencies added to the test directory (5-digit codes, as older e-CMS nodes use).
ECMS_AGENCIES = [
    {"code": "11008", "name_th": "สำนักงานรัฐบาลอิเล็กทรอนิกส์", "name_en": "EGA", "tokens": ["t-11008"],
     "route": {"kind": "pull"}},
    {"code": "11002", "name_th": "สำนักงานปลัดกระทรวง ICT", "name_en": "OPS ICT", "tokens": ["t-11002"],
     "route": {"kind": "pull"}},
]


async def count_rows(pool) -> dict[str, int]:
    return await stored_counts(pool)


@dataclass
class Gateway:
    client: TestClient
    pool: asyncpg.Pool
    url: str
    token: str = TOKENS[OPM]

    async def rows(self) -> dict[str, int]:
        return await count_rows(self.pool)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def module_database_url(pg_admin_dsn, template_db):
    name = f"f_{uuid.uuid4().hex[:12]}"
    await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _dsn_for(pg_admin_dsn, name)
    await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def start_gateway(database_url: str, data_dir, pki_dir, **settings_kw) -> Gateway:
    settings_kw.setdefault("max_body_bytes", MAX_BODY_BYTES)
    settings_kw.setdefault("rate_per_agency", 0.0)  # fuzzers send far faster than an agency may
    settings_kw.setdefault("seal", True)  # production's sealing path, for whatever gets that far
    settings = make_settings(database_url, data_dir, pki_dir=pki_dir, **settings_kw)
    d = directory_dict()
    d["agencies"] += json.loads(json.dumps(ECMS_AGENCIES, ensure_ascii=False))
    app = create_app(settings, clock=FakeClock(), directory=Directory.from_dict(d))
    # lingering_time: after answering a request whose body it did not read, aiohttp keeps reading it this
    # long before closing (default 10 s). Content-length-huge (10^15 announced, a few bytes sent) waited all
    # of it for the close; 2 s still covers the rest of any oversized body the corpus sends over loopback.
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(lingering_time=LINGERING_S)  # (TestServer's own keywords do not reach the handler)
    client = TestClient(server)
    await client.start_server()
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    return Gateway(client=client, pool=pool, url=str(client.make_url("")).rstrip("/"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(module_database_url, tmp_path_factory, dev_pki):
    gw = await start_gateway(module_database_url, tmp_path_factory.mktemp("gw"), dev_pki.directory)
    yield gw
    await gw.pool.close()
    await gw.client.close()


def examples(n: int) -> int:
    """``n`` examples in the ci profile (tests/conftest.py), ten times as many when exploring."""
    return n * 10 if settings().derandomize is False else n
