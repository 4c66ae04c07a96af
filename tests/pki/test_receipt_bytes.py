"""Receipts written as bytes (pki.receipt_bytes) are the receipts the tree way gives, and they verify.

The submission and delivery receipts are written from their forms (the template lxml wrote once, cut
where the values go), not built as trees. These tests hold them to the tree way byte for byte over
arbitrary values (ids, agency codes, Thai and odd Unicode, the characters the writers escape, any
time and zone), unsigned and signed (a deterministic signer: ECDSA values are random), show that a
value with a character the bytes way does not plan for goes to the tree, and verify the receipts
with signxml (pki.receipts.verify_receipt) and libxmlsec1.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.core.receipts import (
    ReceiptBytes,
    delivery_receipt_envelope,
    delivery_tree,
    submission_receipt,
    submission_tree,
)
from gateway.core.signing import PkiSealer, VerifiedTrees
from pki import receipts
from pki.errors import SignatureError
from pki.receipt_bytes import ReceiptForm, mark
from pki.receipts import sign_receipt_tree, verify_receipt
from pki.xmlparse import parse
from pki.xmlsig_parts import DS, c14n, envelope_parts, signatures_container
from pki.xmlsig_xmlsec import verify_with_xmlsec


class _Deterministic:
    """A signer whose value depends only on the data (to compare two ways of making the same signature)."""

    def __init__(self, signer) -> None:
        self.signature_method, self.certificate, self.chain = signer.signature_method, signer.certificate, signer.chain
        self.key_algorithm = signer.key_algorithm

    def sign(self, data: bytes) -> bytes:
        return hashlib.sha512(data).digest()


#: Characters the writers escape or that sit at the edges of what the bytes way plans for.
_EDGES = "&<>\"'\r\n\t ]]>@{}\x7f\x85\x9f\xa0\ud7ff\ue000\ufffd\U00010000\U0010ffff\x00\x0b\x1f\ufffe\uffff"
_TEXT = st.text(st.one_of(st.sampled_from(_EDGES), st.characters(min_codepoint=0x0E00, max_codepoint=0x0E7F),
                          st.characters(codec="utf-8"), st.characters(max_codepoint=0x7F)), max_size=24)
_ZONES = st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59),
                                              max_value=dt.timedelta(hours=23, minutes=59)))
_TIMES = st.datetimes(timezones=_ZONES)
#: What the bytes way writes as is or escapes: anything else goes to the tree.
_PLANNED = frozenset("\t\n\r") | {chr(c) for c in range(0x20, 0x7F)}


def _each_escaped_alone(field: str, **others):
    """One explicit example per character a writer escapes, the only one of its kind in the receipt (one
    such character anywhere sends every value through the escaping)."""
    def decorate(test):
        for special in "&<>\r":
            test = example(**{field: f"a{special}b"}, **others)(test)
        return test
    return decorate


def _planned(values) -> bool:
    return all(c in _PLANNED or (0xA0 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) >= 0x10000)
               for v in values for c in v)


def _serialised(tree: etree._Element) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def _tree_way_signed(tree: etree._Element, signer) -> bytes:
    """The receipt signed the tree way all through (the signature made as a tree too)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(receipts, "lean_signature_xml", lambda *a, **k: None)
        return sign_receipt_tree(tree, signer)


def _check_against_tree(receipt: ReceiptBytes, reference: etree._Element, values, signer) -> None:
    """``receipt`` (made the usual way) against the tree way's ``reference``."""
    assert bytes(receipt) == _serialised(reference)
    if receipt.written is None:
        assert not _planned(values)  # only what the bytes way does not plan for goes to the tree
        assert "tree" in receipt.__dict__
        return
    assert _planned(values)
    # the canonical form is the enveloped c14n of the tree with its empty Signatures ...
    reference_copy = etree.fromstring(_serialised(reference))
    signatures_container(envelope_parts(reference_copy)).text = None
    assert receipt.written.canonical == c14n(reference_copy)
    # ... and the signed bytes are the tree way's (then no tree was made)
    signed = PkiSealer(signer, VerifiedTrees()).sign_receipt(receipt)
    assert "tree" not in receipt.__dict__
    assert signed == _tree_way_signed(reference, signer)


def _tree_or_error(make):
    try:
        return make()
    except ValueError as err:
        return err


@settings(max_examples=300)
@given(message_id=_TEXT, sender=_TEXT, gateway_code=_TEXT, sha256_hex=_TEXT, at=_TIMES)
@example(message_id="m-1", sender="00001", gateway_code="0000000000", sha256_hex="ab" * 32,
         at=dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC))
@example(message_id="ที่ นร 0105/ว 123 & <ด่วน>\r\n", sender="1500100001", gateway_code="", sha256_hex="",
         at=dt.datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7))))
@example(message_id="a\x7fb", sender="00001", gateway_code="0", sha256_hex="ab", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
@_each_escaped_alone("message_id", sender="00001", gateway_code="0", sha256_hex="ab",
                     at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
def test_submission_receipts_are_the_tree_ways_bytes(seal_signer, message_id, sender, gateway_code, sha256_hex, at):
    args = dict(message_id=message_id, sender=sender, sha256_hex=sha256_hex, at=at, gateway_code=gateway_code)
    reference = _tree_or_error(lambda: submission_tree(**args))
    values = (message_id, sender, gateway_code, sha256_hex)
    if isinstance(reference, Exception):
        assert not _planned(values)
        with pytest.raises(ValueError):
            submission_receipt(**args)
        return
    _check_against_tree(submission_receipt(**args), reference, values, _Deterministic(seal_signer))


@settings(max_examples=300)
@given(delivery_id=st.uuids(), message_id=_TEXT, conversation_id=st.none() | _TEXT, sender=_TEXT, recipient=_TEXT,
       sha256_hex=_TEXT, at=_TIMES)
@example(delivery_id=uuid.UUID(int=7), message_id="m-2", conversation_id=None, sender="00001", recipient="00002",
         sha256_hex="cd" * 32, at=dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC))
@example(delivery_id=uuid.UUID(int=7), message_id="m\r2", conversation_id="", sender="กระทรวง", recipient="<&>",
         sha256_hex="\U0001F600", at=dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC))
