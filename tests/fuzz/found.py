"""Requests the API fuzzer found answered wrongly while issue 13 was open, kept as regression tests.

Each names the issue's class it was an instance of; :func:`tests.fuzz.test_schemathesis.test_found_requests`
sends them (as the operation's own role, or as nobody for a refusal) and holds them to the fuzzer's oracle.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from tests.support import CMI

UNCHECKED_INPUT = ("class 1: input reached PostgreSQL unchecked (a NUL byte, or a time at the edge of the calendar, "
                   "in a parameter, a body or a cursor) -> 500, or a streamed 200 cut off")
ECHOED_HEADER = "class 3: an X-Request-Id that is not printable ASCII was echoed into a refusal -> plain-text 500"
LONG_QUERY = ("fuzzing: a query longer than aiohttp's 8190-byte request line (a 1000-character Thai search) "
              "-> the HTTP parser's plain-text 400")


@dataclass(frozen=True)
class FoundCase:
    """One request as the fuzzer found it."""

    why: str
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
    FoundCase(LONG_QUERY, "GET", "/v1/audit/letters", query={"subject": "ก" * 1000, "number": "\U0001c02c" * 1000}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/messages/{message_id}", {"message_id": "x\x00"}),
    FoundCase(UNCHECKED_INPUT, "POST", "/v1/messages/{message_id}/withdraw", {"message_id": "\x00"}, body={},
              media_type="application/json"),
    FoundCase(UNCHECKED_INPUT, "POST", "/v1/messages/{message_id}/withdraw", {"message_id": "seeded-2"},
              body={"recipients": ["\x00"]}, media_type="application/json"),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/messages/{message_id}/stamped/{recipient}",
              {"message_id": "\x00", "recipient": CMI}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"subject": "\x00"}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"number": "x\x00"}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"since": EDGE_LOW}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters", query={"after": CURSOR_LOW}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/letters/export", query={"format": "jsonl", "subject": "\x00"}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/events", query={"kind": "\x00"}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/events", query={"until": EDGE_HIGH}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/audit/events/export", query={"agency": "\x00"}),
    FoundCase(UNCHECKED_INPUT, "GET", "/v1/deliveries/dead",
              query={"after_at": EDGE_LOW, "after_id": "3b009f98-e056-3d48-8328-d387e000e84d"}),
    FoundCase(ECHOED_HEADER, "GET", "/v1/queues", headers=BAD_ID, role="nobody"),
    FoundCase(ECHOED_HEADER, "POST", "/v1/messages", headers=BAD_ID, body="<data></data>",
              media_type="application/xml"),
    FoundCase(ECHOED_HEADER, "GET", "/v1/inbox/{delivery_id}", {"delivery_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd"},
              headers=BAD_ID),
    FoundCase(ECHOED_HEADER, "GET", "/v1/audit/letters/export", headers=BAD_ID, role="nobody"),
]
