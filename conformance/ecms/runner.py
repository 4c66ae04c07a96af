"""Replay the e-CMS conformance vectors against any gateway (or e-CMS node).

    python -m conformance.ecms.runner https://127.0.0.1:8443/ecms-ws01/service2 \
        --token dev-token-ega --cafile <data_dir>/pki/trust/anchors.pem

Each ``vectors/<name>.xml`` is POSTed as ``text/xml``; ``<name>.json`` says what must come
back: success (no ErrorDetail) or one ErrorDetail with ``error_code``, and the HTTP status.
The vectors are byte-for-byte what real clients send, so they name their own agencies: the
caller must be agency 11008 sending to 11002 (both in config/directory.example.json, 11008
with the development token ``dev-token-ega``). A URL without a path gets ``/ecms-ws01/service2``.
``--cafile`` trusts a private CA (the gateway's development root) for HTTPS.
Prints one line per vector and ``N passed, N failed``; exits non-zero on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from lxml import etree

VECTORS = Path(__file__).parent / "vectors"
ECMS_PATH = "/ecms-ws01/service2"


def check(spec: dict, status: int, body: bytes) -> str | None:
    expect = spec["expect"]
    if status != expect["http_status"]:
        return f"HTTP {status}, expected {expect['http_status']}"
    try:
        codes = [e.findtext("ErrorCode") for e in etree.fromstring(body).iter("ErrorDetail")]
    except etree.XMLSyntaxError:
        return "answer is not XML"
    wanted = [] if expect["ok"] else [expect["error_code"]]
    return None if codes == wanted else f"ErrorCodes {codes}, expected {wanted}"


def endpoint(url: str) -> str:
    """The e-CMS endpoint: the URL as given, or the standard path on a bare gateway URL."""
    return url.rstrip("/") + ECMS_PATH if urlsplit(url).path in ("", "/") else url


async def run(url: str, token: str | None, cafile: str | None = None) -> int:
    passed = failed = 0
    url = endpoint(url)
    headers = {"Content-Type": "text/xml; charset=utf-8", **({"Authorization": f"Bearer {token}"} if token else {})}
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=cafile)) if cafile else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), connector=connector) as http:
        for path in sorted(VECTORS.glob("*.xml")):
            spec = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            async with http.post(url, data=path.read_bytes(), headers=headers) as resp:
                problem = check(spec, resp.status, await resp.read())
            print(f"{'ok  ' if problem is None else 'FAIL'} {path.stem}{'' if problem is None else ': ' + problem}")
            passed, failed = (passed + 1, failed) if problem is None else (passed, failed + 1)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--token", help="bearer token of agency 11008 (example directory: dev-token-ega)")
    parser.add_argument("--cafile", help="PEM file of the CA to trust for HTTPS (e.g. DATA_DIR/pki/trust/anchors.pem)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.url, args.token, args.cafile)))


if __name__ == "__main__":
    main()
