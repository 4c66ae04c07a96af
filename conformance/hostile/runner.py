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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

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


def headers_for(entry: dict, *, token: str, other_token: str | None) -> dict[str, str] | None:
    """Request headers; None when the entry needs a token that was not given."""
    headers: dict[str, str] = {}
    if entry.get("content_type"):
        headers["Content-Type"] = entry["content_type"]
    auth = entry.get("auth", "token")
    if auth == "token":
        headers["Authorization"] = f"Bearer {token}"
    elif isinstance(auth, dict) and "token_of" in auth:
        if other_token is None:
            return None
        headers["Authorization"] = f"Bearer {other_token}"
    elif isinstance(auth, dict):
        headers.update(auth)
    headers.update(entry.get("headers", {}))
    return headers


async def _chunks(data: bytes, size: int = 64 * 1024):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def send_http(http: aiohttp.ClientSession, base_url: str, entry: dict, body: bytes,
                    headers: dict[str, str]) -> Answer:
    url = base_url.rstrip("/") + entry["endpoint"]
    chunked = bool(entry.get("generate", {}).get("chunked"))
    kwargs: dict[str, Any] = {"headers": headers, "skip_auto_headers": ["Content-Type"]}
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


def check(entry: dict, answer: Answer, *, signatures_required: bool = False) -> str | None:
    """None if the answer is what the entry expects, else what is wrong."""
    expect = entry.get("expect_signatures_required") if signatures_required else None
    expect = expect or entry["expect"]
    if answer.status >= 500:
        return f"HTTP {answer.status} (a 5xx is never right for hostile input): {answer.body[:300]!r}"
    if answer.status != expect["status"]:
        return f"HTTP {answer.status}, expected {expect['status']}: {answer.body[:300]!r}"
    if expect["code"] is None:
        return None
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


async def replay(entry: dict, base_url: str, *, token: str, other_token: str | None = None,
                 max_body_bytes: int = 64 * 1024 * 1024, http: aiohttp.ClientSession | None = None) -> Answer | None:
    """Send one entry; None when it cannot be sent with the tokens given."""
    headers = headers_for(entry, token=token, other_token=other_token)
    if headers is None:
        return None
    body = body_for(entry, max_body_bytes=max_body_bytes)
    if entry.get("transport") == "raw":
        return await send_raw(base_url, entry, body, headers)
    own = http is None
    session = http or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                            connector=aiohttp.TCPConnector(ssl=False))
    try:
        for _ in range(5):
            answer = await send_http(session, base_url, entry, body, headers)
            if answer.status != 429:
                return answer
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))  # the gateway asked us to wait
        return answer
    finally:
        if own:
            await session.close()


async def run(url: str, *, token: str, other_token: str | None, max_body_bytes: int, signatures_required: bool,
              only: list[str] | None) -> int:
    passed = failed = skipped = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     connector=aiohttp.TCPConnector(ssl=False)) as http:
        for entry in entries(only):
            try:
                answer = await replay(entry, url, token=token, other_token=other_token,
                                      max_body_bytes=max_body_bytes, http=http)
                problem = None if answer is None else check(entry, answer, signatures_required=signatures_required)
            except (TimeoutError, OSError, aiohttp.ClientError) as exc:
                answer, problem = True, f"{type(exc).__name__}: {exc}"
            if answer is None:
                skipped += 1
                print(f"skip {entry['name']}: needs --other-token")
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
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.url, token=args.token, other_token=args.other_token,
                             max_body_bytes=args.max_body_bytes, signatures_required=args.signatures_required,
                             only=args.only)))


if __name__ == "__main__":
    main()
