"""rsm:GovernmentDocument built from a kept skeleton of its shape is the tree built element by element."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from lxml import etree

from gateway.core import envelope_builder
from gateway.core.directory import Directory
from gateway.core.ecmswire import building, mapping, records, soap
from gateway.core.ecmswire.reading import read_letter
from tests.ecms.conftest import DIRECTORY, load_vector


def _letter(name: str) -> records.EcmsLetter:
    req = soap.parse_request(load_vector(name))
    return read_letter(req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument"))


def _fresh(letter: records.EcmsLetter, **kw) -> bytes:
    """Built element by element (no skeleton kept yet)."""
    building._shapes.clear()
    return etree.tostring(building.build_government_document(letter, **kw))


def _variants(letter: records.EcmsLetter) -> list[records.EcmsLetter]:
    ref = records.Reference(id="นร 0105/ว 9", date=dt.date(2024, 1, 2), subject="อ้างถึง & <ก>")
    other = records.Party(department="11002", given_name="ข", family_name="ค", job_title="ผู้ว่า")
    return [
        letter,
        dataclasses.replace(letter, id="อก 0905/8", subject="เรื่องอื่น", description=""),
        dataclasses.replace(letter, receivers=(*letter.receivers, other), references=(ref, ref)),
        dataclasses.replace(letter, main_letter=None, attachments=(), signer=None, signature_type=""),
        dataclasses.replace(letter, attachments=(records.BinaryObject("image/png", b"\x89PNG"),) * 3),
    ]


@pytest.mark.parametrize("name", ["letter-vb-linqws", "letter-mildoc-xlinq"])
@pytest.mark.parametrize("files", [True, False])
def test_a_kept_shape_builds_the_same_bytes(name, files):
    for variant in _variants(_letter(name)):
        expected = _fresh(variant, files=files)
        building.build_government_document(variant, files=files)  # now its shape is kept
        for other in _variants(_letter(name)):  # other letters fill the skeletons in turn
            building.build_government_document(other, files=files)
        assert etree.tostring(building.build_government_document(variant, files=files)) == expected


def test_without_files_each_binary_object_is_empty_with_its_mime_code():
    letter = dataclasses.replace(_letter("letter-vb-linqws"),
                                 attachments=(records.BinaryObject("image/png", b"\x89PNG"),))
    doc = building.build_government_document(letter, files=False)
    objects = doc.findall(f".//{{{soap.RAM_NS}}}MainLetterBinaryObject") + \
        doc.findall(f".//{{{soap.RAM_NS}}}AttachmentBinaryObject")
    assert [(o.text, o.get("mimeCode")) for o in objects] == [("", "application/pdf"), ("", "image/png")]


def test_a_kept_skeleton_holds_no_letter_content():
    letter = _letter("letter-vb-linqws")
    building._shapes.clear()
    building.build_government_document(letter)
    (skeleton,) = building._shapes.skeletons.values()
    assert not any(el.text for el in skeleton.iterdescendants())
    assert not any(v for el in skeleton.iterdescendants() for v in el.attrib.values())


def test_a_signature_goes_into_the_government_signature():
    sig = etree.Element("{http://www.w3.org/2000/09/xmldsig#}Signature")
    letter = dataclasses.replace(_letter("letter-vb-linqws"), signer=None, signature_type="")
    for _ in range(2):  # built, then from the kept skeleton
        doc = building.build_government_document(letter, signature=sig)
        assert doc[-1].tag == f"{{{soap.RAM_NS}}}GovernmentSignature" and doc[-1][-1].tag == sig.tag


@pytest.mark.parametrize("name", ["letter-vb-linqws", "letter-mildoc-xlinq"])
def test_a_letter_answer_built_whole_is_the_echo_in_its_envelope(name):
    at = dt.datetime(2026, 12, 6, 9, 30, 15, 120000, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    building._answers.clear()
    for i, variant in enumerate(_variants(_letter(name)) * 2):  # built, then from the kept skeletons
        process_id = f"ecms.{i:040d}"
        expected = soap.serialize(soap.envelope(soap.response(
            "CorrespondenceLetterOutboundResponse", building.build_government_document(variant, files=False),
            process_id=process_id, at=at)))
        whole = building.build_letter_answer("CorrespondenceLetterOutboundResponse", variant,
                                             process_id=process_id, at=at)
        assert soap.serialize(soap.enveloped(whole)) == expected
    assert not any(el.text for skeleton in building._answers.skeletons.values() for el in skeleton.iter())


def test_a_native_envelope_from_a_kept_shape_is_the_one_built_element_by_element():
    """The e-CMS letter's native envelope (:func:`gateway.core.envelope_builder.build_envelope_tree`) is
    filled into a kept skeleton of its shape after the first of that shape: the same bytes."""
    at = dt.datetime(2026, 12, 6, 9, 30, 15, 120000, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    directory = Directory.from_dict(DIRECTORY)
    envelopes = [mapping.letter_to_envelope(v, sender="11008", message_id=f"ecms.{i}", created_at=at,
                                            directory=directory)
                 for name in ("letter-vb-linqws", "letter-mildoc-xlinq")
                 for i, v in enumerate(_variants(_letter(name)))]
    envelope_builder._shapes.clear()
    fresh = [envelope_builder.build_envelope(env) for env in envelopes]  # the first of each shape: built
    assert envelope_builder._shapes.skeletons
    assert [envelope_builder.build_envelope(env) for env in envelopes] == fresh
    assert [envelope_builder.build_envelope(env) for env in reversed(envelopes)] == fresh[::-1]
    skeletons = envelope_builder._shapes.skeletons.values()
    assert not any(el.text or any(el.attrib.values()) for tpl in skeletons for el in tpl.iterdescendants())
