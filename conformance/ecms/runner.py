"""Replay the e-CMS conformance vectors against any gateway (or e-CMS node).

    python -m conformance.ecms.runner https://127.0.0.1:8443/ecms-ws01/service2 \
        --token dev-token-ega --cafile <data_dir>/pki/trust/anchors.pem

Each ``vectors/<name>.xml`` is POSTed as ``text/xml``; ``<name>.json`` says what must come
back: success (no ErrorDetail) or one ErrorDetail with ``error_code``, and the HTTP status.
The vectors are byte-for-byte what real clients send, so they name their own agencies: the
caller must be agency 11008 sending to 11002 (both in config/directory.example.json, 11008
with the development token ``dev-token-ega``). A URL without a path gets ``/ecms-ws01/service2``.
``--cafile`` trusts a private CA (the gateway's development root) for HTTPS.

A vector's ``expect.reads`` lists element names (qualified as written, e.g. ``processID``,
``ram:ID``, ``Value``) that must be in the answer: the names real clients read with
``GetElementsByTagName``/``SelectSingleNode``, case-sensitively.

With ``--token-b`` (the token of agency 11002, the receiver) the runner also replays the
conversations in ``conversations/<client>.json``: whole exchanges between 11008 (A) and 11002 (B) as
a real client family writes them (look-ups, letters, pull and delete, notifiers, withdraw and resend,
status, refusals). Each step posts its request as agency A or B after replacing ``{{name}}`` with a
value captured earlier (``capture``: the first ``ProcessID`` of an answer) and ``{{run}}`` with an id
unique to this run (so letter numbers are new each time), then checks the HTTP status, the
ErrorCodes and ``reads``. A step needs the items of the steps before it: the runner first pulls and
deletes whatever waits for 11008 and 11002 (the vectors' letters among them), so point it at a test
gateway, never at one whose queues hold real letters.
Prints one line per vector and step and ``N passed, N failed``; exits non-zero on a failure.

Admission modes (how the gateway lets the client in; only the URL and the transport change, as for a
real client whose operator changes only its URL; see README.md here):

* token: ``--token`` / ``--token-b``;
* client certificate: ``--cert``/``--key`` (and ``--cert-b``/``--key-b``) of each agency;
* URL key: the keyed URL itself, ``https://gw/ecms/<key>/ecms-ws01/service2`` (``gateway ecms-key issue``),
  and ``--url-b`` with 11002's own keyed URL;
* legacy listener by source network: its ``http://`` URL, run from a machine in 11008's registered
  network (``--source`` binds the address) and ``--source-b`` for 11002's; ``--legacy-http`` then expects
  the steps of the letter marked ลับ/ลับมาก to be refused (ECMS-303), as the gateway must over plain HTTP;
* legacy TLS listener: ``--tls10`` offers only TLS 1.0 with RSA key exchange and CBC suites, as an old
  .NET Framework client does, with a keyed URL (or ``--source`` by network).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from lxml import etree
from lxml.builder import ElementMaker

VECTORS = Path(__file__).parent / "vectors"
CONVERSATIONS = Path(__file__).parent / "conversations"
ECMS_PATH = "/ecms-ws01/service2"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


def qualified_names(root: etree._Element) -> set[str]:
    """Every element's name as a .NET reader matches it: ``prefix:local`` as written, or ``local``."""
    names = set()
    for el in root.iter():
        if isinstance(el.tag, str):
            local = etree.QName(el).localname
            names.add(f"{el.prefix}:{local}" if el.prefix else local)
    return names


def check(spec: dict, status: int, body: bytes) -> str | None:
    expect = spec["expect"]
    if status != expect["http_status"]:
        return f"HTTP {status}, expected {expect['http_status']}"
    try:
        root = etree.fromstring(body)
    except etree.XMLSyntaxError:
        return "answer is not XML"
    codes = [e.findtext("ErrorCode") for e in root.iter("ErrorDetail")]
    wanted = [] if expect["ok"] else [expect["error_code"]]
    if codes != wanted:
        return f"ErrorCodes {codes}, expected {wanted}"
    missing = sorted(set(expect.get("reads", ())) - qualified_names(root))
    return f"the answer lacks {missing}, which clients read" if missing else None


