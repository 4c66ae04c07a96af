"""Property tests of the two edges the OpenAPI document does not describe: the console and e-CMS.

Hostile values (NUL bytes, Buddhist-era dates that do not exist, times at the edges of the
calendar, int64 bounds, long Thai text, random Unicode) go into every query parameter, path
parameter, form field and header of the staff console, as each role and as nobody, and into
the fields and headers of well-formed e-CMS requests. The oracle is the fuzzer's:

* console: no 5xx; an error (4xx) is a page (``text/html``), never JSON or plain text;
* e-CMS: no server fault; a refusal is SOAP with ``ErrorDetail{ErrorCode, ErrorDescription}``
  and a documented code (HTTP 200, or 413), or, for input that is not e-CMS at all, a SOAP
  1.1 *Client* fault with HTTP 500 (ECMS-100..104 and 107, as SOAP 1.1 and gateway/ecms/CODES.md say).

The requests these tests found answered wrongly while issue 13 was open are pinned in
:data:`FOUND`, each naming its class.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from yarl import URL

from gateway.core.ecmswire import soap
from gateway.ecms.codes import CODES
from gateway.ecms.settings import ECMS_PATH
from tests.fuzz.conftest import Gateway, examples
from tests.fuzz.staff import PASSWORD, STAFF, staff_tokens
from tests.fuzz.test_fuzz_ecms import HEADERS as ECMS_HEADERS
from tests.fuzz.test_fuzz_ecms import NOT_ECMS_AT_ALL, TREES, vector

# ---------------------------------------------------------------------------- hostile values

EDGE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01", "9999-12-31"]
#: Buddhist-era dates: 2404 and 2567 are CE 1861 and 2024 (2404-02-29 does not exist, 2567-02-29 does).
BE_DATES = ["2404-02-29", "2444-02-29", "2567-02-29", "2566-02-29", "2569-13-01", "2569-11-31", "0000-01-01", "2400-02-29"]
SPECIAL = st.sampled_from(["\x00", "x\x00", "ก\x00", *EDGE_TIMES, *BE_DATES, "9223372036854775808", "-1",
                           "ก" * 300, "A" * 2000, "%00", "\u202e", "' OR 1=1--", "../../etc/passwd", "<script>x</script>"])
HOSTILE = st.one_of(  # half of the values from the list an attacker tries first
    SPECIAL, SPECIAL, SPECIAL, SPECIAL,
    st.text(max_size=30),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.integers().map(str),
)
#: Header values an attacker sends (requests of aiohttp carry them as Latin-1 or UTF-8 bytes).
HOSTILE_HEADER = st.sampled_from(["\xff\xfe", "caf\xe9", "x" * 300, "ok-id", "ก"])


def fail(problem: str, path: str, values: Mapping[str, str], status: int, ctype: str, body: bytes) -> NoReturn:
    raise AssertionError(f"{problem}: {status} {ctype} for {path} {dict(values)!r}: {body[:300]!r}")


# ---------------------------------------------------------------------------- console


def form_csrf(page: str) -> str:
    """The CSRF token of the first form on a console page."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[:300]
    return found.group(1)


@dataclass
class Console:
    gateway: Gateway
    sessions: dict[str, aiohttp.ClientSession]
    """Role (``nobody`` included) -> a session logged in as that role's user."""


