"""OutboundDelivery's hand-written __init__ (one dict update, not a frozen dataclass's setattr per field)
takes exactly the declared fields, in order, with their defaults, and makes the same value."""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from types import MappingProxyType
from typing import Any

import pytest

from adapters.base import OutboundDelivery
from gateway.core.directory import Route

_ROUTE = Route(kind="push", settings=MappingProxyType({"url": "http://127.0.0.1:9/saraban/inbox"}))


def test_the_initialiser_takes_the_declared_fields_in_order_with_their_defaults() -> None:
    params = list(inspect.signature(OutboundDelivery.__init__).parameters.values())[1:]
    fields = dataclasses.fields(OutboundDelivery)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]


def test_every_field_is_set_and_the_value_stays_frozen() -> None:
    d = OutboundDelivery(uuid.UUID(int=7), "m-1", "0100000000", "1550100000", b"<env/>", _ROUTE, 2,
                         envelope_sha256=b"\x01" * 32)
    assert vars(d) == {"delivery_id": uuid.UUID(int=7), "message_id": "m-1", "sender": "0100000000",
                       "recipient": "1550100000", "envelope": b"<env/>", "route": _ROUTE, "attempt": 2,
                       "parts": (), "open_part": None, "envelope_sha256": b"\x01" * 32}
    assert d == dataclasses.replace(d)
    assert dataclasses.replace(d, attempt=3).attempt == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(d, "attempt", 3)  # noqa: B010  (frozen: the assignment is what is tested)
    too_few: list[Any] = [uuid.UUID(int=7), "m-1", "0100000000", "1550100000", b"", _ROUTE]
    with pytest.raises(TypeError):
        OutboundDelivery(*too_few)  # attempt missing: refused
