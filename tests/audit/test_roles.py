"""Every route states its role, and every other role is refused (API: tokens; console: sessions)."""

import datetime as dt
import re
import uuid

import pytest

from gateway.core import appkeys as keys
from gateway.core.ecmswire import soap
from gateway.storage import users
from tests.audit.conftest import login
from tests.ecms.helpers import errors, request
from tests.support import CMI, KKN, MOI, OPM, TOKENS, letter_bytes

ROLES = ("agency", "operator", "auditor", "admin")
U = str(uuid.uuid4())
# (method, path template, concrete path) -> roles allowed
API = {
    ("POST", "/v1/messages"): ({"agency"}, "/v1/messages"),
    ("GET", "/v1/messages/{message_id}"): ({"agency"}, "/v1/messages/x"),
    ("GET", "/v1/inbox"): ({"agency"}, "/v1/inbox"),
    ("GET", "/v1/inbox/{delivery_id}"): ({"agency"}, f"/v1/inbox/{U}"),
    ("GET", "/v1/inbox/{delivery_id}/parts/{content_id}"): ({"agency"}, f"/v1/inbox/{U}/parts/att-1"),
    ("POST", "/v1/inbox/{delivery_id}/ack"): ({"agency"}, f"/v1/inbox/{U}/ack"),
    ("POST", "/v1/messages/{message_id}/withdraw"): ({"agency"}, "/v1/messages/x/withdraw"),
    ("GET", "/v1/messages/{message_id}/stamped/{recipient}"): ({"agency"}, "/v1/messages/x/stamped/1550100000"),
    ("GET", "/v1/audit/letters"): ({"auditor", "admin"}, "/v1/audit/letters"),
    ("GET", "/v1/audit/letters/export"): ({"auditor", "admin"}, "/v1/audit/letters/export"),
    ("GET", "/v1/audit/events"): ({"auditor", "admin"}, "/v1/audit/events"),
    ("GET", "/v1/audit/events/export"): ({"auditor", "admin"}, "/v1/audit/events/export"),
    ("GET", "/v1/audit/status"): ({"auditor", "admin", "operator"}, "/v1/audit/status"),
    ("GET", "/v1/audit/letters/{pk}/evidence.zip"): ({"auditor", "admin"}, "/v1/audit/letters/1/evidence.zip"),
    ("GET", "/v1/deliveries/dead"): ({"operator", "auditor", "admin"}, "/v1/deliveries/dead"),
    ("POST", "/v1/deliveries/{delivery_id}/requeue"): ({"operator", "admin"}, f"/v1/deliveries/{U}/requeue"),
    ("GET", "/v1/queues"): ({"operator", "auditor", "admin"}, "/v1/queues"),
    ("GET", "/v1/directory/agencies"): ({"agency", "operator", "auditor", "admin"}, "/v1/directory/agencies"),
    ("GET", "/v1/directory/agencies/{code}"): ({"agency", "operator", "auditor", "admin"},
                                               f"/v1/directory/agencies/{CMI}"),
    ("GET", "/v1/directory/agencies/{code}/history"): ({"operator", "auditor", "admin"},
                                                       f"/v1/directory/agencies/{CMI}/history"),
    ("PUT", "/v1/directory/agencies/{code}"): ({"admin"}, f"/v1/directory/agencies/{CMI}"),
    # statistics: an agency its own subtree (the test agency asks for itself), staff everything
    ("GET", "/v1/stats/volumes"): ({"agency", "operator", "auditor", "admin"}, f"/v1/stats/volumes?scope=agency&code={OPM}"),
    ("GET", "/v1/stats/service-levels"): ({"agency", "operator", "auditor", "admin"},
                                          f"/v1/stats/service-levels?scope=agency&code={OPM}"),
    ("GET", "/v1/stats/failures"): ({"agency", "operator", "auditor", "admin"},
                                    f"/v1/stats/failures?scope=agency&code={OPM}"),
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/openapi.json"),
          ("GET", "/console/login"), ("POST", "/console/login")}
# The e-CMS endpoint answers refusals the e-CMS way (HTTP 200 with ErrorDetail): tested below.
ECMS = {("POST", "/ecms-ws01/service2"),
        # ... with a URL key (admission: tests/ecms/test_admission*.py)
        ("POST", "/ecms/{key}/ecms-ws01/service2")}
