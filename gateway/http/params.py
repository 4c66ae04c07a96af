"""Query parameters of the staff API and the console, read once and checked before any query.

A value the database cannot take (a status that is not in its enum, a number
beyond bigint, a cursor that is not one) is the client's mistake: it answers
400 ``request.invalid`` naming the parameter, never a 500 from the driver.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Mapping

from gateway.core.errors import EnvelopeError
from gateway.storage.deliveries import DeliveryStatus
from gateway.storage.search import LetterFilter

_BIGINT = (1 << 63) - 1
#: Delivery statuses as the API names them (``retry-wait``) and as the database does (``retry_wait``).
_STATUSES = {s.value: s.value for s in DeliveryStatus} | {"retry-wait": DeliveryStatus.RETRY_WAIT.value}
_TYPES = ("letter", "notifier", "receipt")


def invalid(message: str, field: str) -> EnvelopeError:
    return EnvelopeError(message, code="request.invalid", field=field)


def bigint(value: str | None, field: str) -> int | None:
    """A positive database id or sequence number, or None when absent."""
    return parse_bigint(value, field) if value else None


def parse_bigint(value: str, field: str) -> int:
    """A positive database id or sequence number that must be there (a path parameter, one of a pair)."""
    try:
        n = int(value)
    except ValueError:
        raise invalid(f"{field} must be a whole number", field) from None
    if not 0 <= n <= _BIGINT:
        raise invalid(f"{field} is out of range", field)
    return n


def timestamp(value: str | None, field: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None when absent."""
    return parse_timestamp(value, field) if value else None


def parse_timestamp(value: str, field: str) -> dt.datetime:
    """An ISO 8601 time (UTC when it names no zone) that must be there."""
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{field} must be an ISO 8601 time", field) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def delivery_id(value: str | None, field: str) -> uuid.UUID | None:
    return parse_delivery_id(value, field) if value else None


def parse_delivery_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid(f"{field} must be a delivery id (UUID)", field) from None


def status(value: str | None) -> str | None:
    if not value:
        return None
    if value not in _STATUSES:
        raise invalid(f"status must be one of {', '.join(sorted(_STATUSES))}", "status")
    return _STATUSES[value]


def message_type(value: str | None) -> str | None:
    if not value:
        return None
    if value not in _TYPES:
        raise invalid(f"type must be one of {', '.join(_TYPES)}", "type")
    return value


def letter_filter(q: Mapping[str, str], *, agency: str | None, since: dt.datetime | None, until: dt.datetime | None) -> LetterFilter:
    """The letter search filter from a query; the caller decides agency and the time range."""
    return LetterFilter(agency=agency, since=since, until=until, number=q.get("number") or None,
                        subject=q.get("subject") or None, status=status(q.get("status")),
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
