import pytest

from gateway import xml
from gateway.errors import EnvelopeError
from tests.support import letter_bytes


def test_parses_a_valid_envelope_and_validates_it():
    root = xml.parse(letter_bytes())
    xml.validate("envelope-v1.xsd", root)
    assert root.tag == f"{{{xml.ENVELOPE_NS}}}Envelope"


@pytest.mark.parametrize("doc", [
    b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
    b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/evil.dtd"><x/>',
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>',
])
def test_dtds_and_entities_are_refused(doc):
    with pytest.raises(EnvelopeError) as e:
        xml.parse(doc)
    assert e.value.code == "envelope.dtd_forbidden"


def test_doctype_after_a_long_prolog_is_still_refused():
    doc = b"<!--" + b"x" * 8000 + b'--><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
    with pytest.raises(EnvelopeError) as e:
        xml.parse(doc)
    assert e.value.code == "envelope.dtd_forbidden"


def test_not_xml():
    with pytest.raises(EnvelopeError) as e:
        xml.parse(b"%PDF-1.4 not xml")
    assert e.value.code == "envelope.not_xml"


def test_size_is_checked_before_parsing():
    with pytest.raises(EnvelopeError) as e:
        xml.parse(b"<x>" + b"a" * 100 + b"</x>", max_bytes=50)
    assert e.value.code == "envelope.too_large" and e.value.status == 413


def test_excessive_depth_is_refused():
    doc = b"<a>" * 5000 + b"</a>" * 5000
    with pytest.raises(EnvelopeError) as e:
        xml.parse(doc)
    assert e.value.code == "envelope.not_xml"


def test_schema_error_names_the_field():
    doc = letter_bytes().replace(b"<Speed>urgent</Speed>", b"<Speed>fast</Speed>")
    root = xml.parse(doc)
    with pytest.raises(EnvelopeError) as e:
        xml.validate("envelope-v1.xsd", root)
    assert e.value.code == "envelope.schema_invalid"
    assert "Speed" in e.value.field
