"""Defects of issue 13 that the API fuzzer finds and other engineers are fixing, matched precisely.

A failing request of the fuzzer is an instance of a known defect only if its operation is listed
for it (:data:`KNOWN`) and the request and answer have the defect's shape (a predicate below):
the fuzzer then counts it and goes on hunting, and only any other failure fails the run. The
defects themselves are pinned by the exact requests in :data:`CASES`, each a test marked
``xfail(strict=False)`` naming its class: they pass (XPASS) once the fix lands, and then their
mark and the operation's entry in :data:`KNOWN` go, so the fuzzer holds the line from there on.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from schemathesis import Case, Response

from tests.support import CMI


@dataclass(frozen=True)
class Defect:
    name: str
    """The issue's class, as the xfail reason gives it."""
    matches: Callable[[Case, Response | None], bool]
    """Whether a failing request (and its answer; None: the answer broke off) is an instance."""


def _strings(value: object) -> Iterator[str]:
    """Every string in a request part (nested lists and objects included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _cursor(value: str) -> str:
    """A keyset cursor's decoded text (``after`` of the auditor API), or ``value`` itself."""
    try:
        return base64.urlsafe_b64decode(value.encode() + b"==").decode()
    except (ValueError, UnicodeDecodeError):
        return value


def _out_of_range(value: str) -> bool:
    """A time Python reads but that has no UTC form (PostgreSQL and the driver cannot hold it)."""
    try:
        dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    except ValueError:
        return False
    except OverflowError:
        return True
    return False


def _content_type(response: Response) -> str:
    return (response.headers.get("content-type") or [""])[0]


def _internal_error(response: Response | None) -> bool:
    """An answer cut off after its header, or the error middleware's 500 for a bug (JSON ``internal``)."""
    if response is None:
        return True
    return response.status_code == 500 and _content_type(response).startswith("application/json") \
        and response.json().get("code") == "internal"


def _unchecked_input(case: Case, response: Response | None) -> bool:
    values = [unquote(v) for v in _strings(case.path_parameters)]  # (schemathesis sends them quoted)
    values += [v for part in (case.query, case.body) for v in _strings(part)]
    values += [piece for v in values for piece in _cursor(v).split("|")]
    return _internal_error(response) and any("\x00" in v or _out_of_range(v) for v in values)


def _echoed_header(case: Case, response: Response | None) -> bool:
    """aiohttp's own plain-text 500: the refusal could not carry the request id back."""
    rid = case.headers.get("X-Request-Id") if case.headers else None
    return response is not None and response.status_code == 500 and rid is not None \
        and _content_type(response).startswith("text/plain") and not (rid.isascii() and rid.isprintable())


UNCHECKED_INPUT = Defect("issue 13 class 1: input reaches PostgreSQL unchecked (a NUL byte, or a time at the edge "
                         "of the calendar, in a parameter, a body or a cursor) -> 500, or a streamed 200 cut off",
                         _unchecked_input)
ECHOED_HEADER = Defect("issue 13 class 3: an X-Request-Id that is not printable ASCII is echoed into a refusal "
                       "-> aiohttp's plain-text 500", _echoed_header)

#: Class 1: the operations that read a string or a time into a query. Class 3: every operation
#: that can refuse (the public ones never do).
UNCHECKED_INPUT_OPS = ("GET /v1/messages/{message_id}", "POST /v1/messages/{message_id}/withdraw",
                       "GET /v1/messages/{message_id}/stamped/{recipient}", "GET /v1/audit/letters",
                       "GET /v1/audit/letters/export", "GET /v1/audit/events", "GET /v1/audit/events/export",
                       "GET /v1/deliveries/dead")
PUBLIC_OPS = ("GET /healthz", "GET /readyz", "GET /metrics", "GET /v1/openapi.json")


def known(labels: list[str]) -> dict[str, tuple[Defect, ...]]:
    """Operation label -> the known defects a failure there may be an instance of."""
    return {label: (UNCHECKED_INPUT,) * (label in UNCHECKED_INPUT_OPS) + (ECHOED_HEADER,)
            for label in labels if label not in PUBLIC_OPS}


@dataclass(frozen=True)
class KnownCase:
    """One failing request as the fuzzer found it (sent as the operation's own role)."""

    defect: Defect
    method: str
    path: str
    path_parameters: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    media_type: str | None = None
    role: str = "own"
    """Who sends it: ``own`` (the operation's role) or ``nobody`` (a refusal, for class 3)."""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


EDGE_LOW, EDGE_HIGH = "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"
CURSOR_LOW = base64.urlsafe_b64encode(f"{EDGE_LOW}|1".encode()).decode()
BAD_ID = {"X-Request-Id": "\xff\xfe"}  # sent as Latin-1 bytes: not UTF-8
CASES = [
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/messages/{message_id}", {"message_id": "x\x00"}),
    KnownCase(UNCHECKED_INPUT, "POST", "/v1/messages/{message_id}/withdraw", {"message_id": "\x00"}, body={},
              media_type="application/json"),
    KnownCase(UNCHECKED_INPUT, "POST", "/v1/messages/{message_id}/withdraw", {"message_id": "seeded-2"},
              body={"recipients": ["\x00"]}, media_type="application/json"),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/messages/{message_id}/stamped/{recipient}",
              {"message_id": "\x00", "recipient": CMI}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"subject": "\x00"}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"number": "x\x00"}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"since": EDGE_LOW}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"after": CURSOR_LOW}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters/export", query={"format": "jsonl", "subject": "\x00"}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/events", query={"kind": "\x00"}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/events", query={"until": EDGE_HIGH}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/audit/events/export", query={"agency": "\x00"}),
    KnownCase(UNCHECKED_INPUT, "GET", "/v1/deliveries/dead",
              query={"after_at": EDGE_LOW, "after_id": "3b009f98-e056-3d48-8328-d387e000e84d"}),
    KnownCase(ECHOED_HEADER, "GET", "/v1/queues", headers=BAD_ID, role="nobody"),
    KnownCase(ECHOED_HEADER, "POST", "/v1/messages", headers=BAD_ID, body="<data></data>",
              media_type="application/xml"),
    KnownCase(ECHOED_HEADER, "GET", "/v1/inbox/{delivery_id}", {"delivery_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd"},
              headers=BAD_ID),
    KnownCase(ECHOED_HEADER, "GET", "/v1/audit/letters/export", headers=BAD_ID, role="nobody"),
]
