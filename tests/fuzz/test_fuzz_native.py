"""Property-based fuzzing of the native API (``POST /v1/messages``) on a real gateway.

Envelopes are mutations of a valid letter from ``tests.support.letter_bytes``: byte flips,
element deletions and duplications, text replaced with random Unicode (Thai included),
attribute injection; attachments get random content, sizes, digests and base64; headers get
random Content-Type, Authorization and extra fields. For every example: no 5xx, a refusal
carries a documented code, and a refusal leaves every table as it was (see properties.py).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.fuzz.conftest import examples
from tests.fuzz.properties import refusal_code
from tests.support import OPM, TOKENS, letter_bytes

_ids = itertools.count(1)
AUTH = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
THAI = st.characters(min_codepoint=0x0E01, max_codepoint=0x0E5B)
#: Any character XML 1.0 can carry (lxml refuses the others when building a tree).
XML_CHAR = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff") | \
    st.sampled_from("\t\n\r")
TEXT = st.text(st.one_of(THAI, XML_CHAR), max_size=40) | st.text(THAI, min_size=990, max_size=1010)


def fresh_letter() -> bytes:
    """A valid letter with a message id no other example used (acceptances do not collide)."""
    return letter_bytes(message_id=f"fuzz-{next(_ids)}")


async def post(gateway, body: bytes, headers=AUTH):
    before = await gateway.rows()
    resp = await gateway.client.post("/v1/messages", data=body, headers=headers)
    raw = await resp.read()
    after = await gateway.rows()
    return resp.status, raw, before, after


async def check(gateway, body: bytes, what: str, headers=AUTH) -> str | None:
    status, raw, before, after = await post(gateway, body, headers)
    code = refusal_code(status, raw, body, what)
    if code is not None or status == 200:  # refused, or a repeat answered with the original receipt
        assert after == before, f"{what}: {code or 'repeat'} left rows behind: {before} -> {after}"
    else:
        assert after["messages"] == before["messages"] + 1, (before, after)
    return code


# ---------------------------------------------------------------------------- envelopes


@settings(max_examples=examples(60))
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6))
async def test_byte_flips(gateway, flips):
    data = bytearray(fresh_letter())
    for at, value in flips:
        data[at % len(data)] = value
    await check(gateway, bytes(data), "byte-flip")


def _elements(root: etree._Element) -> list[etree._Element]:
    return [el for el in root.iter() if isinstance(el.tag, str)]


@settings(max_examples=examples(60))
@given(ops=st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "move-last"]), st.integers(min_value=0)),
                    min_size=1, max_size=3))
async def test_element_deletions_and_duplications(gateway, ops):
    root = etree.fromstring(fresh_letter())
    for op, pick in ops:
        elements = _elements(root)[1:]  # never the root itself
        if not elements:
            break
        el = elements[pick % len(elements)]
        parent = el.getparent()
        if op == "delete":
            parent.remove(el)
        elif op == "duplicate":
            el.addnext(copy.deepcopy(el))
        else:
            parent.remove(el)
            parent.append(el)
    code = await check(gateway, etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "element-op")
    assert code != "envelope.not_xml"  # a tree serialised by lxml is always well-formed


@settings(max_examples=examples(60))
@given(picks=st.lists(st.tuples(st.integers(min_value=0), TEXT), min_size=1, max_size=3))
async def test_text_replaced_with_random_unicode(gateway, picks):
    root = etree.fromstring(fresh_letter())
    elements = _elements(root)
    for pick, text in picks:
        elements[pick % len(elements)].text = text
    await check(gateway, etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "text")


ATTR_NAME = st.sampled_from(["Id", "id", "role", "version", "{http://www.w3.org/XML/1998/namespace}id",
                             "{http://www.w3.org/2001/XMLSchema-instance}type",
                             "{http://www.w3.org/2001/XMLSchema-instance}nil"]) | \
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,12}", fullmatch=True)


@settings(max_examples=examples(60))
@given(injections=st.lists(st.tuples(st.integers(min_value=0), ATTR_NAME,
                                     st.text(XML_CHAR, max_size=20) | st.sampled_from(["Letter", "att-1", "main"])),
                           min_size=1, max_size=4))
async def test_attribute_injection(gateway, injections):
    root = etree.fromstring(fresh_letter())
    elements = _elements(root)
    for pick, name, value in injections:
        elements[pick % len(elements)].set(name, value)
    code = await check(gateway, etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "attribute")
    assert code != "envelope.dtd_forbidden"  # (not_xml is right for an xml:id that is not an NCName)


# ---------------------------------------------------------------------------- attachments

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@st.composite
def attachment_case(draw):
    """(content, declared size, declared digest, base64 text, honest?)"""
    content = draw(st.binary(max_size=3000))
    real = base64.b64encode(content).decode("ascii")
    encoded = draw(st.one_of(
        st.just(real),
        st.just("\n".join(real[i:i + 76] for i in range(0, len(real), 76))),   # MIME line wrapping: fine
        st.text(st.sampled_from(B64 + "=\n \t"), max_size=200),                  # random base64-ish
        st.text(st.sampled_from(B64 + "!*-_.~กข"), min_size=1, max_size=60),     # junk among base64
        st.just(real.rstrip("=")), st.just(real + "="),
    ))
    size = draw(st.one_of(st.just(str(len(content))), st.integers(0, 10 ** 6).map(str), st.just("9" * 5000),
                          st.just(f"+{len(content)}"), st.just(f" 0{len(content)} "), st.just("-0"),
                          st.just("1e3")))
    digest = draw(st.one_of(st.just(hashlib.sha256(content).hexdigest()),
                            st.text(st.sampled_from("0123456789abcdef"), min_size=64, max_size=64)))
    honest = (encoded.replace("\n", "") == real and len(size) < 50 and size.strip().lstrip("+-").isdigit()
              and int(size) == len(content)
              and digest == hashlib.sha256(content).hexdigest())
    return content, size, digest, encoded, honest


@settings(max_examples=examples(80))
@given(cases=st.lists(attachment_case(), min_size=1, max_size=3))
async def test_attachments_with_random_content_sizes_digests_and_base64(gateway, cases):
    root = etree.fromstring(fresh_letter())
    ns = root.nsmap[None]
    container = root.find(f"{{{ns}}}Attachments")
    for el in list(container):
        container.remove(el)
    for i, (_content, size, digest, encoded, _) in enumerate(cases, start=1):
        a = etree.SubElement(container, f"{{{ns}}}Attachment", Id=f"att-{i}", role="enclosure")
        for name, value in (("FileName", f"ไฟล์-{i}.bin"), ("MimeType", "application/octet-stream"),
                            ("Size", size), ("Sha256", digest), ("Content", encoded)):
            etree.SubElement(a, f"{{{ns}}}{name}").text = value
    code = await check(gateway, etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "attachments")
    if all(c[4] for c in cases):
        assert code is None, f"honest attachments refused with {code}"
    else:
        assert code in ("envelope.schema_invalid", "attachment.base64_invalid", "attachment.digest_mismatch",
                        "attachment.digest_mismatch", "attachment.too_large"), code


# ---------------------------------------------------------------------------- headers

HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


@settings(max_examples=examples(60))
@given(content_type=st.one_of(st.none(), st.sampled_from(["application/xml", "text/xml; charset=utf-8",
                                                          "application/soap+xml", "text/plain", "application/json",
                                                          "multipart/related; boundary=x", "application/xml;;;"]),
                              HEADER_VALUE),
       authorization=st.one_of(st.none(), st.just(f"Bearer {TOKENS[OPM]}"), st.just(f"bearer  {TOKENS[OPM]} "),
                               st.just(f"Bearer {TOKENS['1550100000']}"), HEADER_VALUE.map(lambda v: "Bearer " + v),
                               HEADER_VALUE),
       extra=st.dictionaries(st.from_regex(r"X-[A-Za-z0-9\-]{1,20}", fullmatch=True) | st.sampled_from(
           ["X-Request-Id", "Accept", "Accept-Encoding", "Expect", "Forwarded", "X-Forwarded-For"]),
           HEADER_VALUE, max_size=4),
       repeat=st.booleans())
async def test_random_headers(gateway, content_type, authorization, extra, repeat):
    body = fresh_letter()
    headers = dict(extra)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if authorization is not None:
        headers["Authorization"] = authorization
    headers.pop("Expect", None)  # aiohttp's client handles Expect itself; the server side is what we fuzz
    code = await check(gateway, body, "headers", headers=headers)
    if repeat and code is None:  # the same bytes again: the original receipt, nothing new stored
        assert await check(gateway, body, "headers-repeat", headers=headers) is None
