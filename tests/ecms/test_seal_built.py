"""The envelope built from an e-CMS letter is sealed on the tree it was built as, not on a second parse
of its bytes (:meth:`gateway.core.signing.VerifiedTrees.put_built`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from lxml import etree

from gateway.core.directory import Directory
from gateway.core.ecmswire import mapping, reading, soap
from gateway.core.signing import VERIFIED_TREES, PkiSealer, Trust, VerifiedTrees
from gateway.intake.checks import BuiltEnvelope
from pki.seal import seal_envelope, verify_sealed
from pki.xmlsig_parts import DS, SEAL_ID
from tests.ecms.conftest import DIRECTORY, load_vector
from tests.integration.conftest import make_settings

AT = dt.datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7)))


def _built(number: str = "อก 0905/0007") -> BuiltEnvelope:
    req = soap.parse_request(load_vector("letter-vb-linqws"))
    letter = reading.read_letter(req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument"))
    letter = replace(letter, id=number)
    env = mapping.letter_to_envelope(letter, sender="11008", message_id=mapping.letter_message_id("11008", letter),
                                     created_at=AT, directory=Directory.from_dict(DIRECTORY))
    return BuiltEnvelope(env)


def _without_values(data: bytes) -> bytes:
    root = etree.fromstring(data)
    for value in root.iter(DS + "SignatureValue"):
        value.text = ""
    return etree.tostring(root)


async def test_the_verifier_hands_the_built_tree_to_the_sealer(dev_pki, tmp_path):
    seal = dev_pki.seal_signer()
    trust = Trust(store=dev_pki.trust_store(ocsp=False), seal_signer=seal, gateway_cert=seal.certificate,
                  tls_cert=None, tls_key=None, anchors_pem=())
    verify = trust.verifier(make_settings("postgresql://unused/x", tmp_path))
    built = _built()
    root, facts = await verify(built, built.tree, "11008", channel="ecms")
    assert root is built.tree and facts == {"signed": False}
    received = bytes(built)  # what intake hands on: a copy of the bytes, not the built object
    assert received is not built
    forwarded = PkiSealer(seal).seal_envelope(received)
    # sealed on the built tree itself, taken once; the same bytes as sealing a parse, but for the values
    assert [s.get("Id") for s in built.tree.iter(DS + "Signature")] == [SEAL_ID]
    assert VERIFIED_TREES.take(received) is None
    assert _without_values(forwarded) == _without_values(seal_envelope(received, seal))
    sealed = await verify_sealed(forwarded, trust.store, gateway_cert=seal.certificate, require_signature=False)
    assert sealed.seal_ok, sealed.seal_failure


def test_a_built_tree_is_taken_by_equal_bytes_and_bounded_with_the_rest():
    trees = VerifiedTrees(maxsize=3)
    built = [_built(f"อก 0905/{i}") for i in range(5)]
    for b in built:
        trees.put_built(b, b.tree)
    parsed = bytes(900)
    trees.put(parsed, etree.Element("x"))
    assert trees.take(bytes(bytearray(parsed))) is None  # a parsed tree: only for the very object
    # the oldest went first; the others are found by content
    assert [trees.take(bytes(b)) is b.tree for b in built] == [False, False, False, True, True]
    assert trees.take(parsed) is not None
    assert trees._held == 0 and trees._built_lengths == {}
