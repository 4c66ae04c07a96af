"""Replay the hostile-input corpus against any gateway's native API.

    python -m conformance.hostile.runner https://gw.example --token TOKEN [--other-token T2]
        [--max-body-bytes 67108864] [--signatures-required] [--only NAME ...]

``manifest.json`` lists the entries (see ``make_corpus.py``, which writes it and the
``inputs/``): what to send (file or a ``generate`` rule, Content-Type, Authorization,
extra headers, or a raw HTTP request for Content-Length lies) and what must come back:
the HTTP status, the stable error ``code`` of the JSON body (``null``: the HTTP layer
refuses before the application, so no JSON body is required) and, where given, ``field``.
Status 0 means the server closes the connection without an answer (for a client that
stopped sending half-way). No entry may ever be answered with a 5xx. Prints one line per entry and
``N passed, N failed``; exits non-zero on a failure.

``--token`` authenticates as the profile's caller (agency 0100000000); ``--other-token``
is a token of 1550100000 (entries with ``auth: {"token_of": ...}``; skipped without it).
Entries beyond the native API (``edges.py``: query strings, staff API, console, headers) need
``--auditor-token``, ``--operator-token`` and ``--console-auditor USER:PASSWORD`` (an auditor's
console login); entries whose credentials are not given are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"


def load_manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def entries(names: Iterable[str] | None = None) -> list[dict]:
    wanted = set(names or ())
    return [e for e in load_manifest()["entries"] if not wanted or e["name"] in wanted]


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> dict | None:
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def body_for(entry: dict, *, max_body_bytes: int) -> bytes:
    """The bytes an entry sends: its file, or the body its ``generate`` rule makes."""
    rule = entry.get("generate")
    if rule is None:
        return (HERE / entry["file"]).read_bytes() if entry.get("file") else b""
    if rule["rule"] == "pad_to_limit":
        # a valid envelope followed by white space (well-formed as far as it goes) to limit + n
        base = (HERE / "inputs" / "valid-letter.xml").read_bytes()
        size = max_body_bytes + int(rule["over_limit_by"])
        return base + b" " * max(0, size - len(base))
    raise ValueError(f"unknown generate rule {rule['rule']!r}")


@dataclass
class Staff:
    """Credentials for the entries beyond the native API (any may be missing: those entries are skipped)."""

    auditor_token: str | None = None
    operator_token: str | None = None
    console_auditor: tuple[str, str] | None = None
    """(username, password) of an auditor's console login."""
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Console role -> (Cookie header, CSRF token), made once per run."""


def headers_for(entry: dict, *, token: str, other_token: str | None,
                staff: Staff | None = None) -> dict[str, str] | None:
    """Request headers; None when the entry needs a token that was not given."""
    headers: dict[str, str] = {}
    if entry.get("content_type"):
        headers["Content-Type"] = entry["content_type"]
    auth = entry.get("auth", "token")
    staff = staff or Staff()
    if auth == "token":
        headers["Authorization"] = f"Bearer {token}"
    elif isinstance(auth, dict) and "token_of" in auth:
        if other_token is None:
            return None
        headers["Authorization"] = f"Bearer {other_token}"
    elif isinstance(auth, dict) and "role" in auth:
        role_token = {"auditor": staff.auditor_token, "operator": staff.operator_token}.get(auth["role"])
        if role_token is None:
            return None
        headers["Authorization"] = f"Bearer {role_token}"
    elif isinstance(auth, dict) and "console" in auth:
        session = staff.sessions.get(auth["console"])
        if session is None:
            return None
        headers["Cookie"] = session[0]
    elif isinstance(auth, dict):
        headers.update(auth)
    headers.update(entry.get("headers", {}))
    return headers


async def _chunks(data: bytes, size: int = 64 * 1024):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def send_http(http: aiohttp.ClientSession, base_url: str, entry: dict, body: bytes,
                    headers: dict[str, str]) -> Answer:
    url = URL(base_url.rstrip("/") + entry["endpoint"], encoded=True)  # the endpoint's bytes, as written
    chunked = bool(entry.get("generate", {}).get("chunked"))
    kwargs: dict[str, Any] = {"headers": headers, "skip_auto_headers": ["Content-Type"], "allow_redirects": False}
    if entry["method"] != "GET":
        kwargs["data"] = _chunks(body) if chunked else body
    try:
        async with http.request(entry["method"], url, **kwargs) as resp:
            return Answer(resp.status, await resp.read(), dict(resp.headers))
    except aiohttp.ClientOSError as exc:  # the server answered early (413) and closed while we sent
        raise ConnectionError(f"connection closed while sending: {exc}") from None


async def send_raw(base_url: str, entry: dict, body: bytes, headers: dict[str, str]) -> Answer:
    """One request written by hand (Content-Length that lies, smuggling shapes)."""
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    ctx = ssl.create_default_context() if tls else None
    if ctx is not None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # a conformance probe, not a client
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=ctx)
    try:
        if "content_length" in entry:
            length = str(entry["content_length"])
        else:
            length = str(len(body) + int(entry.get("content_length_extra", 0)))
        lines = [f"{entry['method']} {parts.path.rstrip('/')}{entry['endpoint']} HTTP/1.1",
                 f"Host: {parts.hostname}:{port}", f"Content-Length: {length}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in {**headers, **entry.get("raw_headers", {})}.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        if entry.get("half_close") and writer.can_write_eof():
            writer.write_eof()
        try:
            raw = await asyncio.wait_for(reader.read(), timeout=30)
        except ConnectionResetError:
            raw = b""
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    hdrs = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return Answer(status, _dechunk(rest) if hdrs.get("Transfer-Encoding") == "chunked" else rest, hdrs)


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


def _request_id_problem(entry: dict, answer: Answer) -> str | None:
    """For ``expect.request_id: "new"``: the id sent must not come back, a new one must."""
    sent = {**entry.get("headers", {}), **entry.get("raw_headers", {})}.get("X-Request-Id")
    given = {k.lower(): v for k, v in answer.headers.items()}.get("x-request-id", "")
    if given == sent or not re.fullmatch(r"[0-9a-f]{32}", given):
        return f"X-Request-Id {given!r}: expected a new id, not the one sent"
    body = answer.json()
    if body is not None and body.get("request_id") != given:
        return f"request_id {body.get('request_id')!r} in the body is not the header's {given!r}"
    return None


def _page_problem(expect: dict, answer: Answer) -> str | None:
    """For ``expect.page``: the console's HTML page naming the code and the field."""
    try:
        text = answer.body.decode("utf-8")
    except UnicodeDecodeError:
        return "the page is not UTF-8"
    if "<html" not in text:
        return f"not an HTML page: {answer.body[:300]!r}"
    if expect["code"] not in text:
        return f"the page does not name the code {expect['code']}"
    if "field" in expect and f"({expect['field']})" not in text:
        return f"the page does not name the field ({expect['field']})"
    return None


