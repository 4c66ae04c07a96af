"""The console's directory: search by kind and province, one agency with its history, an admin's edit."""

from __future__ import annotations

import re

import pytest

from gateway.core import appkeys as keys
from tests.audit.conftest import login
from tests.support import CMI, KKN

pytestmark = pytest.mark.asyncio


async def _csrf(client) -> str:
    page = await (await client.get("/console/letters")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def test_search_show_and_edit_an_agency(app_client):
    client = await app_client()
    assert (await login(client, "admin")).status == 302
    page = await (await client.get("/console/directory", params={"kind": "provincial_administration",
                                                                 "province": "40"})).text()
    assert KKN in page and CMI not in page and "ศาลากลางจังหวัด" in page
    r = await client.get("/console/directory", params={"province": "4x"})
    assert r.status == 400 and "province" in await r.text()
    page = await (await client.get(f"/console/directory/{CMI}")).text()
    assert "ศาลากลางจังหวัดเชียงใหม่" in page and "ประวัติการแก้ไข" in page and "บันทึก" in page
    form = {"csrf": await _csrf(client), "name_th": "ศาลากลางจังหวัดเชียงใหม่", "name_en": "Chiang Mai Provincial Hall",
            "kind": "provincial_administration", "parent": "1500000000", "province": "50",
            "route_kind": "via", "route_target": KKN, "active": "yes", "reason": "ทดสอบ"}
    r = await client.post(f"/console/directory/{CMI}", data=form, allow_redirects=False)
    assert r.status == 303, await r.text()
    assert client.app[keys.DIRECTORY].route_of(CMI)[0] == KKN
    page = await (await client.get(f"/console/directory/{CMI}")).text()
    assert "user:admin" in page and "ทดสอบ" in page and "ผ่าน" in page
    r = await client.post(f"/console/directory/{CMI}", data={**form, "route_target": "9999999999"},
                          allow_redirects=False)
    assert r.status == 400 and "9999999999" in await r.text()


async def test_an_operator_sees_but_cannot_edit(app_client):
    client = await app_client()
    assert (await login(client, "operator")).status == 302
    page = await (await client.get(f"/console/directory/{CMI}")).text()
    assert "ประวัติการแก้ไข" in page and "แก้ไข <span class=\"en\">Edit</span>" not in page
    r = await client.post(f"/console/directory/{CMI}", data={"csrf": await _csrf(client), "name_th": "x"},
                          allow_redirects=False)
    assert r.status == 403
