import pytest

from gateway.audit.sealer import ChainSealer, SealerSettings
from gateway.core.clock import FakeClock
from tests.audit.keys import TestSigner


@pytest.fixture(scope="session")
def signer():
    return TestSigner()


@pytest.fixture
def sealer(pool, signer):
    return ChainSealer(pool, clock=FakeClock(), signer=signer,
                       settings=SealerSettings(checkpoint_events=5, checkpoint_seconds=3600))


import datetime as dt
import json
import re

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from gateway.core import appkeys as keys
from gateway.core.directory import Directory
from gateway.http.app import create_app
from gateway.storage import users
from tests.integration.conftest import make_settings
from tests.support import OPM, directory_dict

PASSWORD = "รหัสผ่านยาวพอ-123"
STAFF = {"operator": users.Role.OPERATOR, "auditor": users.Role.AUDITOR, "admin": users.Role.ADMIN,
         "clerk": users.Role.AGENCY}


@pytest_asyncio.fixture
async def app_client(database_url, workdir, signer):
    """An in-process gateway with the audit signer, users of every role and their API tokens."""

    made = []

    async def factory(routes=None, **kw):
        kw.setdefault("audit_seal_interval_s", 0.05)
        settings = make_settings(database_url, workdir, **kw)
        directory = Directory.from_dict(json.loads(json.dumps(directory_dict(routes))))
        app = create_app(settings, clock=FakeClock(), directory=directory, audit_signer=signer)
        client = TestClient(TestServer(app))
        await client.start_server()
        made.append(client)

        pool = app[keys.POOL]
        tokens = {}
        now = dt.datetime.now(dt.UTC)
        for name, role in STAFF.items():
            if await users.get(pool, name) is None:
                await users.add(pool, username=name, password=PASSWORD, role=role,
                                agency=OPM if role is users.Role.AGENCY else None, now=now, actor="test")
            tokens[name] = await users.issue_token(pool, name, "test", now=now, actor="test")
        client.staff_tokens = tokens
        return client

    yield factory
    for c in made:
        await c.close()


async def login(client, username, password=PASSWORD):
    page = await (await client.get("/console/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = await client.post("/console/login", data={"username": username, "password": password, "csrf": csrf,
                                                  "next": "/console/letters"}, allow_redirects=False)
    return r