def first_process_id(body: bytes) -> str:
    try:
        return next((e.text or "" for e in etree.fromstring(body).iter("ProcessID")), "")
    except etree.XMLSyntaxError:
        return ""


_SOAP = ElementMaker(namespace=SOAP11, nsmap={"SOAP-ENV": SOAP11})
_U = ElementMaker()


async def drain(http: aiohttp.ClientSession, url: str, headers: dict[str, str], *, limit: int = 10_000) -> int:
    """Pull and delete whatever waits for one party, so that a conversation starts on an empty queue
    (the runner's own preparation, not a client's step). Returns how many items it removed."""
    def request(op: etree._Element) -> bytes:
        return etree.tostring(_SOAP.Envelope(_SOAP.Body(op)), xml_declaration=True, encoding="UTF-8")

    for removed in range(limit):
        async with http.post(url, data=request(_U.CorrespondenceLetterInboundRequest()), headers=headers) as resp:
            pid = first_process_id(await resp.read())
        if not pid:
            return removed
        async with http.post(url, data=request(_U.CorrespondenceLetterDeleteRequest(_U.ProcessID(pid))),
                             headers=headers) as resp:
            await resp.read()
    return limit


#: What a step of the letter marked ลับ/ลับมาก expects over the legacy listener's plain HTTP (``--legacy-http``).
_OVER_PLAIN_HTTP = {"ok": False, "error_code": "ECMS-303", "http_status": 200,
                    "reads": ["ErrorCode", "ErrorDescription", "ErrorDetail"]}


async def run_conversation(sessions: dict[str, aiohttp.ClientSession], path: Path, urls: dict[str, str],
                           headers: dict[str, dict[str, str]], *, legacy_http: bool = False) -> tuple[int, int]:
    """Replay one conversation file; ``sessions``/``urls``/``headers`` by party (A, B). Returns (passed, failed).
    ``legacy_http``: over the legacy listener's plain HTTP, where a letter marked ลับ/ลับมาก is refused
    (``over_plain_http: refused``) and the steps that would take it from the queue are left out (``skip``)."""
    for party in ("A", "B"):
        await drain(sessions[party], urls[party], headers[party])
    conversation = json.loads(path.read_text(encoding="utf-8"))
    values: dict[str, str] = {"run": uuid.uuid4().hex[:8]}
    passed = failed = 0
    for i, step in enumerate(conversation["steps"], start=1):
        party = step["as"]
        label = f"{path.stem} {i:02d} {party} {step['name']}"
        over_http = step.get("over_plain_http") if legacy_http else None
        if over_http == "skip":
            print(f"skip {label}: nothing to take, the letter was refused over plain HTTP")
            continue
        if over_http == "refused":
            step = {**step, "expect": _OVER_PLAIN_HTTP, "capture": []}
        data = step["request"]
        for name, value in values.items():
            data = data.replace("{{" + name + "}}", value)
        async with sessions[party].post(urls[party], data=data.encode("utf-8"), headers=headers[party]) as resp:
            body = await resp.read()
            problem = check(step, resp.status, body)
        for name in step.get("capture", ()):
            values[name] = first_process_id(body)
        print(f"{'ok  ' if problem is None else 'FAIL'} {label}{'' if problem is None else ': ' + problem}")
        passed, failed = (passed + 1, failed) if problem is None else (passed, failed + 1)
    return passed, failed


def endpoint(url: str) -> str:
    """The e-CMS endpoint: the URL as given, or the standard path on a bare gateway URL."""
    return url.rstrip("/") + ECMS_PATH if urlsplit(url).path in ("", "/") else url


def _headers(token: str | None) -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", **({"Authorization": f"Bearer {token}"} if token else {})}