async def _login(url: str, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    if username == "nobody":
        return session
    page = await (await session.get("/console/login")).text()
    csrf = form_csrf(page)
    r = await session.post("/console/login", data={"username": username, "password": PASSWORD, "csrf": csrf,
                                                   "next": "/console/letters"}, allow_redirects=False)
    assert r.status == 302, (username, r.status)
    return session


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def console(gateway: Gateway) -> AsyncIterator[Console]:
    await staff_tokens(gateway.pool)
    sessions = {name: await _login(gateway.url, name) for name in ["nobody", *STAFF]}
    yield Console(gateway, sessions)
    for s in sessions.values():
        await s.close()


async def _csrf(session: aiohttp.ClientSession) -> str:
    page = await (await session.get("/console/audit")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    return found.group(1) if found else ""


def check_console(path: str, values: Mapping[str, str], status: int, ctype: str, body: bytes) -> None:
    if status >= 500:
        fail("a 5xx", path, values, status, ctype, body)
    elif status >= 400 and not ctype.startswith("text/html"):
        fail("an error that is not a page", path, values, status, ctype, body)


async def console_get(console: Console, who: str, path: str, query: dict[str, str],
                      headers: dict[str, str]) -> None:
    url = URL(path, encoded=True).with_query(query) if query else URL(path, encoded=True)
    async with console.sessions[who].get(url, headers=headers, allow_redirects=False) as r:
        body = await r.read()
        check_console(path, {**query, **headers}, r.status, r.headers.get("Content-Type", ""), body)


#: Console pages and the query parameters each reads.
PAGES = {
    "/console/letters": ["agency", "since", "until", "number", "subject", "status", "type", "after_at", "after_pk"],
    "/console/dead": ["after_at", "after_id", "requeued"],
    "/console/directory": ["q"],
    "/console/queues": [], "/console/audit": [], "/console": [], "/console/login": ["next"],
}
WHO = st.sampled_from(["nobody", *STAFF])
LOGGED_IN = st.sampled_from([*STAFF] * 3 + ["nobody"])


@pytest.mark.parametrize("page", sorted(PAGES))
@settings(max_examples=examples(40))
@given(who=LOGGED_IN, data=st.data())
async def test_console_pages_with_hostile_queries(console: Console, who: str, page: str, data: st.DataObject) -> None:
    names = PAGES[page]
    # one or two parameters: more, and one that is merely invalid hides what the others would reach
    query = data.draw(st.dictionaries(st.sampled_from(names), HOSTILE, min_size=1, max_size=2)) if names else {}
    headers = data.draw(st.dictionaries(st.just("X-Request-Id"), HOSTILE_HEADER, max_size=1))
    await console_get(console, who, page, query, headers)


@settings(max_examples=examples(30))
@given(who=WHO, pk=st.one_of(st.integers(min_value=0).map(str), st.sampled_from(["9223372036854775808", "0" * 40])))
async def test_console_letter_page_with_hostile_ids(console: Console, who: str, pk: str) -> None:
    await console_get(console, who, f"/console/letters/{pk}", {}, {})


async def test_login_with_a_nul_username_is_a_page(console: Console) -> None:
    """(Before the login property test, whose failed logins warm up the throttle for this address.)"""
    async with aiohttp.ClientSession(base_url=console.gateway.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        page = await (await s.get("/console/login")).text()
        csrf = form_csrf(page)
        async with s.post("/console/login", data={"username": "a\x00", "password": "x" * 10, "csrf": csrf},
                          allow_redirects=False) as r:
            status, ctype = r.status, r.headers.get("Content-Type", "")
    assert status < 500 and (status < 400 or ctype.startswith("text/html")), (status, ctype)


@settings(max_examples=examples(40))
@given(username=HOSTILE, password=HOSTILE, next_=HOSTILE, good_csrf=st.booleans())
async def test_console_login_form_with_hostile_fields(console: Console, username: str, password: str, next_: str,
                                                      good_csrf: bool) -> None:
    async with aiohttp.ClientSession(base_url=console.gateway.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        page = await (await s.get("/console/login")).text()
        csrf = form_csrf(page) if good_csrf else "x"
        form = {"username": username, "password": password, "next": next_, "csrf": csrf}
        async with s.post("/console/login", data=form, allow_redirects=False) as r:
            body = await r.read()
            check_console("/console/login", {"username": username}, r.status, r.headers.get("Content-Type", ""), body)


@settings(max_examples=examples(40))
@given(who=WHO, action=st.sampled_from(["/console/deliveries/{}/requeue", "/console/audit/verify", "/console/logout"]),
       delivery=st.one_of(st.uuids().map(str), HOSTILE.filter(lambda v: "/" not in v and "?" not in v and "#" not in v)),
       good_csrf=st.booleans())
async def test_console_forms_with_hostile_ids(console: Console, who: str, action: str, delivery: str,
                                             good_csrf: bool) -> None:
    # a logout ends the session: it is tried from a session of its own (logging back in many times would
    # meet the login throttle, which the login form test has warmed up for this address)
    own = action == "/console/logout"
    session = await _login(console.gateway.url, "nobody") if own else console.sessions[who]
    try:
        csrf = await _csrf(session) if good_csrf else "x"
        path = action.format(quote(delivery, safe="") if delivery else "x")
        async with session.post(URL(path, encoded=True), data={"csrf": csrf}, allow_redirects=False) as r:
            body = await r.read()
            check_console(action, {"delivery": delivery}, r.status, r.headers.get("Content-Type", ""), body)
    finally:
        if own:
            await session.close()


# ---------------------------------------------------------------------------- e-CMS

def check_ecms(values: Mapping[str, str], status: int, ctype: str, body: bytes) -> list[str]:
    if status not in (200, 413, 500):
        fail("a status e-CMS does not answer", ECMS_PATH, values, status, ctype, body)
    try:
        answer = etree.fromstring(body)
    except etree.XMLSyntaxError:
        fail("an answer that is not SOAP", ECMS_PATH, values, status, ctype, body)
    codes = [e.findtext("ErrorCode") or "" for e in answer.iter("ErrorDetail")]
    assert all(c in CODES for c in codes), f"undocumented {codes} for {dict(values)!r}"
    assert "ECMS-500" not in codes and "ECMS-503" not in codes, f"server fault {codes} for {dict(values)!r}: {body[:500]!r}"
    if status == 500:
        fault = answer.find(f"{{{soap.SOAP11_NS}}}Body/{{{soap.SOAP11_NS}}}Fault")
        assert fault is not None and fault.findtext("faultcode") == "SOAP-ENV:Client", f"{dict(values)!r}: {body[:500]!r}"
        assert len(codes) == 1 and codes[0] in NOT_ECMS_AT_ALL, f"{codes} for {dict(values)!r}"
    return codes


#: XML-safe hostile text (lxml refuses NUL and the other C0 controls in a tree; the raw bytes are tried below).
XML_HOSTILE = HOSTILE.map(lambda v: "".join(c for c in v if c in "\t\n\r" or (ord(c) >= 0x20 and c not in "\ufffe\uffff"
                                                                                 and not 0xD800 <= ord(c) <= 0xDFFF)))


@settings(max_examples=examples(80))
@given(source=st.sampled_from(TREES), picks=st.lists(st.tuples(st.integers(min_value=0), XML_HOSTILE), min_size=1,
                                                      max_size=3),
       headers=st.fixed_dictionaries({}, optional={
           "X-Request-Id": HOSTILE_HEADER, "SOAPAction": HOSTILE_HEADER,
           "Authorization": st.sampled_from(["Bearer t-11002", "Bearer nope", "Basic eA==", ""]),
           "Content-Type": st.sampled_from(["text/xml", "application/soap+xml", "text/plain", "text/xml; charset=TIS-620",
                                            "image/svg+xml"])}))
async def test_ecms_fields_and_headers_with_hostile_values(gateway: Gateway, source: str, picks: list[tuple[int, str]],
                                                           headers: dict[str, str]) -> None:
    root = etree.fromstring(vector(source))
    leaves = [el for el in root.iter() if isinstance(el.tag, str) and len(el) == 0]
    for pick, text in picks:
        leaves[pick % len(leaves)].text = text
    sent = {**ECMS_HEADERS, **headers}
    async with gateway.client.post(ECMS_PATH, data=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                                   headers=sent) as r:
        check_ecms(headers, r.status, r.headers.get("Content-Type", ""), await r.read())


@settings(max_examples=examples(30))
@given(source=st.sampled_from(TREES), at=st.integers(min_value=0), raw=st.sampled_from(
    [b"\x00", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"&#0;", b"&#xD800;", b"\x1b"]))
async def test_ecms_raw_bytes_no_parser_accepts(gateway: Gateway, source: str, at: int, raw: bytes) -> None:
    data = bytearray(vector(source))
    start = data.index(b"<soap", 0) if b"<soap" in data else 0
    i = start + at % (len(data) - start)
    async with gateway.client.post(ECMS_PATH, data=bytes(data[:i]) + raw + bytes(data[i:]), headers=ECMS_HEADERS) as r:
        check_ecms({"raw": repr(raw)}, r.status, r.headers.get("Content-Type", ""), await r.read())


# ---------------------------------------------------------------------------- found, pinned


@dataclass(frozen=True)
class Found:
    """A request the property tests found answered wrongly (issue 13), kept as a regression test."""

    why: str
    who: str
    path: str
    query: dict[str, str]


UNCHECKED = "class 1: a NUL or a time at the edge of the calendar reached PostgreSQL (500)"
BE_DATE = "class 2: a Buddhist-era date that does not exist (500)"
NOT_A_PAGE = "fuzzing: a wrong role or an unknown letter answered aiohttp's plain text, not a page"
FOUND = [
    Found(UNCHECKED, "auditor", "/console/letters", {"subject": "\x00"}),
    Found(UNCHECKED, "admin", "/console/letters", {"agency": "\x00"}),
    Found(UNCHECKED, "operator", "/console/letters", {"number": "x\x00"}),
    Found(UNCHECKED, "auditor", "/console/letters", {"after_at": "0001-01-01T00:00:00+14:00", "after_pk": "1"}),
    Found(BE_DATE, "clerk", "/console/letters", {"since": "2404-02-29"}),
    Found(BE_DATE, "auditor", "/console/letters", {"until": "2444-02-29"}),  # CE 1901
    Found(NOT_A_PAGE, "clerk", "/console/queues", {}),
    Found(NOT_A_PAGE, "auditor", "/console/letters/999999", {}),
    Found(NOT_A_PAGE, "auditor", "/console/no-such-page", {}),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.path} {c.query} as {c.who}") for c in FOUND])
async def test_found_console_requests_answer_a_page(console: Console, case: Found) -> None:
    url = URL(case.path).with_query(case.query) if case.query else URL(case.path)
    async with console.sessions[case.who].get(url, allow_redirects=False) as r:
        body, status, ctype = await r.read(), r.status, r.headers.get("Content-Type", "")
    assert 400 <= status < 500 and ctype.startswith("text/html"), (case.why, status, ctype, body[:200])
    assert b"<h1" in body, body[:300]


async def test_a_form_with_a_wrong_csrf_token_answers_a_403_page_in_thai(console: Console) -> None:
    async with console.sessions["auditor"].post("/console/audit/verify", data={"csrf": "wrong"},
                                                 allow_redirects=False) as r:
        body = (await r.read()).decode()
        assert (r.status, r.content_type) == (403, "text/html"), body[:300]
    assert "แบบฟอร์มหมดอายุ" in body and "auth.csrf" in body
