"""The hardened parser against hostile shapes (issue 13, classes 6 and 8).

* a byte order mark and the XML declaration that disagree are refused before lxml reads the
  bytes (``<what>.encoding_unsupported``), for every BOM and every document kind;
* attributes per element, name length, namespace URI length and depth are bounded
  (``<what>.too_complex``, ``field`` naming the limit), checked while the tree is built, before
  any schema sees it.
"""

from __future__ import annotations

import time

import pytest

from gateway.core import xml as gxml
from gateway.core.errors import EnvelopeError
from gateway.http.errors import status_for
from pki import xmlparse
from pki.errors import XmlError
from tests.support import letter_bytes

BOMS = {
    "utf-8": b"\xef\xbb\xbf",
    "utf-16-le": b"\xff\xfe",
    "utf-16-be": b"\xfe\xff",
    "utf-32-le": b"\xff\xfe\x00\x00",
    "utf-32-be": b"\x00\x00\xfe\xff",
}


def _doc(bom: str, declared: str, text: str = "ขอเชิญ") -> bytes:
    """``<?xml ... encoding=declared?><a>text</a>`` written in the BOM's encoding, BOM first."""
    return BOMS[bom] + f"<?xml version='1.0' encoding='{declared}'?><a>{text}</a>".encode(bom)


@pytest.mark.parametrize(("bom", "declared"), [
    ("utf-8", "UTF-16"),          # the example: accepted as UTF-8, strict receivers refuse it
    ("utf-8", "ISO-8859-1"),
    ("utf-8", "TIS-620"),
    ("utf-16-le", "UTF-8"),
    ("utf-16-be", "UTF-8"),
    ("utf-16-le", "UTF-16BE"),
    ("utf-16-be", "UTF-16LE"),
    ("utf-16-le", "ISO-8859-1"),
    ("utf-32-le", "UTF-8"),
    ("utf-32-be", "UTF-16"),
])
@pytest.mark.parametrize("what", ["envelope", "ecms", "ack"])
def test_a_bom_and_a_declaration_that_disagree_are_refused(bom, declared, what):
    data = _doc(bom, declared)
    with pytest.raises(XmlError) as exc:
        xmlparse.parse(data, what=what)
    assert (exc.value.code, exc.value.field) == (f"{what}.encoding_unsupported", "/")
    assert status_for(exc.value.code) == 400


@pytest.mark.parametrize("data", [
    b"\xff\xfe" + b"<?xml version='1.0' encoding='UTF-8'?><a/>",          # UTF-16LE BOM, 8-bit declaration
    b"\x00\x00\xfe\xff" + b"<?xml version='1.0' encoding='UTF-8'?><a/>",  # UTF-32BE BOM, 8-bit declaration
    b"\xef\xbb\xbf" + "<?xml version='1.0' encoding='UTF-8'?><a/>".encode("utf-16-le"),  # UTF-8 BOM, UTF-16 text
])
def test_a_bom_before_a_declaration_written_in_another_encoding_is_refused(data):
    for what in ("envelope", "ecms"):
        with pytest.raises(XmlError) as exc:
            xmlparse.parse(data, what=what)
        assert exc.value.code == f"{what}.encoding_unsupported"


def test_the_gateway_raises_the_refusal_as_its_own_error():
    with pytest.raises(EnvelopeError) as exc:
        gxml.parse(b"\xef\xbb\xbf" + letter_bytes().replace(b"encoding='UTF-8'", b"encoding='UTF-16'"))
    assert (exc.value.code, exc.value.field) == ("envelope.encoding_unsupported", "/")