EVERY = {"agency", "operator", "auditor", "admin"}
CONSOLE = {
    ("GET", "/console"): (EVERY, "/console"),
    ("GET", "/console/"): (EVERY, "/console/"),
    ("POST", "/console/logout"): (EVERY, None),
    ("GET", "/console/letters"): (EVERY, "/console/letters"),
    ("GET", "/console/letters/{pk}"): (EVERY, None),
    ("GET", "/console/queues"): ({"operator", "auditor", "admin"}, "/console/queues"),
    ("GET", "/console/dead"): ({"operator", "auditor", "admin"}, "/console/dead"),
    ("POST", "/console/deliveries/{delivery_id}/requeue"): ({"operator", "admin"},
                                                             f"/console/deliveries/{U}/requeue"),
    ("GET", "/console/directory"): ({"operator", "auditor", "admin"}, "/console/directory"),
    ("GET", "/console/certificates"): ({"operator", "auditor", "admin"}, "/console/certificates"),
    ("GET", "/console/directory/{code}"): ({"operator", "auditor", "admin"}, f"/console/directory/{CMI}"),
    ("POST", "/console/directory/{code}"): ({"admin"}, f"/console/directory/{CMI}"),
    ("GET", "/console/audit"): ({"operator", "auditor", "admin"}, "/console/audit"),
    ("POST", "/console/audit/verify"): ({"auditor", "admin"}, "/console/audit/verify"),
    ("GET", "/console/stats"): (EVERY, f"/console/stats?scope=agency&code={OPM}"),
    ("GET", "/console/stats/service"): (EVERY, f"/console/stats/service?scope=agency&code={OPM}"),
    ("GET", "/console/stats/failures"): (EVERY, f"/console/stats/failures?scope=agency&code={OPM}"),
}


def _routes(app):
    out = {}
    for r in app.router.routes():
        if r.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", r.resource.canonical)
        out[(r.method, path)] = r.handler
    return out


async def test_every_route_is_in_the_table_and_states_its_role(app_client):
    client = await app_client()
    routes = _routes(client.app)
    assert set(routes) == set(API) | PUBLIC | set(CONSOLE) | ECMS, "a route was added or removed: update the table"
    for key, handler in routes.items():
        doc = handler.__doc__ or ""
        assert re.match(r"\s*(Role: |Public|Any logged-in|Agency|Operator|Auditor)", doc), f"{key}: {doc!r}"


def _headers(client, role):
    token = TOKENS[OPM] if role == "agency" else client.staff_tokens[role]
    return {"Authorization": f"Bearer {token}"}


async def test_api_roles(app_client):
    client = await app_client()
    for (method, _), (allowed, path) in API.items():
        for role in ROLES:
            r = await client.request(method, path, headers=_headers(client, role))
            body = await r.read()
            if role in allowed:
                assert r.status not in (401, 403), (method, path, role, r.status, body[:200])
            else:
                assert r.status == 403, (method, path, role, r.status, body[:200])
        r = await client.request(method, path)
        assert r.status == 401, (method, path, "anonymous")


async def test_the_ecms_endpoint_refuses_staff_roles_and_anonymous_callers(app_client):

    client = await app_client()
    body = request(soap.U.GetMinistryOrganizationList())
    for role in ("operator", "auditor", "admin", None):
        headers = {"Content-Type": "text/xml"} | ({} if role is None else _headers(client, role))
        r = await client.post("/ecms-ws01/service2", data=body, headers=headers)
        assert errors(await r.read()) == ["ECMS-200"], role
    r = await client.post("/ecms-ws01/service2", data=body,
                          headers={"Content-Type": "text/xml"} | _headers(client, "agency"))
    assert errors(await r.read()) == []


async def test_a_disabled_user_and_an_unknown_token_are_refused(app_client):


    client = await app_client()
    await users.set_disabled(client.app[keys.POOL], "auditor", True, now=dt.datetime.now(dt.UTC), actor="t")
    r = await client.get("/v1/audit/letters", headers=_headers(client, "auditor"))
    assert r.status == 401
    r = await client.get("/v1/audit/letters", headers={"Authorization": "Bearer sgw_nope"})
    assert r.status == 401
    assert (await login(client, "auditor")).status == 401


