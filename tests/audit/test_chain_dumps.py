"""The audit chain's JSON writer (gateway.audit.chain.dumps) writes orjson's bytes only where they
are json's, byte for byte: the chain hashes these bytes and auditors recompute them years later with
nothing but ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import chain
from gateway.core.fastjson import plain


def reference(obj: Any) -> bytes:
    """The writer as the module docstring defines it (what every verifier does)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def outcome(fn, obj: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(obj)
    except Exception as exc:  # noqa: BLE001 - the same refusal is part of the same behaviour
        return "error", type(exc).__name__


class Color(enum.Enum):
    RED = "red"


class Kind(str, enum.Enum):
    LETTER = "letter"


class Level(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


_leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**63), 2**64 - 1), st.integers(-(2**80), 2**80),  # orjson's range, and beyond it
    st.floats(allow_nan=True, allow_infinity=True),  # json writes 1e-05, orjson 0.00001: json's way only
    st.text(), st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x40)),  # control characters
    st.text(alphabet=st.sampled_from(["\ud800", "\udfff", "ก", "😀", "\u2028", "\x7f"]), max_size=3),  # lone
    # surrogates: both refuse
    st.sampled_from([Color.RED, Kind.LETTER, Level.ONE, Text("t"), uuid.UUID(int=1),
                     dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.date(2026, 1, 1)]),
)
_keys = st.one_of(st.text(), st.sampled_from(["a", "B", "ก", "😀", "", "a\x00"]), st.integers(-3, 3),
                  st.sampled_from([True, None, 1.5, Text("k")]))
_values = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.lists(inner, max_size=5).map(tuple),
    st.dictionaries(_keys, inner, max_size=6)), max_leaves=25)


#: 300 derandomized examples, not 1,000: every mutant of gateway.core.fastjson that 1,000 caught here (a
#: datetime or an enum let through, a list's items not looked at, keys not sorted), 300 caught too.
@settings(max_examples=300, deadline=None)
@given(_values)
def test_dumps_is_json_byte_for_byte_or_refuses_as_json_does(obj):
    assert outcome(chain.dumps, obj) == outcome(reference, obj)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(), st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                                            st.text(), st.lists(st.text(max_size=5), max_size=4)), max_size=30))
def test_the_gateways_own_details_take_the_fast_writer_and_keep_their_bytes(details):
    # the shape of every event the gateway writes: strings, integers, booleans, lists of strings
    assert plain(details)
    assert chain.dumps(details) == reference(details)


def test_deep_nesting_beyond_orjsons_limit_is_written_by_json():
    deep: Any = "x"
    for _ in range(300):  # orjson refuses past 255 levels
        deep = [deep]
    assert chain.dumps(deep) == reference(deep)


_zones = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=7)), dt.timezone(dt.timedelta(hours=-9, minutes=-30))])


@settings(max_examples=1000, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=_zones))
def test_format_at_is_strftime_byte_for_byte(at):
    assert chain.format_at(at) == at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if at.astimezone(dt.UTC).year >= 1000:  # strftime writes year 999 as "999", which strptime refuses (as before)
        assert chain.parse_at(chain.format_at(at)) == at


def test_a_known_event_keeps_its_leaf_hash():
    """Recorded from the writer before orjson (main at 4034f83): the same event, the same hash."""
    row = {"seq": 7, "at": dt.datetime(2026, 12, 6, 21, 33, 4, 120034, tzinfo=dt.timezone(dt.timedelta(hours=7))),
           "actor": "00001", "kind": "message.accepted", "message_pk": 42,
           "delivery_id": uuid.UUID("6f1c2d1e-8d3a-4e7b-9c1a-1b2c3d4e5f60"),
           "details": {"subject": 'เรื่อง ทดสอบ "q" \\ \n\t\x01 😀', "recipients": ["00002", "00003"], "n": 3,
                       "ok": True, "none": None, "nested": {"b": [1, {"z": "y", "a": False}], "a": -(2**63)},
                       "big": 2**64 - 1}}
    assert chain.canonical(row).decode() == (
        '{"actor":"00001","at":"2026-12-06T14:33:04.120034Z","delivery_id":"6f1c2d1e-8d3a-4e7b-9c1a-1b2c3d4e5f60",'
        '"details":{"big":18446744073709551615,"n":3,"nested":{"a":-9223372036854775808,"b":[1,{"a":false,'
        '"z":"y"}]},"none":null,"ok":true,"recipients":["00002","00003"],"subject":"เรื่อง ทดสอบ \\"q\\" \\\\ '
        '\\n\\t\\u0001 😀"},"kind":"message.accepted","message_pk":42,"seq":7}')
    assert chain.leaf_hash(row).hex() == "2b537d9c255267e28074ecce0e0667d5ae1ab264eba2ee618a0ae444515eb3d8"
    assert chain.checkpoint_payload(seq=7, hash_=b"\x01" * 32, count=7, at=row["at"], cert_sha256="ab" * 32) == (
        b'{"at":"2026-12-06T14:33:04.120034Z","cert_sha256":"' + b"ab" * 32 + b'","count":7,"hash":"'
        + b"01" * 32 + b'","seq":7,"type":"saraban-audit-checkpoint/1"}')
