"""Replay the e-CMS conformance vectors against any gateway (or e-CMS node).

    python -m conformance.ecms.runner https://gw.example/ecms-ws01/service2 --token dev-token

Each ``vectors/<name>.xml`` is POSTed as ``text/xml``; ``<name>.json`` says what must come
back: success (no ErrorDetail) or one ErrorDetail with ``error_code``, and the HTTP status.
Vectors expect the caller to be agency 11008 sending to 11002 (see tests/ecms/conftest.py).
Prints one line per vector and ``N passed, N failed``; exits non-zero on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp
from lxml import etree

VECTORS = Path(__file__).parent / "vectors"


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


async def run(url: str, token: str | None) -> int:
    passed = failed = 0
    headers = {"Content-Type": "text/xml; charset=utf-8", **({"Authorization": f"Bearer {token}"} if token else {})}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
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
    parser.add_argument("--token")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.url, args.token)))


if __name__ == "__main__":
    main()