def check(entry: dict, answer: Answer, *, signatures_required: bool = False) -> str | None:
    """None if the answer is what the entry expects, else what is wrong."""
    expect = entry.get("expect_signatures_required") if signatures_required else None
    expect = expect or entry["expect"]
    if answer.status >= 500:
        return f"HTTP {answer.status} (a 5xx is never right for hostile input): {answer.body[:300]!r}"
    if answer.status != expect["status"]:
        return f"HTTP {answer.status}, expected {expect['status']}: {answer.body[:300]!r}"
    if expect.get("request_id") == "new" and (problem := _request_id_problem(entry, answer)):
        return problem
    if expect["code"] is None:
        return None
    if expect.get("page"):
        return _page_problem(expect, answer)
    body = answer.json()
    if body is None:
        return f"answer is not a JSON object: {answer.body[:300]!r}"
    if body.get("code") != expect["code"]:
        return f"code {body.get('code')!r}, expected {expect['code']!r} ({body.get('message')!r})"
    if "field" in expect and body.get("field") != expect["field"]:
        return f"field {body.get('field')!r}, expected {expect['field']!r}"
    if not body.get("message"):
        return "the error has no message"
    return None


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf(answer: Answer) -> str:
    found = _CSRF.search(answer.body.decode("utf-8", "replace"))
    if found is None:
        raise ConnectionError(f"no CSRF token in the console's page (HTTP {answer.status})")
    return found.group(1)


def _cookie(answer: Answer) -> str:
    return {k.lower(): v for k, v in answer.headers.items()}.get("set-cookie", "").split(";", 1)[0]


