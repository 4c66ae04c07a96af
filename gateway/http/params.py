"""Every value a client sends in a path, a query, a form or a JSON body, read once and checked here.

Handlers of the native API, the staff API and the console read their parameters through this
module and nowhere else, so that nothing reaches PostgreSQL unchecked. A value is refused with
400 ``request.invalid`` naming the parameter (``field``) when

* it holds a NUL (PostgreSQL's text cannot: ``CharacterNotInRepertoireError``) or a lone
  surrogate (not Unicode: it cannot be encoded as UTF-8);
* it is longer than its kind's ``maxLength`` (:data:`KINDS`, the table the OpenAPI document
  follows), or does not have its kind's shape (an agency code, a message id, a UUID...);
* it is a time PostgreSQL's ``timestamptz`` cannot hold: a year outside 1..9999 once the zone
  offset is applied (``0001-01-01T00:00:00+14:00`` is 0000-12-31 in UTC), also inside the
  auditor API's base64 cursor and the console's ``after_at``;
* it is a number beyond ``bigint`` or a status, type or format the API does not know.

Messages never repeat a refused value (it may not be encodable); they say what was expected.
Whatever still slips through reaches the database's safety net in
:func:`gateway.http.api.error_middleware` (``DataError`` -> 400, counted in
``gateway_input_safety_net_total``); the tests require that net never to be hit.

==============  =========  ==============================================================
kind            maxLength  what
==============  =========  ==============================================================
message_id      128        a message id as the envelope schema allows (``[A-Za-z0-9._:@-]+``)
agency          10         an agency code: 5 or 10 digits
delivery_id     36         a delivery id (UUID)
content_id      100        a part's Content-ID (``[A-Za-z_][A-Za-z0-9_.-]*``)
number          19         a whole number: ids, sequence numbers, page sizes
time            64         an ISO 8601 time (UTC when it names no zone)
day             32         a date typed in the console, Gregorian or Buddhist era
cursor          128        the auditor API's opaque ``next`` cursor
enum            32         a status, message type or export format
kind            64         an audit event kind (``[a-z0-9_.-]+``)
text            1000       text searched for (subject, letter number, directory): the envelope's Text limit
username        128        a console user name
password        1024       a console password
csrf            128        the console's CSRF token
next            2048       where the console goes after logging in
==============  =========  ==============================================================
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.core.errors import EnvelopeError
from gateway.storage.deliveries import DeliveryStatus
from gateway.storage.search import LetterFilter


@dataclass(frozen=True)
class Kind:
    """What one kind of parameter may be."""

    max_length: int
    description: str
    pattern: re.Pattern[str] | None = None
    """The whole value must match, when given."""


KINDS: Final[dict[str, Kind]] = {
    "message_id": Kind(128, "a message id (letters, digits and . _ : @ -)", re.compile(r"[A-Za-z0-9._:@\-]+")),
    "agency": Kind(10, "an agency code (5 or 10 digits)", re.compile(r"[0-9]{5}|[0-9]{10}")),
    "delivery_id": Kind(36, "a delivery id (UUID)"),
    "content_id": Kind(100, "a Content-ID (a letter or _, then letters, digits and . _ -)",
                       re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")),
    "number": Kind(19, "a whole number"),
    "time": Kind(64, "an ISO 8601 time"),
    "day": Kind(32, "a date (YYYY-MM-DD, Gregorian or Buddhist era)"),
    "cursor": Kind(128, "a cursor from a previous answer's next"),
    "enum": Kind(32, "one of the listed values"),
    "kind": Kind(64, "an audit event kind (lower-case letters, digits and . _ -)", re.compile(r"[a-z0-9_.\-]+")),
    "text": Kind(1000, "text (at most 1000 characters, as the envelope's Text)"),
    "username": Kind(128, "a user name"),
    "password": Kind(1024, "a password"),
    "csrf": Kind(128, "the form's CSRF token", re.compile(r"[A-Za-z0-9_\-]+")),
    "next": Kind(2048, "a console path"),
    "name": Kind(300, "an agency's name (at most 300 characters)"),
    "province": Kind(2, "a province code (2 digits, as geothai)", re.compile(r"[0-9]{2}")),
}

_BIGINT = (1 << 63) - 1
#: Delivery statuses as the API names them (``retry-wait``) and as the database does (``retry_wait``).
_STATUSES = {s.value: s.value for s in DeliveryStatus} | {"retry-wait": DeliveryStatus.RETRY_WAIT.value}
_TYPES = ("letter", "notifier", "receipt")
FORMATS: Final = ("csv", "jsonl", "json")


def invalid(message: str, field: str) -> EnvelopeError:
    return EnvelopeError(message, code="request.invalid", field=field)


def check(value: object, field: str, kind: str) -> str:
    """``value`` if it is text of ``kind`` that PostgreSQL can store, else 400 naming ``field``."""
    k = KINDS[kind]
    if not isinstance(value, str):
        raise invalid(f"{field} must be {k.description}", field)
    if "\x00" in value:
        raise invalid(f"{field} must not contain a NUL character", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{field} is not valid Unicode (a lone surrogate)", field) from None
    if len(value) > k.max_length:
        raise invalid(f"{field} must be at most {k.max_length} characters", field)
    if k.pattern is not None and not k.pattern.fullmatch(value):
        raise invalid(f"{field} must be {k.description}", field)
    return value


def optional(source: Mapping[str, object], field: str, kind: str) -> str | None:
    """A checked parameter of ``source`` (a query, a form, a JSON object), or None when absent or empty."""
    value = source.get(field)
    if value is None or value == "":
        return None
    return check(value, field, kind)


def required(source: Mapping[str, object], field: str, kind: str) -> str:
    """A checked parameter that must be there (a path parameter, a form's CSRF token)."""
    value = optional(source, field, kind)
    if value is None:
        raise invalid(f"{field} is required", field)
    return value


def text(value: str | None, field: str, kind: str) -> str | None:
    """A value read elsewhere (a header, a session) checked as ``kind``; None or empty stays None."""
    return None if not value else check(value, field, kind)


# ---------------------------------------------------------------------------- numbers, ids, times


def bigint(value: str | None, field: str) -> int | None:
    """A positive database id or sequence number, or None when absent."""
    return parse_bigint(value, field) if value else None


def parse_bigint(value: str, field: str) -> int:
    """A positive database id or sequence number that must be there (a path parameter, one of a pair)."""
    check(value, field, "number")
    try:
        n = int(value)
    except ValueError:
        raise invalid(f"{field} must be a whole number", field) from None
    if not 0 <= n <= _BIGINT:
        raise invalid(f"{field} is out of range", field)
    return n


def limit(source: Mapping[str, str], *, default: int, top: int) -> int:
    """A page size from ``limit``, clamped to 1..``top``."""
    value = optional(source, "limit", "number")
    if value is None:
        return default
    try:
        return max(1, min(int(value), top))
    except ValueError:
        raise invalid("limit must be a number", "limit") from None


def in_range(t: dt.datetime, field: str) -> dt.datetime:
    """``t`` if PostgreSQL's timestamptz (and Python, in UTC) can hold it: a year 1..9999 in UTC."""
    try:
        t.astimezone(dt.UTC)
    except OverflowError:
        raise invalid(f"{field} is outside the years 1 to 9999 once its zone is applied", field) from None
    return t


def timestamp(value: str | None, field: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None when absent."""
    return parse_timestamp(value, field) if value else None


def parse_timestamp(value: str, field: str) -> dt.datetime:
    """An ISO 8601 time (UTC when it names no zone) that must be there, within PostgreSQL's range."""
    check(value, field, "time")
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{field} must be an ISO 8601 time", field) from None
    return in_range(t if t.tzinfo else t.replace(tzinfo=dt.UTC), field)


def delivery_id(value: str | None, field: str) -> uuid.UUID | None:
    return parse_delivery_id(value, field) if value else None


def parse_delivery_id(value: str, field: str) -> uuid.UUID:
    check(value, field, "delivery_id")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid(f"{field} must be a delivery id (UUID)", field) from None


def path_delivery_id(match_info: Mapping[str, str], field: str = "delivery_id") -> uuid.UUID:
    """The delivery id of a path (``/v1/inbox/{delivery_id}``...)."""
    return parse_delivery_id(required(match_info, field, "delivery_id"), field)


# ---------------------------------------------------------------------------- enumerations


def status(value: str | None) -> str | None:
    if not value:
        return None
    check(value, "status", "enum")
    if value not in _STATUSES:
        raise invalid(f"status must be one of {', '.join(sorted(_STATUSES))}", "status")
    return _STATUSES[value]


def message_type(value: str | None) -> str | None:
    if not value:
        return None
    check(value, "type", "enum")
    if value not in _TYPES:
        raise invalid(f"type must be one of {', '.join(_TYPES)}", "type")
    return value


def export_format(source: Mapping[str, str]) -> str:
    fmt = optional(source, "format", "enum") or "csv"
    if fmt not in FORMATS:
        raise invalid("format must be csv or jsonl", "format")
    return fmt


# ---------------------------------------------------------------------------- searches and keysets


def letter_filter(q: Mapping[str, str], *, agency: str | None, since: dt.datetime | None,
                  until: dt.datetime | None) -> LetterFilter:
    """The letter search filter from a query; the caller decides agency and the time range."""
    return LetterFilter(agency=agency, since=since, until=until, number=optional(q, "number", "text"),
                        subject=optional(q, "subject", "text"), status=status(q.get("status")),
                        message_type=message_type(q.get("type")))


def letter_keyset(at: str | None, pk: str | None, field: str = "after") -> tuple[dt.datetime, int] | None:
    """The (accepted_at, pk) of the last letter shown, from two parameters."""
    if not (at and pk):
        return None
    return parse_timestamp(at, f"{field}_at"), parse_bigint(pk, f"{field}_pk")


def letter_cursor(token: str | None) -> tuple[dt.datetime, int] | None:
    """The opaque ``next`` cursor of the auditor API."""
    if not token:
        return None
    check(token, "after", "cursor")
    try:
        at, pk = base64.urlsafe_b64decode(token.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise invalid("bad cursor", "after") from None
    try:
        return parse_timestamp(at, "after"), parse_bigint(pk, "after")
    except EnvelopeError:
        raise invalid("bad cursor", "after") from None


def dead_keyset(at: str | None, key: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if not (at and key):
        return None
    return parse_timestamp(at, "after_at"), parse_delivery_id(key, "after_id")
