"""Parse once: the verified tree is the one sealed, the built receipt tree the one signed."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from interop import EVERY_PART, legacy_sign, xmlsec_sign
from lxml import etree
from samples import envelope

from gateway.core.receipts import ReceiptBytes, delivery_receipt_envelope, submission_receipt
from gateway.core.signing import PkiSealer, VerifiedTrees
from pki.errors import StructureError
from pki.receipts import sign_receipt, verify_receipt
from pki.seal import seal_envelope, seal_tree, verify_sealed
from pki.sign import sign_envelope
from pki.verify import verify_envelope
from pki.xmlsig_parts import DS, SEAL_ID, c14n


def _without_values(data: bytes) -> bytes:
    """The document with every SignatureValue emptied (ECDSA values differ from one signing to the next)."""
    root = etree.fromstring(data)
    for value in root.iter(DS + "SignatureValue"):
        value.text = ""
    return etree.tostring(root)


async def test_the_verified_tree_is_sealed_not_a_second_parse(signer1, seal_signer, trust, dev_pki):
    raw = sign_envelope(envelope(attachments=2), signer1)
    verified = await verify_envelope(raw, trust, sender="00001")
    trees = VerifiedTrees()
    trees.put(verified.raw, verified.root)
    sealer = PkiSealer(seal_signer, trees)
    forwarded = sealer.seal_envelope(verified.raw)
    # the seal was added to the verified tree itself, and the handoff is used once
    assert [s.get("Id") for s in verified.root.iter(DS + "Signature")][-1] == SEAL_ID
    assert trees.take(verified.raw) is None
    # same bytes as sealing a fresh parse, but for the signature value; and it verifies
    assert _without_values(forwarded) == _without_values(seal_envelope(raw, seal_signer))
    sealed = await verify_sealed(forwarded, trust, gateway_cert=seal_signer.certificate)
    assert sealed.seal_ok, sealed.seal_failure


async def test_the_seal_uses_what_the_verifier_found(signer1, seal_signer, trust):
    raw = sign_envelope(envelope(attachments=2), signer1)
    verified = await verify_envelope(raw, trust, sender="00001")
    assert verified.ids["Letter"] == [verified.body]
    # each digest as the seal computes it (exclusive c14n, SHA-256): the body's, each attachment's (and the
    # XAdES SignedProperties')
    assert {f"#{el.get('Id')}" for el in (verified.body, *verified.attachments)} <= verified.exclusive_sha256.keys()
    assert all(digest == hashlib.sha256(c14n(verified.ids[uri[1:]][0])).digest()
               for uri, digest in verified.exclusive_sha256.items())
    trees = VerifiedTrees()
    trees.put(verified.raw, verified.root, verified)
    assert trees.take_verified(verified.raw) == (verified.root, verified)
    trees.put(verified.raw, verified.root, verified)
    forwarded = PkiSealer(seal_signer, trees).seal_envelope(verified.raw)
    # the same envelope as with an index and digests of its own, and the verifier's index is left as it was
    assert _without_values(forwarded) == _without_values(seal_envelope(raw, seal_signer))
    assert SEAL_ID not in verified.ids and "Header" not in verified.ids
    assert (await verify_sealed(forwarded, trust, gateway_cert=seal_signer.certificate)).seal_ok


async def test_the_seal_signs_the_digests_it_is_handed(signer1, seal_signer, trust):
    # They are taken as they come (computing them again is what they save): a wrong one makes a seal that
    # fails at every receiver, never one over other bytes than those the author's signature covers.
    raw = sign_envelope(envelope(attachments=1), signer1)
    verified = await verify_envelope(raw, trust, sender="00001")
    wrong = {uri: bytes(32) for uri in verified.exclusive_sha256}
    forwarded = seal_tree(verified.root, seal_signer, ids=verified.ids, exclusive_sha256=wrong)
    sealed = await verify_sealed(forwarded, trust, gateway_cert=seal_signer.certificate)
    assert not sealed.seal_ok and sealed.seal_failure is not None


async def test_bare_references_hand_over_no_digest(signer1, trust):
    # libxmlsec1's bare references (inclusive C14N 1.0): not the seal's form, nothing handed over
    raw = xmlsec_sign(legacy_sign(envelope(attachments=1), signer1, xades=False, sign_header=False), signer1,
                      bare=EVERY_PART)
    verified = await verify_envelope(raw, trust, sender="00001")
    assert dict(verified.exclusive_sha256) == {}


async def test_an_id_index_of_another_tree_is_refused(signer1, seal_signer, trust):
    raw = sign_envelope(envelope(attachments=1), signer1)
    first = await verify_envelope(raw, trust, sender="00001")
    second = await verify_envelope(raw, trust, sender="00001")  # the same bytes, another tree
    with pytest.raises(StructureError, match="names another element"):
        seal_tree(second.root, seal_signer, ids=first.ids)


async def test_the_handoff_takes_only_the_very_bytes_object(signer1, seal_signer, trust):
    raw = sign_envelope(envelope(), signer1)
    verified = await verify_envelope(raw, trust, sender="00001")
    trees = VerifiedTrees()
    trees.put(raw, verified.root)
    equal_copy = bytes(bytearray(raw))
    assert equal_copy == raw and equal_copy is not raw
    assert trees.take(equal_copy) is None  # equal bytes, other object: parsed again, never a stale tree
    assert trees.take(raw) is verified.root


def test_the_handoff_is_bounded_in_entries_and_bytes():
    trees = VerifiedTrees(maxsize=3, max_bytes=4000)
    held = [(bytes(900) + bytes([i]), etree.Element("x")) for i in range(6)]
    for raw, root in held:
        trees.put(raw, root)
    assert [trees.take(raw) is not None for raw, _ in held] == [False, False, False, True, True, True]
    big = bytes(1500)
    trees.put(big, etree.Element("x"))  # over a quarter of the budget: not held
    assert trees.take(big) is None


async def test_the_built_receipt_tree_is_signed_without_a_parse(seal_signer):
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    receipt = submission_receipt(message_id="m-1", sender="00001", sha256_hex="ab" * 32, at=at)
    assert isinstance(receipt, ReceiptBytes)
    assert receipt == etree.tostring(receipt.tree, xml_declaration=True, encoding="UTF-8")
    unsigned = bytes(receipt)
    signed = PkiSealer(seal_signer, VerifiedTrees()).sign_receipt(receipt)
    assert _without_values(signed) == _without_values(sign_receipt(unsigned, seal_signer))
    verified = await verify_receipt(signed, seal_signer.certificate)
    assert (verified.message_id, verified.sender, verified.sha256) == ("m-1", "00001", "ab" * 32)


async def test_the_delivery_receipt_tree_is_signed_as_built(seal_signer):
    at = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
    _, receipt = delivery_receipt_envelope(delivery_id=uuid.UUID(int=7), message_id="m-2", conversation_id=None,
                                           sender="00001", recipient="00002", sha256_hex="cd" * 32, at=at)
    assert isinstance(receipt, ReceiptBytes)
    assert receipt == etree.tostring(receipt.tree, xml_declaration=True, encoding="UTF-8")
    signed = PkiSealer(seal_signer, VerifiedTrees()).sign_receipt(receipt)
    verified = await verify_receipt(signed, seal_signer.certificate)
    assert (verified.kind, verified.delivery_id, verified.recipient) == ("delivery", str(uuid.UUID(int=7)), "00002")
