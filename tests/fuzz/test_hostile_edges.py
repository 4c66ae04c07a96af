"""Hostile values in every parameter of every route: a specific 4xx naming the field, never a 5xx.

The routes are enumerated from the app's router (``gateway/http/routes.py``): every route is in
:data:`PARAMETERS` with each parameter it reads (path, query, JSON body, form field), or in
:data:`NO_PARAMETERS`. Each parameter gets a NUL, a lone surrogate (percent-encoded UTF-8 of
U+D800, and a real one where JSON can carry it), a value one character over its documented
``maxLength`` (:data:`gateway.http.params.KINDS`) and, for times, the edges of the calendar once
the zone offset is applied. The answer must be 400 ``request.invalid`` naming the parameter (a
page naming it, in the console), never a 5xx, and the database's safety net
(``gateway_input_safety_net_total``) must never be what caught it.

Requests are written on a raw socket, so the bytes on the wire are exactly the test's (an HTTP
client would re-encode the URL, and refuses header bytes that are not UTF-8).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import asyncpg
import pytest
import pytest_asyncio

from gateway.core import appkeys as keys
from gateway.http import params
from gateway.storage import search, users
from tests.fuzz.conftest import Gateway
from tests.support import OPM, TOKENS, letter_bytes

PASSWORD = "รหัสผ่านยาวพอ-123"
U = "00000000-0000-4000-8000-000000000001"
NUL, SURROGATE = "%00", "%ED%A0%80"
#: Times that Python parses but PostgreSQL's timestamptz (or Python's own UTC conversion) cannot hold.
EDGE_TIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+00:01")


# ---------------------------------------------------------------------------- raw HTTP


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


async def send(url: str, method: str, target: str, *, headers: dict[str, str] | None = None,
               raw_headers: bytes = b"", body: bytes = b"", raw_target: bytes | None = None) -> Answer:
    """One HTTP/1.1 request on a fresh connection; ``target`` is sent as is (already percent-encoded)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"Host: {parts.hostname}:{parts.port}", f"Content-Length: {len(body)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        line = (raw_target if raw_target is not None else target.encode("ascii"))
        writer.write(method.encode() + b" " + line + b" HTTP/1.1\r\n" + "\r\n".join(head).encode("utf-8")
                     + b"\r\n" + raw_headers + b"\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines)}
    if hdrs.get("transfer-encoding") == "chunked":
        rest = _dechunk(rest)
    return Answer(int(status_line.split()[1]), hdrs, rest)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)


# ---------------------------------------------------------------------------- the gateway and its callers