async def console_session(http: aiohttp.ClientSession, base_url: str,
                          login: tuple[str, str] | None) -> tuple[str, str]:
    """(Cookie header, CSRF token) of a console session: a fresh one, or logged in as ``login``."""
    get = {"method": "GET", "headers": {}}
    page = await send_http(http, base_url, {**get, "endpoint": "/console/login"}, b"", {})
    cookie, csrf = _cookie(page), _csrf(page)
    if login is None:
        return cookie, csrf
    form = f"username={quote(login[0])}&password={quote(login[1])}&csrf={csrf}&next=%2Fconsole%2Fletters"
    answer = await send_http(http, base_url, {"method": "POST", "endpoint": "/console/login"}, form.encode(),
                             {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    if answer.status != 302:
        raise ConnectionError(f"console login as {login[0]} failed: HTTP {answer.status}")
    cookie = _cookie(answer)
    page = await send_http(http, base_url, {**get, "endpoint": "/console/letters"}, b"", {"Cookie": cookie})
    return cookie, _csrf(page)


async def replay(entry: dict, base_url: str, *, token: str, other_token: str | None = None,
                 max_body_bytes: int = 64 * 1024 * 1024, http: aiohttp.ClientSession | None = None,
                 staff: Staff | None = None) -> Answer | None:
    """Send one entry; None when it cannot be sent with the tokens given."""
    own = http is None
    session = http or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                            connector=aiohttp.TCPConnector(ssl=False))
    try:
        return await _replay(entry, base_url, token=token, other_token=other_token, max_body_bytes=max_body_bytes,
                             http=session, staff=staff or Staff())
    finally:
        if own:
            await session.close()


async def _replay(entry: dict, base_url: str, *, token: str, other_token: str | None, max_body_bytes: int,
                  http: aiohttp.ClientSession, staff: Staff) -> Answer | None:
    console = (entry.get("auth") or {}).get("console") if isinstance(entry.get("auth"), dict) else None
    if console == "anonymous":  # a fresh session for each entry: its cookie and CSRF token
        staff.sessions["anonymous"] = await console_session(http, base_url, None)
    elif console is not None and console not in staff.sessions and staff.console_auditor is not None:
        staff.sessions[console] = await console_session(http, base_url, staff.console_auditor)
    headers = headers_for(entry, token=token, other_token=other_token, staff=staff)
    if headers is None:
        return None
    body = body_for(entry, max_body_bytes=max_body_bytes)
    if console is not None:
        body = body.replace(b"{csrf}", staff.sessions[console][1].encode())
    if entry.get("transport") == "raw":
        return await send_raw(base_url, entry, body, headers)
    for _ in range(5):
        answer = await send_http(http, base_url, entry, body, headers)
        if answer.status != 429:
            return answer
        await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))  # the gateway asked us to wait
    return answer


async def run(url: str, *, token: str, other_token: str | None, max_body_bytes: int, signatures_required: bool,
              only: list[str] | None, staff: Staff | None = None) -> int:
    passed = failed = skipped = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     connector=aiohttp.TCPConnector(ssl=False)) as http:
        for entry in entries(only):
            try:
                answer = await replay(entry, url, token=token, other_token=other_token,
                                      max_body_bytes=max_body_bytes, http=http, staff=staff)
                problem = None if answer is None else check(entry, answer, signatures_required=signatures_required)
            except (TimeoutError, OSError, aiohttp.ClientError) as exc:
                answer, problem = True, f"{type(exc).__name__}: {exc}"
            if answer is None:
                skipped += 1
                print(f"skip {entry['name']}: needs a token or login that was not given")
                continue
            print(f"{'ok  ' if problem is None else 'FAIL'} {entry['name']}{'' if problem is None else ': ' + problem}")
            passed, failed = (passed + 1, failed) if problem is None else (passed, failed + 1)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the gateway's base URL, e.g. https://127.0.0.1:8443")
    parser.add_argument("--token", required=True, help="bearer token of agency 0100000000")
    parser.add_argument("--other-token", help="bearer token of agency 1550100000")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024,
                        help="the gateway's GATEWAY_MAX_BODY_BYTES (for the oversized-body rules)")
    parser.add_argument("--signatures-required", action="store_true",
                        help="the gateway refuses unsigned letters (GATEWAY_REQUIRE_SIGNATURE=true)")
    parser.add_argument("--only", nargs="*", help="entry names to replay")
    parser.add_argument("--auditor-token", help="API token of an auditor (staff API entries)")
    parser.add_argument("--operator-token", help="API token of an operator (operator API entries)")
    parser.add_argument("--console-auditor", metavar="USER:PASSWORD", help="console login of an auditor")
    args = parser.parse_args()
    user, _, password = (args.console_auditor or "").partition(":")
    staff = Staff(auditor_token=args.auditor_token, operator_token=args.operator_token,
                  console_auditor=(user, password) if args.console_auditor else None)
    sys.exit(asyncio.run(run(args.url, token=args.token, other_token=args.other_token,
                             max_body_bytes=args.max_body_bytes, signatures_required=args.signatures_required,
                             only=args.only, staff=staff)))


if __name__ == "__main__":
    main()
