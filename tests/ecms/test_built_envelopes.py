"""Intake of a gateway-built envelope (:class:`gateway.intake.checks.BuiltEnvelope`) agrees with
intake of its bytes.

The e-CMS facade hands intake the tree and records it built an envelope from,
so intake neither parses the bytes again nor reads the records again (see
:mod:`gateway.intake.checks`). That is safe only if the two ways through always end
alike: the same bytes, digest, records and facts when accepted, the same code
and field when refused. Hypothesis generates e-CMS letters of every shape the
mapping takes (Thai and empty text, long enclosure text, more references than
the native schema allows, unknown and repeated receivers, top secret, files
and legacy signatures) and checks exactly that; for the accepted ones this is
also the proof that the builder's output validates against the native XSD.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.core import xml as gxml
from gateway.core.directory import Directory
from gateway.core.ecmswire import mapping, reading, records, soap, tables
from gateway.core.envelope_builder import build_envelope
from gateway.core.errors import GatewayError
from gateway.http.errors import status_for
from gateway.intake.checks import BuiltEnvelope, Intake
from tests.ecms.conftest import DIRECTORY, VECTORS, load_vector

DIR = Directory.from_dict(DIRECTORY)
CALLER = "11008"
KNOWN = ("11002", "20001", "1550100000", "11008")
AT = dt.datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7)))

# What a parsed e-CMS body can hold: XML characters (no surrogates or other C0 controls).
xml_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"
                          + "".join(chr(c) for c in range(32) if c not in (9, 10, 13)))
xml_text = st.text(alphabet=xml_chars, max_size=40)
thai = st.sampled_from(["", " ", "อก 0905/0007", "ขอเชิญประชุมคณะทำงาน", "สมชาย", "ปลัดกระทรวง", "a\r\nb"])
short = st.one_of(thai, xml_text)
#: Number and Subject: mostly present (an empty one is refused by the native schema, also generated).
named = st.one_of(st.sampled_from(["อก 0905/0007", "ขอเชิญประชุมคณะทำงาน", "ที่ 1/2567"]), short)
codes = st.sampled_from(list(tables.SPEED_CODES))
party = st.builds(records.Party, department=st.sampled_from(KNOWN + ("99999", "")), given_name=short,
                  family_name=short, job_title=short)
binary = st.builds(records.BinaryObject, mime_code=st.sampled_from(list(tables.MIME_TYPES) + ["x-weird/type"]),
                   content=st.binary(max_size=300))
reference = st.builds(records.Reference, id=named, date=st.dates(), subject=short)
letters = st.builds(
    records.EcmsLetter,
    id=named, date=st.dates(), subject=st.one_of(named, st.text(alphabet=xml_chars, min_size=990, max_size=1010)),
    speed_code=codes, secret_code=st.sampled_from(["001", "002", "003", "004"] + ["001"] * 4),
    sender=st.builds(records.Party, department=st.just(CALLER), given_name=short, family_name=short,
                     job_title=short),
    receivers=st.one_of(st.tuples(party.map(lambda p: records.Party("11002", p.given_name))),
                      st.lists(party, min_size=1, max_size=4).map(tuple)),
    references=st.one_of(st.lists(reference, max_size=3), st.lists(reference, min_size=101, max_size=101)).map(tuple),
    attachment_text=st.one_of(short, st.lists(st.sampled_from(["สำเนา 1 ฉบับ", "x" * 30, ""]), min_size=30,
                                              max_size=150).map("\n".join)),
    send_date=short, description=short,
    main_letter=st.none() | binary, attachments=st.lists(binary, max_size=3).map(tuple),
    signature_type=short,
    signer=st.none() | st.builds(records.Signer, given_name=short, family_name=short, title=short),
    signature_xml=st.sampled_from([b"", b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'/>"]),
)


def _outcome(intake: Intake, data: bytes):
    try:
        checked = asyncio.run(intake.check(data, agency=CALLER, channel="ecms"))
    except GatewayError as exc:
        return "refused", exc.code, exc.field, status_for(exc.code)
    return "accepted", checked.raw, checked.sha256, checked.envelope, checked.facts, checked.parts


def _both_ways(letter: records.EcmsLetter, intake: Intake | None = None):
    intake = intake or Intake(DIR, max_bytes=64 << 20)
    env = mapping.letter_to_envelope(letter, sender=CALLER, message_id=mapping.letter_message_id(CALLER, letter),
                                     created_at=AT, directory=DIR)
    try:
        built = BuiltEnvelope(env)
    except ValueError:  # text lxml cannot write: build_envelope refuses it the same way
        with pytest.raises(ValueError):
            build_envelope(env)
        return None
    assert bytes(built) == build_envelope(env)  # the bytes stored as received do not change
    fast, slow = _outcome(intake, built), _outcome(intake, bytes(built))
    assert fast == slow
    if fast[0] == "accepted":
        assert type(fast[1]) is bytes  # what is stored is plain bytes
        gxml.validate("envelope-v1.xsd", gxml.parse(bytes(built)))
    return fast


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(letters)
@example(records.EcmsLetter(id="อก 1/1", date=dt.date(2024, 1, 1), subject="", speed_code="001",
                            secret_code="001", sender=records.Party(CALLER), receivers=(records.Party("11002"),)))
@example(records.EcmsLetter(id="อก 1/1", date=dt.date(2024, 1, 1), subject="s", speed_code="001",
                            secret_code="004", sender=records.Party(CALLER), receivers=(records.Party("11002"),)))
def test_built_and_parsed_envelopes_are_checked_alike(letter):
    _both_ways(letter)


def test_the_generated_shapes_include_accepted_and_refused_letters():
    """Not a vacuous property: typical letters pass, and the schema's own limits still refuse."""
    base = records.EcmsLetter(id="อก 1/1", date=dt.date(2024, 1, 1), subject="เรื่อง", speed_code="002",
                              secret_code="002", sender=records.Party(CALLER, "สมชาย"),
                              receivers=(records.Party("11002", job_title="ปลัดกระทรวง"),),
                              main_letter=records.BinaryObject("application/pdf", b"%PDF-1.4"))
    assert _both_ways(base)[0] == "accepted"

    empty_subject = _both_ways(replace(base, subject=""))
    assert empty_subject[:3] == ("refused", "envelope.schema_invalid", "/Envelope/Letter/Subject")
    many = _both_ways(replace(base, references=(records.Reference("r", dt.date(2024, 1, 1)),) * 101))
    assert many[:2] == ("refused", "envelope.schema_invalid")
    assert _both_ways(replace(base, receivers=(records.Party("99999"),)))[1] == "envelope.unknown_recipient"
    assert _both_ways(replace(base, secret_code="004"))[1] == "policy.top_secret"