@pytest.mark.parametrize(("bom", "declared"), [
    ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-16-le", "utf-16le"), ("utf-16-be", "UTF-16BE"),
    ("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32BE"),
])
def test_a_bom_that_agrees_with_its_declaration_is_read_where_legacy_encodings_are_kept(bom, declared):
    if bom.startswith("utf-32"):  # libxml2 reads UTF-32 only through iconv: skip where it cannot
        try:
            xmlparse.parse(_doc(bom, declared), what="ecms")
        except XmlError as exc:
            assert exc.code == "ecms.not_xml"
            return
    assert xmlparse.parse(_doc(bom, declared), what="ecms").text == "ขอเชิญ"
    with pytest.raises(XmlError) as exc:  # still not an envelope: those are UTF-8
        xmlparse.parse(_doc(bom, declared))
    assert exc.value.code == "envelope.encoding_unsupported"


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><a/>",
    b"\xef\xbb\xbf<?xml version='1.0' encoding=\"utf8\"?><a/>",
    b"\xef\xbb\xbf<?xml version='1.0'?><a/>",
    b"\xef\xbb\xbf<a/>",
    b"<?xml version='1.0' encoding='US-ASCII'?><a/>",
])
def test_utf8_with_or_without_a_bom_is_an_envelope(data):
    assert xmlparse.parse(data).tag == "a"


# ---------------------------------------------------------------------------- resource limits


def _with_body(inner: bytes) -> bytes:
    return letter_bytes().replace(b"<Speed>", inner + b"<Speed>", 1)


@pytest.mark.parametrize(("data", "limit"), [
    # the examples
    (_with_body(b"<x " + b" ".join(b'a%d="x"' % i for i in range(10_000)) + b"/>"), "attributes"),
    (_with_body(b"<" + b"n" * 40_000 + b"/>"), "name"),
    (_with_body(b'<x xmlns:z="urn:' + b"u" * 1_000_000 + b'"/>'), "namespace"),
    (_with_body(b"<x>" * 250 + b"</x>" * 250), "depth"),
    # just over each limit
    (_with_body(b"<x " + b" ".join(b'a%d="x"' % i for i in range(xmlparse.MAX_ATTRIBUTES + 1)) + b"/>"),
     "attributes"),
    (_with_body(b"<x " + b" ".join(b'xmlns:p%d="urn:x"' % i for i in range(xmlparse.MAX_ATTRIBUTES + 1))
                + b"/>"), "attributes"),
    (_with_body(b'<x ' + b"a" * (xmlparse.MAX_NAME + 1) + b'="1"/>'), "name"),
    (_with_body(b"<p" + b"p" * xmlparse.MAX_NAME + b':x xmlns:p' + b"p" * xmlparse.MAX_NAME + b'="urn:x"/>'),
     "name"),
    (_with_body(b'<x xmlns="urn:' + b"u" * xmlparse.MAX_NAMESPACE_URI + b'"/>'), "namespace"),
    (b"<a>" * (xmlparse.MAX_DEPTH + 1) + b"</a>" * (xmlparse.MAX_DEPTH + 1), "depth"),
    # past libxml2's own depth limit: the same code
    (b"<a>" * 5000 + b"</a>" * 5000, "depth"),
])
@pytest.mark.parametrize("what", ["envelope", "ecms"])
def test_parser_resource_limits(data, limit, what):
    t0 = time.perf_counter()
    with pytest.raises(XmlError) as exc:
        xmlparse.parse(data, what=what)
    assert (exc.value.code, exc.value.field) == (f"{what}.too_complex", limit), exc.value.message
    assert time.perf_counter() - t0 < 0.5
    if what == "envelope":
        assert status_for(exc.value.code) == 400


def test_documents_at_the_limits_are_read():
    at_limits = _with_body(
        b"<x>" * (xmlparse.MAX_DEPTH - 4) + b"</x>" * (xmlparse.MAX_DEPTH - 4)  # Envelope/Letter/Speed... + x
        + b'<x xmlns:q="urn:' + b"u" * (xmlparse.MAX_NAMESPACE_URI - 4) + b'" '
        + b" ".join(b'a%d="x"' % i for i in range(xmlparse.MAX_ATTRIBUTES - 1)) + b"/>"
        + b"<" + b"n" * xmlparse.MAX_NAME + b"/>")
    root = xmlparse.parse(at_limits)
    assert root.tag.endswith("Envelope")


def test_the_limits_hold_real_envelopes_comfortably():
    """Signed envelopes nest about 12 deep (XAdES), carry a handful of attributes and short names."""
    assert xmlparse.MAX_DEPTH >= 32 and xmlparse.MAX_ATTRIBUTES >= 32
    assert xmlparse.MAX_NAME >= 128 and xmlparse.MAX_NAMESPACE_URI >= 512
