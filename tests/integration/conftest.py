"""In-process gateway apps on a real database, with a fake clock."""

from __future__ import annotations

import json

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.core.settings import DispatchSettings, RetrySettings, Settings
from gateway.http.app import create_app
from tests.support import directory_dict


@pytest_asyncio.fixture
async def clock():
    return FakeClock()


def make_settings(database_url: str, tmp, **kw) -> Settings:
    """Spine tests send unsigned letters over plain HTTP unless they ask otherwise."""
    dispatch = kw.pop("dispatch", DispatchSettings(enabled=False))
    retry = kw.pop("retry", RetrySettings(initial_delay_s=1.0, max_attempts=4, jitter=0.0))
    kw.setdefault("require_signature", False)
    kw.setdefault("seal", False)
    kw.setdefault("tls", False)
    return Settings(database_url=database_url, data_dir=tmp, dispatch=dispatch, retry=retry, **kw)


@pytest_asyncio.fixture
async def make_client(database_url, workdir, clock, dev_pki):
    """Start an in-process gateway app (no dispatcher task unless asked) and a client for it."""
    made = []

    async def factory(routes=None, **settings_kw):
        settings_kw.setdefault("pki_dir", dev_pki.directory)
        settings = make_settings(database_url, workdir, **settings_kw)
        directory = Directory.from_dict(json.loads(json.dumps(directory_dict(routes))))
        app = create_app(settings, clock=clock, directory=directory)
        client = TestClient(TestServer(app))
        await client.start_server()
        made.append(client)
        return client

    yield factory
    for c in made:
        await c.close()