@pytest.mark.parametrize("role", ROLES)
async def test_console_roles(app_client, role):
    client = await app_client()
    user = {"agency": "clerk"}.get(role, role)
    r = await login(client, user)
    assert r.status == 302, await r.text()
    page = await (await client.get("/console/letters")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    for (method, _), (allowed, path) in CONSOLE.items():
        if path is None:
            continue
        if method == "POST":
            r = await client.post(path, data={"csrf": csrf}, allow_redirects=False)
        else:
            r = await client.get(path, allow_redirects=False)
        if role in allowed:
            assert r.status not in (401, 403), (method, path, role, r.status)
        else:
            assert r.status == 403, (method, path, role, r.status)


async def test_console_login_is_throttled_after_repeated_failures(app_client):
    client = await app_client()
    for _ in range(5):
        assert (await login(client, "auditor", password="wrong")).status == 401
    r = await login(client, "auditor")  # the right password, too late: guessing has stopped
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    assert "หลายครั้งเกินไป" in await r.text()
    assert (await login(client, "operator")).status == 302  # only that username


async def test_console_forms_need_the_csrf_token(app_client):
    client = await app_client()
    assert (await login(client, "operator")).status == 302
    r = await client.post(f"/console/deliveries/{U}/requeue", data={}, allow_redirects=False)
    assert r.status == 403
    r = await client.post("/console/login", data={"username": "operator", "password": "x"}, allow_redirects=False)
    assert r.status == 403


async def test_session_cookie_is_httponly_and_strict(app_client):
    client = await app_client()
    r = await login(client, "auditor")
    cookie = r.headers.get("Set-Cookie", "")
    assert "sgw_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_agency_user_sees_only_its_own_letters(app_client):

    client = await app_client()
    pool = client.app[keys.POOL]
    for sender, subj in ((OPM, "ของสำนักนายก"), (KKN, "ของขอนแก่น")):
        r = await client.post("/v1/messages", data=letter_bytes(sender=sender, recipients=(CMI,), subject=subj),
                              headers={"Authorization": f"Bearer {TOKENS[sender]}", "Content-Type": "application/xml"})
        assert r.status == 202
    assert (await login(client, "clerk")).status == 302
    page = await (await client.get("/console/letters")).text()
    assert "ของสำนักนายก" in page and "ของขอนแก่น" not in page
    other = await pool.fetchval("SELECT pk FROM messages WHERE sender = $1", KKN)
    assert (await client.get(f"/console/letters/{other}")).status == 404


async def test_agency_users_cannot_use_api_tokens_in_production(app_client, dev_pki):
    client = await app_client(profile="production", trust_anchors=str(dev_pki.anchors))
    r = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {client.staff_tokens['clerk']}"})
    assert r.status == 401 and (await r.json())["code"] == "auth.token_disabled"
    # staff roles keep their API tokens
    r = await client.get("/v1/queues", headers={"Authorization": f"Bearer {client.staff_tokens['operator']}"})
    assert r.status == 200


async def test_an_agency_sees_the_statistics_of_its_own_subtree_only(app_client):
    client = await app_client()
    ministry, province = {"Authorization": f"Bearer {TOKENS[MOI]}"}, {"Authorization": f"Bearer {TOKENS[CMI]}"}
    for path in ("/v1/stats/volumes", "/v1/stats/service-levels", "/v1/stats/failures"):
        # a ministry: itself and every agency below it, by default its whole subtree
        for query in ("", f"?scope=ministry&code={MOI}", f"?scope=agency&code={CMI}", f"?scope=ministry&code={KKN}"):
            assert (await client.get(path + query, headers=ministry)).status == 200, (path, query)
        # an office: itself only; never another agency, the exchange or a province
        assert (await client.get(path + f"?scope=agency&code={CMI}", headers=province)).status == 200
        for query in (f"?scope=agency&code={KKN}", f"?scope=ministry&code={MOI}", "?scope=exchange",
                      "?scope=province&province=50"):
            r = await client.get(path + query, headers=province)
            assert (r.status, (await r.json())["code"]) == (403, "auth.forbidden"), (path, query)
