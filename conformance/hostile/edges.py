"""Hostile requests around the envelope: path and query parameters, JSON and form bodies, headers.

Called by ``make_corpus.build()`` after the envelope entries. Each entry is a request to some
route of the native API, the staff API or the console, refused with a code that names the
parameter: a NUL (PostgreSQL's text cannot hold it), a lone surrogate, a value over its
``maxLength``, a time PostgreSQL's timestamptz cannot hold once its zone is applied (also inside
the auditor API's cursor), a Buddhist-era day that does not exist, an X-Request-Id or a bearer
token that is not ASCII, an envelope Content-Type that is XML but not the envelope's.

``auth`` says who asks: ``"token"`` (the profile's agency), ``{"role": "auditor"}`` or
``{"role": "operator"}`` (the runner's ``--auditor-token`` / ``--operator-token``),
``{"console": "auditor"}`` (a console session, ``--console-auditor USER:PASSWORD``) or
``{"console": "anonymous"}`` (a fresh session's cookie and CSRF token, for the login form).
``{csrf}`` in a form body is replaced by the session's token. ``expect.page``: the answer is
the console's HTML page (its code and ``(field)`` appear in it). ``expect.request_id: "new"``:
the X-Request-Id sent must not come back; a new one (32 hex digits) does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

Add = Callable[..., None]

DELIVERY = "00000000-0000-4000-8000-000000000001"
EDGE_TIMES = {"plus14": "0001-01-01T00:00:00%2B14:00", "minus14": "9999-12-31T23:59:59-14:00"}


def _cursor(t: str) -> str:
    return base64.urlsafe_b64encode(f"{t}|1".encode()).decode()


def build(add: Add, entries: list[dict[str, Any]]) -> None:
    def get(name: str, description: str, endpoint: str, status: int, code: str | None, field: str | None = None,
            *, auth: Any = "token", method: str = "GET", body: bytes | None = None, ext: str = "txt",
            content_type: str | None = None, **expect: Any) -> None:
        add(name, description, body, status, code, field, ext=ext, endpoint=endpoint, method=method,
            content_type=content_type, auth=auth)
        entries[-1]["expect"].update(expect)

    auditor, operator = {"role": "auditor"}, {"role": "operator"}
    console, anonymous = {"console": "auditor"}, {"console": "anonymous"}

    # ------------------------------------------------------------------ path parameters (native API)
    get("path-nul-message-status", "a NUL in the message id of a status request", "/v1/messages/x%00", 400,
        "request.invalid", "message_id")
    get("path-surrogate-message-status", "a lone surrogate (UTF-8 of U+D800) as the message id",
        "/v1/messages/%ED%A0%80", 400, "request.invalid", "message_id")
    get("path-too-long-message-id", "a message id of 129 characters (the schema allows 128)",
        "/v1/messages/" + "a" * 129, 400, "request.invalid", "message_id")
    get("path-nul-stamped-recipient", "a NUL as the recipient of a stamped letter",
        "/v1/messages/hostile-0001/stamped/%00", 400, "request.invalid", "recipient")
    get("path-nul-stamped-message", "a NUL as the message id of a stamped letter",
        "/v1/messages/%00/stamped/1550100000", 400, "request.invalid", "message_id")
    get("path-nul-withdraw", "a NUL as the message id of a withdrawal", "/v1/messages/%00/withdraw", 400,
        "request.invalid", "message_id", method="POST")
    get("json-nul-withdraw-recipient", "a withdrawal naming the recipient \"\\u0000\"",
        "/v1/messages/hostile-0001/withdraw", 400, "request.invalid", "recipients", method="POST",
        body=json.dumps({"recipients": ["\u0000"]}).encode(), ext="json", content_type="application/json")
    get("json-surrogate-withdraw-recipient", "a withdrawal naming the recipient \"\\ud800\" (a lone surrogate)",
        "/v1/messages/hostile-0001/withdraw", 400, "request.invalid", "recipients", method="POST",
        body=b'{"recipients": ["\\ud800"]}', ext="json", content_type="application/json")
    get("path-nul-inbox-item", "a NUL as a delivery id", "/v1/inbox/%00", 400, "request.invalid", "delivery_id")
    get("path-nul-inbox-part", "a NUL as a part's Content-ID", f"/v1/inbox/{DELIVERY}/parts/%00", 400,
        "request.invalid", "content_id")
    get("path-nul-inbox-ack", "a NUL as the delivery id of an acknowledgement", "/v1/inbox/%00/ack", 400,
        "request.invalid", "delivery_id", method="POST")
    get("query-nul-inbox-limit", "a NUL as the inbox's page size", "/v1/inbox?limit=%00", 400, "request.invalid",
        "limit")

    # ------------------------------------------------------------------ query strings (staff API)
    for param in ("subject", "agency", "number", "status", "type"):
        get(f"query-nul-audit-letters-{param}", f"a NUL in the letter search's {param}",
            f"/v1/audit/letters?{param}=%00", 400, "request.invalid", param, auth=auditor)
    get("query-nul-audit-events-kind", "a NUL in the event search's kind", "/v1/audit/events?kind=%00", 400,
        "request.invalid", "kind", auth=auditor)
    get("query-too-long-audit-subject", "a subject of 1,001 characters (the envelope's Text allows 1,000)",
        "/v1/audit/letters?subject=" + "a" * 1001, 400, "request.invalid", "subject", auth=auditor)
    for label, t in EDGE_TIMES.items():
        get(f"query-since-{label}-audit-letters", f"since={t}: a year outside 1..9999 once the zone is applied",
            f"/v1/audit/letters?since={t}", 400, "request.invalid", "since", auth=auditor)
        get(f"query-until-{label}-audit-events", f"until={t}: a year outside 1..9999 once the zone is applied",
            f"/v1/audit/events?until={t}", 400, "request.invalid", "until", auth=auditor)
        get(f"query-cursor-{label}", f"a keyset cursor holding {t}",
            f"/v1/audit/letters?after={_cursor(t.replace('%2B', '+'))}", 400, "request.invalid", "after",
            auth=auditor)
        get(f"query-after-at-{label}-dead", f"the dead letters' after_at={t}",
            f"/v1/deliveries/dead?after_at={t}&after_id={DELIVERY}", 400, "request.invalid", "after_at",
            auth=operator)
    get("export-jsonl-nul-subject", "a NUL in a streamed export's subject: refused before the stream starts "
        "(it answered 200, then reset: a silently truncated file)", "/v1/audit/letters/export?format=jsonl&subject=%00",
        400, "request.invalid", "subject", auth=auditor)
    get("export-events-csv-since-edge", "a streamed event export from 0001-01-01T00:00:00+14:00",
        f"/v1/audit/events/export?format=csv&since={EDGE_TIMES['plus14']}", 400, "request.invalid", "since",
        auth=auditor)
    get("path-nul-requeue", "a NUL as the delivery id of a requeue", "/v1/deliveries/%00/requeue", 400,
        "request.invalid", "delivery_id", method="POST", auth=operator)

    # ------------------------------------------------------------------ the console (pages)
    for param in ("subject", "agency", "number"):
        get(f"console-nul-letters-{param}", f"a NUL in the console's letter search ({param})",
            f"/console/letters?{param}=%00", 400, "request.invalid", param, auth=console, page=True)
    get("console-after-at-edge", "the console's after_at=0001-01-01T00:00:00+14:00",
        f"/console/letters?after_at={EDGE_TIMES['plus14']}&after_pk=1", 400, "request.invalid", "after_at",
        auth=console, page=True)
    get("console-since-buddhist-29-february", "since=2404-02-29: B.E. 2404 is C.E. 1861, not a leap year",
        "/console/letters?since=2404-02-29", 400, "request.invalid", "since", auth=console, page=True)
    get("console-until-buddhist-31-april", "until=2569-04-31: April has 30 days",
        "/console/letters?until=2569-04-31", 400, "request.invalid", "until", auth=console, page=True)
    get("console-since-year-zero-in-utc", "since=0001-01-01: midnight in Bangkok is year 0 in UTC",
        "/console/letters?since=0001-01-01", 400, "request.invalid", "since", auth=console, page=True)
    get("console-login-nul-username", "a NUL in the console login's username", "/console/login", 400,
        "request.invalid", "username", method="POST", auth=anonymous, page=True,
        body=b"username=%00&password=x&csrf={csrf}", content_type="application/x-www-form-urlencoded")
    get("console-login-thai-csrf", "a CSRF token in Thai (hmac.compare_digest refuses to compare it)",
        "/console/login", 400, "request.invalid", "csrf", method="POST", auth=anonymous, page=True,
        body="username=auditor&password=x&csrf=โทเค็น".encode(), content_type="application/x-www-form-urlencoded")

    # ------------------------------------------------------------------ headers echoed or hashed
    raw = {"transport": "raw"}
    for label, value in (("not-utf8", "\u00ff\u00fe\u00fd"), ("surrogate-bytes", "abc\u00ed\u00a0\u0080"),
                         ("thai", "เลขคำขอ".encode().decode("latin-1")), ("too-long", "r" * 65)):
        add(f"request-id-{label}", f"an X-Request-Id that is not short printable ASCII ({label}): a new id",
            None, 401, "auth.required", None, endpoint="/v1/inbox", method="GET", content_type=None, auth="none",
            raw_headers={"X-Request-Id": value}, **raw)
        entries[-1]["expect"]["request_id"] = "new"
    add("request-id-not-utf8-on-a-refusal", "bytes that are not UTF-8 in X-Request-Id on a refused envelope",
        None, 415, "request.unsupported_media_type", "Content-Type", file="inputs/valid-letter.xml",
        content_type="text/plain", raw_headers={"X-Request-Id": "\u00ff\u00fe"}, **raw)
    entries[-1]["expect"]["request_id"] = "new"
    add("authorization-not-utf8", "a bearer token of bytes that are not UTF-8", None, 401, "auth.invalid_token",
        None, endpoint="/v1/inbox", method="GET", content_type=None, auth="none",
        raw_headers={"Authorization": "Bearer \u00ff\u00fe"}, **raw)

    # ------------------------------------------------------------------ the envelope's media type
    for ctype in ("image/svg+xml", "application/soap+xml", "application/xhtml+xml", "application/xml-dtd"):
        add(f"content-type-{ctype.replace('/', '-').replace('+', '-')}", f"Content-Type {ctype}: XML, not an envelope",
            None, 415, "request.unsupported_media_type", "Content-Type", file="inputs/valid-letter.xml",
            content_type=ctype)
