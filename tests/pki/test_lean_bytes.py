"""Seals and receipts written as bytes (pki.xmlsig_lean.lean_signature_xml) are the bytes the tree would give.

The usual seal and receipt signature are not made as element trees: their SignedInfo and their
serialisation are written from pieces lxml wrote once per key. These tests hold that to the tree
way byte for byte (with a deterministic signer, ECDSA values being random), check that the bytes way
is the one taken, and that the shapes it leaves to the tree (an id a serialiser would escape, the
XML-DSig namespace declared above the signature) still come out right.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from lxml import etree
from samples import envelope

from gateway.core.receipts import submission_receipt
from pki import receipts, seal, xmlsig_lean
from pki.receipts import verify_receipt
from pki.seal import seal_envelope, seal_tree, verify_sealed
from pki.sign import sign_envelope
from pki.xmlparse import parse
from pki.xmlsig_parts import DS, DSIG_NS, SEAL_ID


class _Deterministic:
    """A signer whose value depends only on the data (to compare two ways of making the same signature)."""

    def __init__(self, signer) -> None:
        self.signature_method, self.certificate, self.chain = signer.signature_method, signer.certificate, signer.chain

    def sign(self, data: bytes) -> bytes:
        return hashlib.sha512(data).digest()


@pytest.fixture
def count_trees(monkeypatch):
    """How many signatures were made as trees (``lean_signature``) meanwhile."""
    made = []
    for module in (seal, receipts):
        original = module.lean_signature
        monkeypatch.setattr(module, "lean_signature", lambda *a, _o=original, **k: made.append(1) or _o(*a, **k))
    return made


def _tree_way(monkeypatch, module) -> None:
    monkeypatch.setattr(module, "lean_signature_xml", lambda *a, **k: None)


def test_the_seal_written_as_bytes_is_the_seal_the_tree_gives(signer1, seal_signer, monkeypatch, count_trees):
    signer = _Deterministic(seal_signer)
    raw = sign_envelope(envelope(attachments=2), signer1)
    as_bytes_root = parse(raw)
    as_bytes = seal_tree(as_bytes_root, signer)
    assert count_trees == []
    # the tree holds the seal written, as the tree way leaves it
    assert [s.get("Id") for s in as_bytes_root.iter(DS + "Signature")][-1] == SEAL_ID
    with monkeypatch.context() as m:
        _tree_way(m, seal)
        tree_root = parse(raw)
        assert seal_tree(tree_root, signer) == as_bytes
    assert etree.tostring(as_bytes_root) == etree.tostring(tree_root)


def test_the_receipt_written_as_bytes_is_the_receipt_the_tree_gives(seal_signer, monkeypatch, count_trees):
    signer = _Deterministic(seal_signer)
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)

    def built():
        return submission_receipt(message_id="m-1", sender="00001", sha256_hex="ab" * 32, at=at).tree

    as_bytes = receipts.sign_receipt_tree(built(), signer)
    assert count_trees == []
    with monkeypatch.context() as m:
        _tree_way(m, receipts)
        assert receipts.sign_receipt_tree(built(), signer) == as_bytes


async def test_an_id_a_serialiser_escapes_is_sealed_as_a_tree(signer1, seal_signer, trust, count_trees):
    raw = envelope().replace(b'Id="att-1"', b'Id="att&amp;1"')
    forwarded = seal_envelope(raw, seal_signer)
    assert count_trees == [1]
    root = etree.fromstring(forwarded)
    assert "#att&1" in [r.get("URI") for r in root.iter(DS + "Reference")]
    assert xmlsig_lean.lean_signature_xml(seal_signer, [("#a b", root)], signature_id="X") is None


async def test_dsig_declared_above_the_signature_is_sealed_as_a_tree(signer1, seal_signer, trust, count_trees):
    raw = sign_envelope(envelope(), signer1)
    start = raw.index(b"<env:Envelope ") + len(b"<env:Envelope ")
    forwarded = seal_envelope(raw[:start] + f'xmlns:dsig="{DSIG_NS}" '.encode() + raw[start:], seal_signer)
    assert count_trees == [1]
    assert b"<dsig:Signature" in forwarded  # lxml's prefix, as the tree way writes it
    sealed = await verify_sealed(forwarded, trust, gateway_cert=seal_signer.certificate)
    assert sealed.seal_ok, sealed.seal_failure


async def test_seals_and_receipts_written_as_bytes_verify(signer1, seal_signer, trust, count_trees):
    forwarded = seal_envelope(sign_envelope(envelope(attachments=3, header_id="Header"), signer1), seal_signer)
    sealed = await verify_sealed(forwarded, trust, gateway_cert=seal_signer.certificate)
    assert sealed.seal_ok, sealed.seal_failure
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    receipt = submission_receipt(message_id="m-2", sender="00001", sha256_hex="cd" * 32, at=at)
    verified = await verify_receipt(receipts.sign_receipt_tree(receipt.tree, seal_signer), seal_signer.certificate)
    assert (verified.message_id, verified.sha256) == ("m-2", "cd" * 32)
    assert count_trees == []


def test_the_seal_not_read_back_gives_the_same_bytes(signer1, seal_signer, count_trees):
    """``keep_seal=False`` (the gateway's sealer, which drops the tree) returns the very bytes the seal kept in
    the tree gives, leaves the tree without the seal, and writes it as bytes all the same."""
    signer = _Deterministic(seal_signer)
    raw = sign_envelope(envelope(attachments=2), signer1)
    kept_root, dropped_root = parse(raw), parse(raw)
    kept = seal_tree(kept_root, signer)
    assert seal_tree(dropped_root, signer, keep_seal=False) == kept
    assert count_trees == []
    assert [s.get("Id") for s in dropped_root.iter(DS + "Signature")] == [
        s.get("Id") for s in kept_root.iter(DS + "Signature")][:-1]
