"""The certificate expiry page and gauge in a real app (real database, sessions, templates), with a fake clock.

The route and the watch are not wired in ``create_app`` on this branch (the integrator adds them to
``gateway.http.routes`` and ``gateway.http.app``); the test adds the same two lines to the app it builds.
"""

import datetime as dt
import json
import re

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from gateway.core import appkeys as keys
from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.http.app import create_app
from gateway.storage import users
from tests.audit.conftest import PASSWORD, login
from tests.integration.conftest import make_settings
from tests.support import CMI, KKN, OPM, directory_dict

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def fp(n: int) -> str:
    return f"{n:064x}"


def directory(certs: dict[str, list[tuple[int, float, str | None]]]) -> Directory:
    """The test directory; ``certs``: agency -> (fingerprint number, days to not_after, retired_at)."""
    data = json.loads(json.dumps(directory_dict()))
    for agency in data["agencies"]:
        agency["certificates"] = [
            {"sha256": fp(n), "usage": ["signing"], "not_before": (NOW - dt.timedelta(days=365)).isoformat(),
             "not_after": (NOW + dt.timedelta(days=days)).isoformat(), **({"retired_at": r} if r else {})}
            for n, days, r in certs.get(agency["code"], [])]
        if agency["code"] == CMI:
            agency["contact"] = {"name": "งานสารบรรณ", "phone": "053-112-000"}
    return Directory.from_dict(data)


START = {OPM: [(1, 400, None), (2, 5, None)], CMI: [(3, -3, None)], KKN: [(4, 25, None)]}


@pytest_asyncio.fixture
async def console(database_url, workdir):
    clock = FakeClock(NOW)
    app = create_app(make_settings(database_url, workdir), clock=clock, directory=directory(START))
    # what the integrator adds: the route (gateway.http.routes) and the watch (create_app's cleanup_ctx)
    client = TestClient(TestServer(app))
    await client.start_server()
    pool = app[keys.POOL]
    for name, role in (("operator", users.Role.OPERATOR), ("clerk", users.Role.AGENCY)):
        await users.add(pool, username=name, password=PASSWORD, role=role,
                        agency=OPM if role is users.Role.AGENCY else None, now=NOW, actor="test")
    client.clock = clock
    yield client
    await client.close()


def gauge(text: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^gateway_agency_certificates_expiring\{within="(\w+)"\} (\S+)$', text, re.M)}


async def test_the_page_lists_expired_and_expiring_certificates_by_agency_soonest_first(console):
    r = await console.get("/console/certificates", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"].startswith("/console/login")
    assert (await login(console, "operator")).status == 302
    r = await console.get("/console/certificates")
    page = await r.text()
    assert r.status == 200, page
    assert "ใบรับรองที่ใกล้หมดอายุ" in page and "(Certificates expiring)" in page
    assert re.findall(r'data-agency="(\d+)" data-bucket="(\w+)"', page) == [
        (CMI, "expired"), (OPM, "7d"), (KKN, "30d")]
    counts = dict(re.findall(r'<strong data-bucket="(\w+)">(\d+)</strong>', page))
    assert counts == {"expired": "1", "7d": "1", "30d": "2", "60d": "2"}
    assert "ศาลากลางจังหวัดเชียงใหม่" in page and "053-112-000" in page  # whom to call
    assert "19 พ.ย. 2569" in page  # CMI's not_after, Buddhist era in Bangkok time
    assert "หมดอายุแล้ว 3 วัน" in page and fp(2) in page and fp(1) not in page

    narrowed = await (await console.get("/console/certificates?within=30d")).text()
    assert re.findall(r'data-agency="(\d+)"', narrowed) == [OPM, KKN]
    bad = await console.get("/console/certificates?within=90d")
    assert bad.status == 400 and "within" in await bad.text()


async def test_an_agency_clerk_may_not_open_it(console):
    await login(console, "clerk")
    r = await console.get("/console/certificates")
    assert r.status == 403


async def test_the_gauge_is_set_at_start_and_follows_the_directory(console):
    assert gauge(await (await console.get("/metrics")).text()) == {"expired": 1, "7d": 1, "30d": 2, "60d": 2}
    # CMI rotated: the expired certificate retired, a new one registered
    console.app[keys.DIRECTORY].replace(directory({**START, CMI: [(3, -3, NOW.isoformat()), (5, 700, None)]}))
    assert gauge(await (await console.get("/metrics")).text()) == {"expired": 0, "7d": 1, "30d": 2, "60d": 2}