@pytest.mark.parametrize("name", sorted(p.stem for p in VECTORS.glob("letter-*.xml")))
def test_every_letter_vector(name):
    req = soap.parse_request(load_vector(name), validate=False)
    gov = req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument")
    try:
        soap.validate_operation(req)
        letter = reading.read_letter(gov)
    except GatewayError:
        return  # refused before any envelope is built
    _both_ways(letter)


def test_limits_still_apply_to_built_envelopes():
    letter = records.EcmsLetter(id="1", date=dt.date(2024, 1, 1), subject="s", speed_code="001", secret_code="001",
                                sender=records.Party(CALLER), receivers=(records.Party("11002"),),
                                attachments=(records.BinaryObject("text/plain", b"x" * 5000),))
    refused = _both_ways(letter, Intake(DIR, max_bytes=4000))
    assert refused == ("refused", "envelope.too_large", None, 413)
    assert _both_ways(letter, Intake(DIR, max_bytes=8000))[0] == "accepted"


def test_a_tree_handed_back_by_the_verifier_is_read_not_the_built_records():
    letter = records.EcmsLetter(id="1", date=dt.date(2024, 1, 1), subject="s", speed_code="001", secret_code="001",
                                sender=records.Party(CALLER), receivers=(records.Party("11002"),))
    env = mapping.letter_to_envelope(letter, sender=CALLER, message_id="m-1", created_at=AT, directory=DIR)
    seen = []

    async def verifier(raw, root, sender, *, channel):
        other = etree.fromstring(etree.tostring(root))
        other.find(f"{{{gxml.ENVELOPE_NS}}}Letter/{{{gxml.ENVELOPE_NS}}}Subject").text = "as verified"
        seen.append(root)
        return other, {"signed": True}

    built = BuiltEnvelope(env)
    checked = asyncio.run(Intake(DIR, max_bytes=1 << 20, verifier=verifier).check(built, agency=CALLER,
                                                                                   channel="ecms"))
    assert seen == [built.tree]
    assert checked.envelope.letter.subject == "as verified" and checked.facts["signed"] is True