@dataclass
class Callers:
    gw: Gateway
    tokens: dict[str, str]
    cookies: dict[str, str]
    csrf: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        if role == "agency":
            return {"Authorization": f"Bearer {TOKENS[OPM]}"}
        if role.startswith("console-"):
            return {"Cookie": self.cookies[role]}
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def _console_login(url: str, username: str) -> tuple[str, str]:
    page = await send(url, "GET", "/console/login")
    cookie = page.headers["set-cookie"].split(";", 1)[0]
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page.body).group(1).decode()
    form = f"username={username}&password={quote(PASSWORD)}&csrf={csrf}&next=%2Fconsole%2Fletters".encode()
    r = await send(url, "POST", "/console/login", body=form, headers={
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 302, r.body[:300]
    cookie = r.headers["set-cookie"].split(";", 1)[0]
    page = await send(url, "GET", "/console/letters", headers={"Cookie": cookie})
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page.body).group(1).decode()
    return cookie, csrf


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def callers(gateway) -> Callers:
    now = dt.datetime.now(dt.UTC)
    tokens, cookies, csrf = {}, {}, {}
    for name, role in (("auditor", users.Role.AUDITOR), ("operator", users.Role.OPERATOR),
                       ("admin", users.Role.ADMIN)):
        if await users.get(gateway.pool, name) is None:
            await users.add(gateway.pool, username=name, password=PASSWORD, role=role, agency=None, now=now,
                            actor="test")
        tokens[name] = await users.issue_token(gateway.pool, name, "test", now=now, actor="test")
        cookies[f"console-{name}"], csrf[f"console-{name}"] = await _console_login(gateway.url, name)
    return Callers(gateway, tokens, cookies, csrf)


def safety_net_hits(gw: Gateway) -> float:
    metrics = gw.client.app[keys.METRICS]
    return sum(s.value for m in metrics.input_safety_net.collect() for s in m.samples if s.name.endswith("_total"))


# ---------------------------------------------------------------------------- every route's parameters


@dataclass(frozen=True)
class Param:
    """One parameter of one route: where it is read, and a request with ``{v}`` where the value goes."""

    route: tuple[str, str]
    name: str
    where: str
    """path, query, json or form"""
    role: str
    target: str
    kind: str
    body: str = ""
    """For json and form: the body with ``{v}`` where the value goes."""
    free_text: bool = False
    """Any (valid, NUL-free) text is a valid value: a surrogate decoded to U+FFFD is merely searched for."""
    time: str | None = None
    """"instant" (ISO 8601 time), "cursor" (the auditor API's base64 cursor) or "day" (console date)."""
    routed: bool = False
    """The route's own pattern (``{pk:\\d+}``) admits only digits: anything else is no route (404)."""

    @property
    def id(self) -> str:
        return f"{self.route[0]} {self.route[1]} {self.where}:{self.name}"


def _p(method: str, template: str, name: str, where: str, role: str, target: str, kind: str, **kw) -> Param:
    return Param((method, template), name, where, role, target, kind, **kw)


LETTER_QUERY = [("agency", "agency", {}), ("number", "text", {"free_text": True}),
                ("subject", "text", {"free_text": True}), ("status", "enum", {}), ("type", "enum", {}),
                ("since", "time", {"time": "instant"}), ("until", "time", {"time": "instant"}),
                ("after", "cursor", {"time": "cursor"}), ("limit", "number", {})]
STATS_QUERY = [("scope", "enum", {}), ("code", "agency", {}), ("province", "province", {}),
               ("since", "day", {"time": "day"}), ("until", "day", {"time": "day"}), ("grain", "enum", {}),
               ("side", "enum", {})]
STATS_ROUTES = [("/v1/stats/volumes", "auditor"), ("/v1/stats/service-levels", "auditor"),
                ("/v1/stats/failures", "auditor"), ("/console/stats", "console-auditor"),
                ("/console/stats/service", "console-auditor"), ("/console/stats/failures", "console-auditor")]
EVENT_QUERY = [("kind", "kind", {}), ("since", "time", {"time": "instant"}), ("until", "time", {"time": "instant"}),
               ("letter", "number", {}), ("agency", "agency", {}), ("number", "text", {"free_text": True}),
               ("subject", "text", {"free_text": True}), ("before", "number", {}), ("limit", "number", {})]

PARAMETERS: list[Param] = [
    _p("GET", "/v1/messages/{message_id}", "message_id", "path", "agency", "/v1/messages/{v}", "message_id"),
    _p("GET", "/v1/messages/{message_id}", "after", "query", "agency", "/v1/messages/m-1?after={v}", "agency"),
    _p("GET", "/v1/messages/{message_id}", "limit", "query", "agency", "/v1/messages/m-1?limit={v}", "number"),
    _p("POST", "/v1/messages/{message_id}/withdraw", "message_id", "path", "agency", "/v1/messages/{v}/withdraw",
       "message_id"),
    _p("POST", "/v1/messages/{message_id}/withdraw", "recipients", "json", "agency", "/v1/messages/m-1/withdraw",
       "agency", body='{{"recipients": ["{v}"]}}'),
    _p("GET", "/v1/messages/{message_id}/stamped/{recipient}", "message_id", "path", "agency",
       "/v1/messages/{v}/stamped/1550100000", "message_id"),
    _p("GET", "/v1/messages/{message_id}/stamped/{recipient}", "recipient", "path", "agency",
       "/v1/messages/m-1/stamped/{v}", "agency"),
    _p("GET", "/v1/inbox", "limit", "query", "agency", "/v1/inbox?limit={v}", "number"),
    _p("GET", "/v1/inbox/{delivery_id}", "delivery_id", "path", "agency", "/v1/inbox/{v}", "delivery_id"),
    _p("GET", "/v1/inbox/{delivery_id}/parts/{content_id}", "delivery_id", "path", "agency",
       "/v1/inbox/{v}/parts/att-1", "delivery_id"),
    _p("GET", "/v1/inbox/{delivery_id}/parts/{content_id}", "content_id", "path", "agency",
       f"/v1/inbox/{U}/parts/{{v}}", "content_id"),
    _p("POST", "/v1/inbox/{delivery_id}/ack", "delivery_id", "path", "agency", "/v1/inbox/{v}/ack", "delivery_id"),
    *[_p("GET", "/v1/audit/letters", n, "query", "auditor", f"/v1/audit/letters?{n}={{v}}", k, **kw)
      for n, k, kw in LETTER_QUERY],
    *[_p("GET", "/v1/audit/letters/export", n, "query", "auditor",
         f"/v1/audit/letters/export?format=jsonl&{n}={{v}}", k, **kw) for n, k, kw in LETTER_QUERY if n != "limit"],
    _p("GET", "/v1/audit/letters/export", "format", "query", "auditor", "/v1/audit/letters/export?format={v}",
       "enum"),
    *[_p("GET", "/v1/audit/events", n, "query", "auditor", f"/v1/audit/events?{n}={{v}}", k, **kw)
      for n, k, kw in EVENT_QUERY],
    *[_p("GET", "/v1/audit/events/export", n, "query", "auditor", f"/v1/audit/events/export?format=csv&{n}={{v}}",
         k, **kw) for n, k, kw in EVENT_QUERY if n != "limit"],
    _p("GET", "/v1/audit/events/export", "format", "query", "auditor", "/v1/audit/events/export?format={v}",
       "enum"),
    _p("GET", "/v1/audit/letters/{pk}/evidence.zip", "pk", "path", "auditor", "/v1/audit/letters/{v}/evidence.zip",
       "number", routed=True),
    _p("GET", "/v1/deliveries/dead", "after_at", "query", "operator", f"/v1/deliveries/dead?after_at={{v}}&after_id={U}",
       "time", time="instant"),
    _p("GET", "/v1/deliveries/dead", "after_id", "query", "operator",
       "/v1/deliveries/dead?after_at=2026-01-01T00:00:00Z&after_id={v}", "delivery_id"),
    _p("GET", "/v1/deliveries/dead", "limit", "query", "operator", "/v1/deliveries/dead?limit={v}", "number"),
    _p("POST", "/v1/deliveries/{delivery_id}/requeue", "delivery_id", "path", "operator",
       "/v1/deliveries/{v}/requeue", "delivery_id"),
    # the console (sessions; answers are pages)
    _p("GET", "/console/login", "next", "query", "anonymous", "/console/login?next={v}", "next", free_text=True),
    _p("POST", "/console/login", "username", "form", "anonymous", "/console/login", "username",
       body="username={v}&password=x&csrf={csrf}", free_text=True),
    _p("POST", "/console/login", "password", "form", "anonymous", "/console/login", "password",
       body="username=auditor&password={v}&csrf={csrf}", free_text=True),
    _p("POST", "/console/login", "next", "form", "anonymous", "/console/login", "next",
       body="username=nobody&password=x&csrf={csrf}&next={v}", free_text=True),
    _p("POST", "/console/login", "csrf", "form", "anonymous", "/console/login", "csrf",
       body="username=auditor&password=x&csrf={v}"),
    *[_p("GET", "/console/letters", n, "query", "console-auditor", f"/console/letters?{n}={{v}}", k, **kw)
      for n, k, kw in [("agency", "agency", {}), ("number", "text", {"free_text": True}),
                       ("subject", "text", {"free_text": True}), ("status", "enum", {}), ("type", "enum", {}),
                       ("since", "day", {"time": "day"}), ("until", "day", {"time": "day"})]],
    _p("GET", "/console/letters", "after_at", "query", "console-auditor", "/console/letters?after_at={v}&after_pk=1",
       "time", time="instant"),
    _p("GET", "/console/letters", "after_pk", "query", "console-auditor",
       "/console/letters?after_at=2026-01-01T00:00:00Z&after_pk={v}", "number"),
    _p("GET", "/console/letters/{pk}", "pk", "path", "console-auditor", "/console/letters/{v}", "number", routed=True),
    _p("GET", "/console/dead", "after_at", "query", "console-operator", f"/console/dead?after_at={{v}}&after_id={U}",
       "time", time="instant"),
    _p("GET", "/console/dead", "after_id", "query", "console-operator",
       "/console/dead?after_at=2026-01-01T00:00:00Z&after_id={v}", "delivery_id"),
    _p("GET", "/console/dead", "requeued", "query", "console-operator", "/console/dead?requeued={v}", "delivery_id"),
    _p("POST", "/console/deliveries/{delivery_id}/requeue", "delivery_id", "path", "console-operator",
       "/console/deliveries/{v}/requeue", "delivery_id", body="csrf={csrf}"),
    _p("POST", "/console/deliveries/{delivery_id}/requeue", "csrf", "form", "console-operator",
       f"/console/deliveries/{U}/requeue", "csrf", body="csrf={v}"),
    _p("GET", "/console/directory", "q", "query", "console-operator", "/console/directory?q={v}", "text",
       free_text=True),
    _p("GET", "/console/directory", "kind", "query", "console-operator", "/console/directory?kind={v}", "enum"),
    _p("GET", "/console/directory", "province", "query", "console-operator", "/console/directory?province={v}",
       "province"),
    _p("GET", "/console/certificates", "within", "query", "console-operator", "/console/certificates?within={v}",
       "enum"),
    _p("GET", "/console/directory/{code}", "code", "path", "console-operator", "/console/directory/{v}", "agency"),
    _p("POST", "/console/directory/{code}", "code", "path", "console-admin", "/console/directory/{v}", "agency",
       body="csrf={csrf}&name_th=x&name_en=x"),
    _p("POST", "/console/directory/{code}", "name_th", "form", "console-admin", "/console/directory/1550100198",
       "name", body="csrf={csrf}&name_th={v}&name_en=x&parent=1500000000&kind=district_office", free_text=True),
    _p("POST", "/console/directory/{code}", "csrf", "form", "console-admin", "/console/directory/1550100198",
       "csrf", body="csrf={v}&name_th=x&name_en=x"),
    # the directory API
    _p("GET", "/v1/directory/agencies", "q", "query", "agency", "/v1/directory/agencies?q={v}", "text",
       free_text=True),
    _p("GET", "/v1/directory/agencies", "kind", "query", "agency", "/v1/directory/agencies?kind={v}", "enum"),
    _p("GET", "/v1/directory/agencies", "province", "query", "agency", "/v1/directory/agencies?province={v}",
       "province"),
    _p("GET", "/v1/directory/agencies", "limit", "query", "agency", "/v1/directory/agencies?limit={v}", "number"),
    _p("GET", "/v1/directory/agencies/{code}", "code", "path", "agency", "/v1/directory/agencies/{v}", "agency"),
    _p("GET", "/v1/directory/agencies/{code}", "at", "query", "agency",
       "/v1/directory/agencies/1550100000?at={v}", "number"),
    _p("GET", "/v1/directory/agencies/{code}/history", "code", "path", "operator",
       "/v1/directory/agencies/{v}/history", "agency"),
    _p("GET", "/v1/directory/agencies/{code}/history", "limit", "query", "operator",
       "/v1/directory/agencies/1550100000/history?limit={v}", "number"),
    _p("PUT", "/v1/directory/agencies/{code}", "code", "path", "admin", "/v1/directory/agencies/{v}", "agency"),
    _p("PUT", "/v1/directory/agencies/{code}", "body.name_th", "json", "admin", "/v1/directory/agencies/1550100199",
       "name", body='{{"name_th": "{v}", "name_en": "x", "parent": "1500000000", "kind": "district_office"}}'),
    _p("PUT", "/v1/directory/agencies/{code}", "reason", "json", "admin", "/v1/directory/agencies/1550100199",
       "text", body='{{"name_th": "x", "name_en": "x", "parent": "1500000000", "reason": "{v}"}}', free_text=True),
    _p("POST", "/console/audit/verify", "csrf", "form", "console-auditor", "/console/audit/verify", "csrf",
       body="csrf={v}"),
    _p("POST", "/console/logout", "csrf", "form", "console-auditor", "/console/logout", "csrf", body="csrf={v}"),
    # statistics (scope, period in Gregorian or Buddhist-era days, grain, side), as JSON and as pages
    *[_p("GET", route, n, "query", role, f"{route}?{n}={{v}}", k, **kw)
      for route, role in STATS_ROUTES for n, k, kw in STATS_QUERY],
    _p("GET", "/v1/stats/service-levels", "limit", "query", "auditor", "/v1/stats/service-levels?limit={v}", "number"),
]
#: Routes that read no parameter (the envelope's Content-Type is tested below; its body by the corpus).
NO_PARAMETERS = {("POST", "/v1/messages"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
                 ("GET", "/v1/openapi.json"), ("GET", "/v1/audit/status"), ("GET", "/v1/queues"),
                 ("GET", "/console"), ("GET", "/console/"), ("GET", "/console/queues"), ("GET", "/console/audit"),
                 # the e-CMS endpoint reads a SOAP body: its own edge, tests/ecms and tests/fuzz/test_fuzz_ecms.py
                 ("POST", "/ecms-ws01/service2"),
                 # its URL key is a path segment the SOAP edge reads: hostile keys in tests/ecms/test_admission_keys.py
                 ("POST", "/ecms/{key}/ecms-ws01/service2")}


def _routes(app) -> set[tuple[str, str]]:
    return {(r.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", r.resource.canonical))
            for r in app.router.routes() if r.method != "HEAD"}


def test_every_route_of_the_app_is_enumerated(gateway):
    assert _routes(gateway.client.app) == {p.route for p in PARAMETERS} | NO_PARAMETERS


def test_every_kind_of_parameter_has_a_documented_max_length():
    for p in PARAMETERS:
        assert params.KINDS[p.kind].max_length >= 1, p.kind
        assert params.KINDS[p.kind].description, p.kind


def _too_long(p: Param) -> str:
    n = params.KINDS[p.kind].max_length + 1
    return "1" * n if p.kind in ("agency", "number") else "a" * n


def _cursor(t: str) -> str:
    return base64.urlsafe_b64encode(f"{t}|1".encode()).decode()


def hostile_values(p: Param) -> list[tuple[str, str, bool]]:
    """(label, value as written into the request, strict): strict values must answer 400 naming the field."""
    out = [("nul", NUL, True), ("surrogate", SURROGATE, not p.free_text), ("too-long", _too_long(p), True)]
    if p.where == "json":
        out = [("nul", "\\u0000", True), ("surrogate", "\\ud800", True), ("too-long", _too_long(p), True)]
    if p.time == "instant":
        out += [(f"time-{i}", quote(t, safe=""), True) for i, t in enumerate(EDGE_TIMES)]
    elif p.time == "cursor":
        out += [(f"cursor-{i}", _cursor(t), True) for i, t in enumerate(EDGE_TIMES)]
    elif p.time == "day":  # a year above 2400 is Buddhist era: 9999-12-31 is C.E. 9456, a day like any other
        out += [(f"day-{d}", d, strict) for d, strict in (
            ("0001-01-01", p.name == "since"), ("0000-01-01", True), ("9999-12-31", False), ("2404-02-29", True),
            ("2569-02-29", True), ("2569-13-01", True), ("10000-01-01", True))]
    return out


CASES = [pytest.param(p, label, value, strict, id=f"{p.id}={label}")
         for p in PARAMETERS for label, value, strict in hostile_values(p)]


async def _request(c: Callers, p: Param, value: str) -> Answer:
    headers = {} if p.role == "anonymous" else c.headers(p.role)
    csrf = c.csrf.get(p.role, "")
    if p.role == "anonymous":
        page = await send(c.gw.url, "GET", "/console/login")
        headers["Cookie"] = page.headers["set-cookie"].split(";", 1)[0]
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page.body).group(1).decode()
    target = p.target.replace("{v}", value) if p.where in ("path", "query") else p.target
    body = b""
    if p.where == "json":
        body = p.body.format(v=value).encode()
        headers["Content-Type"] = "application/json"
    elif p.body:
        body = p.body.replace("{csrf}", csrf).replace("{v}", value).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return await send(c.gw.url, p.route[0], target, headers=headers, body=body)


def check(p: Param, answer: Answer, strict: bool) -> None:
    assert answer.status < 500, answer.body[:500]
    console = p.route[1].startswith("/console")
    if p.routed and answer.status == 404:  # no route: aiohttp's 404, answered as not_found
        assert console or answer.json()["code"] == "not_found"
        return
    if not strict and answer.status != 400:
        return
    assert answer.status == 400, (answer.status, answer.body[:500])
    if console:
        text = answer.body.decode("utf-8")
        assert answer.headers["content-type"].startswith("text/html")
        assert "request.invalid" in text and f"({p.name})" in text, text[:2000]
    else:
        body = answer.json()
        assert (body["code"], body.get("field")) == ("request.invalid", p.name), body


@pytest.mark.parametrize("p,label,value,strict", CASES)
async def test_hostile_value_is_refused_with_400_naming_the_parameter(callers, p, label, value, strict):
    before = safety_net_hits(callers.gw)
    answer = await _request(callers, p, value)
    check(p, answer, strict)
    assert safety_net_hits(callers.gw) == before, "the database's safety net caught it, not the edge"


@pytest.mark.parametrize("p", [p for p in PARAMETERS if p.where in ("query", "json", "form")
                               and p.kind not in ("enum", "cursor", "csrf") and p.time is None], ids=lambda p: p.id)
async def test_a_value_of_exactly_the_max_length_is_not_refused_for_its_length(callers, p):
    n = params.KINDS[p.kind].max_length
    # Thai where a body carries it; ASCII in a URL (1000 Thai characters percent-encoded are longer
    # than the request line aiohttp reads: the HTTP layer's 400, not ours)
    value = {"agency": "1" * n, "number": "1" * min(n, 18), "delivery_id": U}.get(
        p.kind, "ก" * n if p.where in ("json", "form") else "a" * n)
    answer = await _request(callers, p, quote(value, safe="") if p.where != "json" else value)
    assert answer.status < 500
    if answer.status == 400 and not p.route[1].startswith("/console"):
        assert "at most" not in answer.json()["message"], answer.json()


# ---------------------------------------------------------------------------- request lines not in UTF-8


@pytest.mark.parametrize("target", [b"/v1/messages/\xed\xa0\x80", b"/v1/messages/\xff\xfe", b"/v1/inbox?limit=\xff",
                                    b"/console/letters?subject=\xff", b"/console/letters/\xff",
                                    b"/v1/audit/letters?subject=\xed\xa0\x80"])
async def test_bytes_that_are_not_utf8_in_the_request_line_are_not_a_5xx(callers, target):
    role = "console-auditor" if target.startswith(b"/console") else (
        "auditor" if target.startswith(b"/v1/audit") else "agency")
    answer = await send(callers.gw.url, "GET", "", raw_target=target, headers=callers.headers(role))
    assert answer.status < 500, answer.body[:300]


# ---------------------------------------------------------------------------- the safety net itself


@pytest.mark.input_safety_net
@pytest.mark.parametrize("error", [asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.DataError])
@pytest.mark.parametrize("target", ["/v1/messages/m-1", "/console/letters?subject=x"])
async def test_a_data_error_the_edge_missed_is_a_400_counted_and_logged_never_a_500(callers, monkeypatch, error,
                                                                                     target):
    async def refused(*_a, **_kw):
        raise error("invalid byte sequence for encoding \"UTF8\": 0x00")

    app = callers.gw.client.app
    monkeypatch.setattr(app[keys.EXCHANGE].status, "message_status", refused)
    monkeypatch.setattr(search, "letters", refused)
    before = safety_net_hits(callers.gw)
    console = target.startswith("/console")
    answer = await send(callers.gw.url, "GET", target, headers=callers.headers(
        "console-auditor" if console else "agency"))
    assert answer.status == 400
    if console:
        assert "request.invalid" in answer.body.decode()
    else:
        assert answer.json()["code"] == "request.invalid"
    assert safety_net_hits(callers.gw) == before + 1
    edge = "console" if console else "api"
    assert f'gateway_input_safety_net_total{{edge="{edge}"}}' in app[keys.METRICS].render().decode()


# ---------------------------------------------------------------------------- headers echoed or hashed


REQUEST_IDS = [b"\xff\xfe\xfd", b"abc\xed\xa0\x80", "เลขคำขอ".encode(), b"a" * 65, b"id with\x01control",
               b"id\x7fdel", b"<script>alert(1)</script>\x80"]


@pytest.mark.parametrize("request_id", REQUEST_IDS, ids=range(len(REQUEST_IDS)))
@pytest.mark.parametrize("target", ["/v1/inbox", "/v1/messages/%00", "/console/letters?since=2404-02-29",
                                    "/nowhere"])
async def test_a_request_id_that_is_not_short_printable_ascii_is_replaced(callers, request_id, target):
    headers = callers.headers("console-auditor" if target.startswith("/console") else "agency")
    if target == "/v1/inbox":
        headers = {}  # refused: 401
    answer = await send(callers.gw.url, "GET", target, headers=headers, raw_headers=b"X-Request-Id: " + request_id
                        + b"\r\n")
    if answer.status == 400 and "x-request-id" not in answer.headers:
        return  # the HTTP layer refused the header itself (control characters), before the application
    assert answer.status < 500, answer.body[:300]
    echoed = answer.headers["x-request-id"]
    assert echoed.encode("latin-1") != request_id and re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
    if not target.startswith("/console"):
        assert answer.json()["request_id"] == echoed


async def test_a_short_printable_request_id_is_echoed(callers):
    answer = await send(callers.gw.url, "GET", "/v1/inbox", headers={"X-Request-Id": "req-42.abc_DEF:9"})
    assert answer.status == 401 and answer.headers["x-request-id"] == "req-42.abc_DEF:9"
    assert answer.json()["request_id"] == "req-42.abc_DEF:9"


@pytest.mark.parametrize("target", ["/healthz", "/v1/inbox", "/console/login"])
async def test_an_unknown_expectation_is_ignored_never_a_417(callers, target):
    """Found by schemathesis: ``Expect: Ne.Ws`` on ``GET /healthz`` got aiohttp's plain-text 417."""
    answer = await send(callers.gw.url, "GET", target, raw_headers=b"Expect: Ne.Ws\r\n")
    assert answer.status in (200, 401), (answer.status, answer.body[:200])


async def test_expect_100_continue_is_still_honoured(callers):
    parts = urlsplit(callers.gw.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                     b"Content-Type: application/xml\r\nConnection: close\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert first.startswith(b"HTTP/1.1 100 Continue"), first
        writer.write(b"{}")
        rest = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert rest.startswith(b"HTTP/1.1 401"), rest[:200]
    finally:
        writer.close()


@pytest.mark.parametrize("token", [b"\xff\xfe", "โทเค็น".encode(), b"tok\xed\xa0\x80"])
async def test_a_bearer_token_that_is_not_ascii_is_an_invalid_token(callers, token):
    answer = await send(callers.gw.url, "GET", "/v1/inbox", raw_headers=b"Authorization: Bearer " + token + b"\r\n")
    assert (answer.status, answer.json()["code"]) == (401, "auth.invalid_token")


# ---------------------------------------------------------------------------- the envelope's media type


@pytest.mark.parametrize("ctype", ["image/svg+xml", "application/soap+xml", "application/xhtml+xml",
                                   "application/atom+xml", "application/xml-dtd", "text/xml-external-parsed-entity",
                                   "application/rss+xml; charset=utf-8", "text/plain", "application/octet-stream"])
async def test_only_the_xml_types_the_readme_lists_are_an_envelope(callers, ctype):
    data = letter_bytes(message_id=f"ct-{uuid.uuid4().hex[:8]}")
    answer = await send(callers.gw.url, "POST", "/v1/messages", body=data,
                        headers={**callers.headers("agency"), "Content-Type": ctype})
    body = answer.json()
    assert (answer.status, body["code"], body["field"]) == (415, "request.unsupported_media_type", "Content-Type")


@pytest.mark.parametrize("ctype", ["application/xml", "text/xml", "application/xml; charset=utf-8",
                                   "Application/XML; charset=UTF-8", "text/xml;charset=utf-8"])
async def test_the_readme_s_xml_types_with_parameters_are_accepted(callers, ctype):
    data = letter_bytes(message_id=f"ct-{uuid.uuid4().hex[:8]}")
    answer = await send(callers.gw.url, "POST", "/v1/messages", body=data,
                        headers={**callers.headers("agency"), "Content-Type": ctype})
    assert answer.status == 202, answer.body[:300]