@_each_escaped_alone("recipient", delivery_id=uuid.UUID(int=7), message_id="m", conversation_id=None,
                     sender="00001", sha256_hex="cd", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
def test_delivery_receipts_are_the_tree_ways_bytes(seal_signer, delivery_id, message_id, conversation_id, sender,
                                                    recipient, sha256_hex, at):
    args = dict(delivery_id=delivery_id, message_id=message_id, conversation_id=conversation_id, sender=sender,
                recipient=recipient, sha256_hex=sha256_hex, at=at)
    reference = _tree_or_error(lambda: delivery_tree(**args))
    values = (message_id, conversation_id or "", sender, recipient, sha256_hex)
    if isinstance(reference, Exception):
        assert not _planned(values)
        with pytest.raises(ValueError):
            delivery_receipt_envelope(**args)
        return
    receipt_id, receipt = delivery_receipt_envelope(**args)
    assert receipt_id == f"receipt-{delivery_id}"
    _check_against_tree(receipt, reference, values, _Deterministic(seal_signer))


@pytest.mark.parametrize("value", ["a\x7fb", "\x85", "x\x9f"])
def test_a_character_not_planned_for_goes_to_the_tree(seal_signer, value):
    # DEL and the C1 controls are XML, and lxml writes them; the bytes way does not plan for them
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    receipt = submission_receipt(message_id=value, sender="00001", sha256_hex="ab" * 32, at=at)
    assert receipt.written is None and "tree" in receipt.__dict__
    _, delivery = delivery_receipt_envelope(delivery_id=uuid.UUID(int=1), message_id="m", conversation_id=value,
                                            sender="00001", recipient="00002", sha256_hex="ab" * 32, at=at)
    assert delivery.written is None
    signed = PkiSealer(seal_signer, VerifiedTrees()).sign_receipt(receipt)
    assert value.encode() in signed


@pytest.mark.parametrize("value", ["\x00", "a\x0bb", "\ufffe", "\ud800"])
def test_a_value_no_tree_takes_is_refused_both_ways(value):
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    for make in (submission_tree, submission_receipt):
        with pytest.raises(ValueError):
            make(message_id=value, sender="00001", sha256_hex="ab" * 32, at=at)


def _receipts(at: dt.datetime) -> list[ReceiptBytes]:
    values = ["m-1", "ที่ นร 0105/ว 123 <ด่วนที่สุด> & \"quoted\"", "line\r\nbreak\rcr", "]]>\U0001F600"]
    made = [submission_receipt(message_id=v, sender="00001", sha256_hex="ab" * 32, at=at) for v in values]
    made += [delivery_receipt_envelope(delivery_id=uuid.UUID(int=i), message_id=v, conversation_id=v,
                                       sender="00001", recipient="1500100001", sha256_hex="cd" * 32, at=at)[1]
             for i, v in enumerate(values)]
    assert all(r.written is not None for r in made)
    return made


async def test_receipts_written_as_bytes_verify_with_signxml(seal_signer):
    at = dt.datetime(2026, 12, 6, 10, 0, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    for receipt in _receipts(at):
        signed = PkiSealer(seal_signer, VerifiedTrees()).sign_receipt(receipt)
        verified = await verify_receipt(signed, seal_signer.certificate)
        tree = parse(bytes(receipt))
        assert verified.message_id == tree.findtext("{*}Receipt/{*}MessageId").strip()
        assert verified.at == at and verified.sha256 in ("ab" * 32, "cd" * 32)
        # what the signature covers is exactly the canonical form written
        assert c14n(verified.root) == receipt.written.canonical


def test_receipts_written_as_bytes_verify_with_libxmlsec1(seal_signer):
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    for receipt in _receipts(at):
        signed = PkiSealer(seal_signer, VerifiedTrees()).sign_receipt(receipt)
        root = parse(signed)
        verify_with_xmlsec(next(root.iter(DS + "Signature")), seal_signer.certificate, [""], {"": root})
        # and a receipt changed after signing does not
        forged = parse(signed.replace(b"<Sha256>", b"<Sha256>0", 1))
        with pytest.raises(SignatureError):
            verify_with_xmlsec(next(forged.iter(DS + "Signature")), seal_signer.certificate, [""], {"": forged})


def test_the_tree_of_a_receipt_written_as_bytes_is_built_when_asked():
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    receipt = submission_receipt(message_id="m-1", sender="00001", sha256_hex="ab" * 32, at=at)
    assert receipt.written is not None and "tree" not in receipt.__dict__
    assert _serialised(receipt.tree) == receipt
    assert receipt.tree is receipt.tree  # built once


def test_a_form_refuses_a_template_whose_markers_do_not_match():
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    template = submission_tree(message_id=mark(0), sender=mark(1), sha256_hex="ab", at=at)
    with pytest.raises(ValueError):
        ReceiptForm.of(template, 3)  # no @@2@@ in it
    assert ReceiptForm.of(template, 2) is not None