def client_tls(cafile: str | None, *, tls10: bool = False, cert: str | None = None,
               key: str | None = None) -> ssl.SSLContext | None:
    """The TLS side of one client: trust ``cafile``; ``tls10``: only TLS 1.0 with RSA key exchange and CBC
    suites (an old .NET Framework client); ``cert``/``key``: its client certificate."""
    if not (cafile or tls10 or cert):
        return None
    ctx = ssl.create_default_context(cafile=cafile)
    if tls10:
        with warnings.catch_warnings():  # TLS 1.0 is deprecated: checking that it still works is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("AES128-SHA:AES256-SHA:@SECLEVEL=0")
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def _session(ctx: ssl.SSLContext | None, source: str | None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=ctx if ctx is not None else True,
                                     local_addr=(source, 0) if source else None)
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), connector=connector)


async def run(url: str, token: str | None, cafile: str | None = None, token_b: str | None = None,
              url_b: str | None = None, *, source: str | None = None, source_b: str | None = None,
              tls10: bool = False, legacy_http: bool = False, cert: tuple[str, str] | None = None,
              cert_b: tuple[str, str] | None = None) -> int:
    """Every vector as agency 11008; with ``token_b``, ``url_b`` (11002's own URL, e.g. one that carries
    its key), ``source_b`` (the address 11002's machine calls from) or ``cert_b`` the conversations too."""
    passed = failed = 0
    url = endpoint(url)
    headers = _headers(token)
    sessions = {"A": _session(client_tls(cafile, tls10=tls10, cert=cert[0] if cert else None,
                                         key=cert[1] if cert else None), source),
                "B": _session(client_tls(cafile, tls10=tls10, cert=cert_b[0] if cert_b else None,
                                         key=cert_b[1] if cert_b else None), source_b)}
    try:
        http = sessions["A"]
        for path in sorted(VECTORS.glob("*.xml")):
            spec = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            async with http.post(url, data=path.read_bytes(), headers=headers) as resp:
                problem = check(spec, resp.status, await resp.read())
            print(f"{'ok  ' if problem is None else 'FAIL'} {path.stem}{'' if problem is None else ': ' + problem}")
            passed, failed = (passed + 1, failed) if problem is None else (passed, failed + 1)
        if token_b or url_b or source_b or cert_b:
            urls = {"A": url, "B": endpoint(url_b) if url_b else url}
            party_headers: dict[str, Any] = {"A": headers, "B": _headers(token_b)}
            for path in sorted(CONVERSATIONS.glob("*.json")):
                p, f = await run_conversation(sessions, path, urls, party_headers, legacy_http=legacy_http)
                passed, failed = passed + p, failed + f
    finally:
        for session in sessions.values():
            await session.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--token", help="bearer token of agency 11008 (example directory: dev-token-ega)")
    parser.add_argument("--cafile", help="PEM file of the CA to trust for HTTPS (e.g. DATA_DIR/pki/trust/anchors.pem)")
    parser.add_argument("--token-b", help="bearer token of agency 11002 (example directory: dev-token-ops-ict): "
                        "also replay the client conversations")
    parser.add_argument("--url-b", help="11002's own e-CMS URL (e.g. https://gw/ecms/<its key>/ecms-ws01/service2): "
                        "also replay the client conversations")
    parser.add_argument("--source", help="local address to call from as 11008 (legacy listener: in its network)")
    parser.add_argument("--source-b", help="local address to call from as 11002 (legacy listener: in its network): "
                        "also replay the client conversations")
    parser.add_argument("--cert", nargs=2, metavar=("PEM", "KEY"), help="11008's TLS client certificate and key")
    parser.add_argument("--cert-b", nargs=2, metavar=("PEM", "KEY"), help="11002's TLS client certificate and key: "
                        "also replay the client conversations")
    parser.add_argument("--tls10", action="store_true",
                        help="offer only TLS 1.0 with RSA key exchange and CBC suites, as an old .NET client")
    parser.add_argument("--legacy-http", action="store_true",
                        help="the URL is the legacy listener's plain HTTP: a letter marked ลับ/ลับมาก must be refused")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.url, args.token, args.cafile, token_b=args.token_b, url_b=args.url_b,
                             source=args.source, source_b=args.source_b, tls10=args.tls10,
                             legacy_http=args.legacy_http, cert=args.cert, cert_b=args.cert_b)))


if __name__ == "__main__":
    main()
