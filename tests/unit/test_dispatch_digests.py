"""share_digests: a letter's deliveries claimed together hash its forwarded bytes once, and every claim's
``forwarded_sha256`` stays the SHA-256 of its own bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid

from gateway.delivery.dispatcher import share_digests
from gateway.storage.deliveries import ClaimedDelivery

_AT = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def claim(message_pk: int, forwarded: bytes, recipient: str = "1550100000") -> ClaimedDelivery:
    return ClaimedDelivery(id=uuid.uuid4(), message_pk=message_pk, recipient=recipient, route="push", attempts=1,
                           created_at=_AT, expires_at=_AT, message_id=f"m-{message_pk}", sender="0100000000",
                           message_type="letter", forwarded=forwarded, parts=0, destination_failures=0)


def test_equal_bytes_of_one_message_share_one_digest_object() -> None:
    body = os.urandom(14000)
    a, b = claim(1, body), claim(1, bytes(bytearray(body)), "1550200000")  # equal bytes, another object
    other = claim(2, os.urandom(100))
    share_digests([a, other, b])
    assert b.forwarded_sha256 is a.forwarded_sha256  # hashed once
    assert a.forwarded_sha256 == b.forwarded_sha256 == hashlib.sha256(body).digest()
    assert other.forwarded_sha256 == hashlib.sha256(other.forwarded).digest()


def test_unequal_bytes_under_one_message_keep_their_own_digests() -> None:
    body = os.urandom(1000)
    changed = body[:-1] + bytes([body[-1] ^ 1])
    a, b = claim(1, body), claim(1, changed)
    share_digests([a, b])
    assert a.forwarded_sha256 == hashlib.sha256(body).digest()
    assert b.forwarded_sha256 == hashlib.sha256(changed).digest()
