"""The properties every fuzzed request must have, and where a failing example is kept.

* the gateway answers (no crash, no dropped connection) and never with a 5xx;
* a refusal is a JSON body whose ``code`` is in the README's error table;
* a refusal stores nothing: messages, deliveries, receipts and audit events are unchanged.

A failing request body is written to ``test-artifacts/fuzz/`` (named by its SHA-256) and the
path is in the assertion message, next to Hypothesis's own falsifying example.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache

from tests.support import ROOT

ARTIFACTS = ROOT / "test-artifacts" / "fuzz"


@cache
def documented_codes() -> tuple[frozenset[str], tuple[str, ...]]:
    """(codes, prefixes) of the README's error table; ``auth.certificate.*`` is a prefix."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| code | status | meaning |", 1)[1].split("\n\n", 1)[0]
    codes, prefixes = set(), []
    for line in table.splitlines():
        first_cell = line.split("|")[1] if line.count("|") > 2 else ""
        for code in re.findall(r"`([a-z0-9_.*]+)`", first_cell):
            (prefixes.append(code[:-1]) if code.endswith("*") else codes.add(code))
    assert "envelope.not_xml" in codes and prefixes, "README error table not found"
    return frozenset(codes), tuple(prefixes)


def is_documented(code: str) -> bool:
    codes, prefixes = documented_codes()
    return code in codes or code.startswith(prefixes)


def keep(body: bytes, what: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{what}-{hashlib.sha256(body).hexdigest()[:16]}.bin"
    path.write_bytes(body)
    return str(path.relative_to(ROOT))


def refusal_code(status: int, raw: bytes, body: bytes, what: str) -> str | None:
    """None for an acceptance (200/202); the documented code of a refusal; AssertionError otherwise."""
    where = lambda: keep(body, what)  # noqa: E731 (only written when something is wrong)
    assert status < 500, f"HTTP {status} for {where()}: {raw[:300]!r}"
    if status in (200, 202):
        return None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise AssertionError(f"HTTP {status} without a JSON error for {where()}: {raw[:300]!r}") from None
    code = answer.get("code") if isinstance(answer, dict) else None
    assert isinstance(code, str) and is_documented(code), f"undocumented code {code!r} for {where()}: {answer}"
    assert answer.get("message"), f"no message for {where()}: {answer}"
    return code
