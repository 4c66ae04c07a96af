"""The forwarded envelope as edits of the received one (gateway.storage.forwarded): always exact."""

import datetime as dt
import uuid

import hypothesis.strategies as st
from hypothesis import given, settings

from gateway.core.receipts import delivery_receipt_envelope
from gateway.core.signing import PkiSealer
from gateway.storage.forwarded import RECEIPT_MOST, _common, apply, edits
from tests.support import CMI, OPM


@st.composite
def edited(draw):
    """(received, forwarded): forwarded made from received by a few insertions, cuts and replacements."""
    received = draw(st.binary(max_size=300) | st.text("<>ab/ =\"", max_size=300).map(str.encode))
    out = bytearray(received)
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["insert", "cut", "replace"]))
        new = draw(st.binary(min_size=1, max_size=40))
        if kind == "insert":
            out[at:at] = new
        elif kind == "cut":
            del out[at:at + draw(st.integers(1, 20))]
        else:
            out[at:at + len(new)] = new
    return received, bytes(out)


@settings(max_examples=500)
@given(edited())
def test_edits_give_back_the_forwarded_bytes_exactly(pair):
    received, forwarded = pair
    e = edits(received, forwarded)
    if e is not None:
        assert apply(received, None, *e) == forwarded
        assert len(e[1]) * 2 <= len(forwarded)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_unrelated_bytes_are_exact_or_stored_whole(received, forwarded):
    e = edits(received, forwarded)
    assert e is None or apply(received, None, *e) == forwarded


def test_a_seal_is_two_insertions():
    received = b"<E><Header><Id>1</Id></Header><Body>" + b"x" * 5000 + b"</Body><Signatures><S/></Signatures></E>"
    seal = b"<ds:Signature Id=\"GatewaySeal\">" + b"s" * 900 + b"</ds:Signature>"
    forwarded = received.replace(b"<Header>", b"<Header Id=\"Header\">").replace(b"<S/>", b"<S/>" + seal)
    edit_list, inserts = edits(received, forwarded)
    # two insertions, the second where the seal goes (give or take the '<' both end on)
    assert edit_list[:3] == [len(b"<E><Header"), 0, len(b" Id=\"Header\"")] and edit_list[4:] == [0, len(seal)]
    assert abs(edit_list[3] - received.index(b"</Signatures>")) <= 1
    assert len(inserts) == len(b" Id=\"Header\"") + len(seal)
    assert apply(received, None, edit_list, inserts) == forwarded


def test_unsealed_is_no_edit_and_whole_bytes_win():
    assert edits(b"<E/>", b"<E/>") == ([], b"")
    assert edits(b"<E/>", b"<F>" + b"y" * 100 + b"</F>") is None
    assert apply(b"<E/>", b"<F/>", None, None) == b"<F/>"


def test_a_signed_delivery_receipt_is_its_unsigned_bytes_and_the_signature(dev_pki):
    """(0023) A receipt's signature is most of it: stored as edits only under RECEIPT_MOST, exactly."""
    _, env = delivery_receipt_envelope(delivery_id=uuid.uuid4(), message_id="m-1", conversation_id=None,
                                       sender=OPM, recipient=CMI, sha256_hex="ab" * 32,
                                       at=dt.datetime(2026, 12, 7, tzinfo=dt.UTC))
    signed = PkiSealer(dev_pki.seal_signer()).sign_receipt(env)
    assert edits(env, signed) is None  # a letter's rule: more than half inserted
    e = edits(env, signed, most=RECEIPT_MOST)
    assert e is not None and len(e[0]) == 3 and len(e[1]) == len(signed) - len(env)
    assert apply(env, None, *e) == signed


def _common_reference(a: bytes, i: int, b: bytes, j: int) -> int:
    n = 0
    while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
        n += 1
    return n


@settings(max_examples=500)
@given(st.binary(max_size=3000), st.integers(0, 3000), st.data())
def test_common_finds_the_first_difference_at_every_offset(prefix, cut, data):
    # long equal runs (past the XOR window) with one difference anywhere, or none
    a = prefix + data.draw(st.binary(max_size=50))
    b = bytearray(a)
    if b and data.draw(st.booleans()):
        k = min(cut, len(b) - 1)
        b[k] ^= data.draw(st.integers(1, 255))
    b = bytes(b) + data.draw(st.binary(max_size=5))
    i = data.draw(st.integers(0, len(a)))
    j = data.draw(st.integers(0, len(b)))
    assert _common(a, i, b, j) == _common_reference(a, i, b, j)
