"""Property-based fuzzing of the e-CMS SOAP facade (``POST /ecms-ws01/service2``) on a real gateway.

Requests are mutations of the conformance vectors (conformance/ecms/vectors, caller 11008):
byte flips, element deletions and duplications, text replaced with random Unicode (Thai
included), attribute injection, random base64 in the binary objects. Properties, per the
e-CMS contract in gateway/ecms/CODES.md:

* no crash and no server fault: an answer is HTTP 200 (ErrorDetail inside the operation's
  answer), 413, or HTTP 500 carrying a SOAP *Client* fault with one of the codes for
  "not e-CMS at all" (ECMS-100..104); never ECMS-500/503, never a Server fault;
* every ErrorCode is in the documented table;
* a refusal (any ErrorDetail) leaves every table as it was.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.core import appkeys as keys
from gateway.core.ecmswire import soap
from gateway.ecms.codes import CODES
from gateway.ecms.settings import ECMS_PATH
from gateway.exchange.service import LegacyPort
from tests.fuzz.conftest import examples
from tests.fuzz.properties import keep
from tests.fuzz.test_fuzz_native import TEXT, XML_CHAR

VECTORS = Path(__file__).resolve().parents[2] / "conformance" / "ecms" / "vectors"
SOURCES = sorted(p.name for p in VECTORS.glob("*.xml") if not p.name.startswith("hostile-"))


def _well_formed(name: str) -> bool:
    try:
        etree.fromstring((VECTORS / name).read_bytes())
        return True
    except etree.XMLSyntaxError:  # a few vectors are malformed on purpose, as real clients send them
        return False


TREES = [name for name in SOURCES if _well_formed(name)]
HEADERS = {"Authorization": "Bearer t-11008", "Content-Type": "text/xml; charset=utf-8"}
NOT_ECMS_AT_ALL = {"ECMS-100", "ECMS-101", "ECMS-102", "ECMS-103", "ECMS-104", "ECMS-107"}
_serial = itertools.count(1)


def vector(name: str) -> bytes:
    """A vector with a letter number no other example used (so a mutated letter is not a resend)."""
    data = (VECTORS / name).read_bytes()
    return data.replace("อก 0905/0007".encode(), f"อก 0905/{next(_serial)}".encode())


async def check(gateway, body: bytes, what: str) -> list[str]:
    before = await gateway.rows()
    resp = await gateway.client.post(ECMS_PATH, data=body, headers=HEADERS)
    raw = await resp.read()
    after = await gateway.rows()
    where = lambda: keep(body, f"ecms-{what}")  # noqa: E731
    assert resp.status in (200, 413, 500), f"HTTP {resp.status} for {where()}: {raw[:300]!r}"
    try:
        answer = etree.fromstring(raw)
    except etree.XMLSyntaxError:
        raise AssertionError(f"answer is not XML for {where()}: {raw[:300]!r}") from None
    codes = [e.findtext("ErrorCode") for e in answer.iter("ErrorDetail")]
    assert all(c in CODES for c in codes), f"undocumented {codes} for {where()}"
    assert "ECMS-500" not in codes and "ECMS-503" not in codes, f"server fault {codes} for {where()}: {raw[:500]!r}"
    if resp.status != 200:
        fault = answer.find(f"{{{soap.SOAP11_NS}}}Body/{{{soap.SOAP11_NS}}}Fault")
        assert fault is not None and fault.findtext("faultcode") == "SOAP-ENV:Client", f"{where()}: {raw[:500]!r}"
        assert len(codes) == 1 and codes[0] in NOT_ECMS_AT_ALL | {"ECMS-102"}, f"{codes} for {where()}"
    if codes:
        assert after == before, f"{codes} left rows behind for {where()}: {before} -> {after}"
    return codes


def _elements(root):
    return [el for el in root.iter() if isinstance(el.tag, str)]


@settings(max_examples=examples(50))
@given(source=st.sampled_from(SOURCES),
       flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4))
async def test_byte_flips(gateway, source, flips):
    data = bytearray(vector(source))
    for at, value in flips:
        data[at % len(data)] = value
    await check(gateway, bytes(data), "byte-flip")


@settings(max_examples=examples(80))
@given(source=st.sampled_from(TREES),
       ops=st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "text", "attribute", "base64"]),
                              st.integers(min_value=0), TEXT | st.text(st.sampled_from("ABCDabcd0123+/= \n"),
                                                                        max_size=30)),
                    min_size=1, max_size=3),
       attr=st.sampled_from(["ID", "mimeCode", "Id", "{http://www.w3.org/XML/1998/namespace}lang",
                             "{http://www.w3.org/2001/XMLSchema-instance}nil", "x"]))
async def test_tree_mutations(gateway, source, ops, attr):
    root = etree.fromstring(vector(source))
    for op, pick, text in ops:
        elements = _elements(root)[1:]
        if not elements:
            break
        el = elements[pick % len(elements)]
        if op == "delete":
            el.getparent().remove(el)
        elif op == "duplicate":
            el.addnext(copy.deepcopy(el))
        elif op == "text":
            el.text = text
        elif op == "attribute":
            el.set(attr, text)
        else:
            binaries = [e for e in elements if etree.QName(e).localname.endswith("BinaryObject")] or [el]
            binaries[pick % len(binaries)].text = text
    await check(gateway, etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "tree")


OPERATION = st.sampled_from(sorted(soap.OPERATIONS)) | st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,30}", fullmatch=True)


@settings(max_examples=examples(50))
@given(operation=OPERATION,
       children=st.lists(st.tuples(st.sampled_from(["ProcessID", "LetterID", "CorrespondenceDate", "SenderDepartment",
                                                    "AcceptDepartment", "Code", "x"]), st.text(XML_CHAR, max_size=20)),
                         max_size=4),
       wsa=st.sampled_from(soap.WSA_NAMESPACES + ("urn:other",)))
async def test_random_operations(gateway, operation, children, wsa):
    op = etree.Element(operation)
    for name, text in children:
        etree.SubElement(op, name).text = text
    ns = soap.SOAP11_NS
    env = etree.Element(f"{{{ns}}}Envelope", nsmap={"SOAP-ENV": ns})
    header = etree.SubElement(env, f"{{{ns}}}Header")
    etree.SubElement(header, f"{{{wsa}}}to").text = "https://gateway.example/ecms-ws01/service2"
    etree.SubElement(env, f"{{{ns}}}Body").append(op)
    await check(gateway, etree.tostring(env, xml_declaration=True, encoding="UTF-8"), "operation")


@pytest.mark.input_safety_net
@pytest.mark.parametrize(("error", "status", "code"), [
    (asyncpg.exceptions.CharacterNotInRepertoireError, 200, "ECMS-105"),  # the client's input: a refusal
    (asyncpg.DataError, 200, "ECMS-105"),
    (ConnectionRefusedError, 503, "ECMS-503"),  # the database away: retry later, not a bug
])
async def test_the_database_refusing_or_away_is_never_ecms_500(gateway, monkeypatch, error, status, code):
    """The e-CMS edge's safety net, as the API's: a value the database refuses is a refusal counted in
    ``gateway_input_safety_net_total{edge="ecms"}``; a database away is ECMS-503; neither is a bug."""
    async def refused(*_a: object, **_kw: object) -> None:
        raise error("invalid byte sequence for encoding \"UTF8\": 0x00")

    monkeypatch.setattr(LegacyPort, "submit", refused)
    metrics = gateway.client.app[keys.METRICS]

    def count(counter: Any) -> float:
        return sum(s.value for m in counter.collect() for s in m.samples
                   if s.name.endswith("_total") and s.labels.get("edge") == "ecms")

    nets, bugs = count(metrics.input_safety_net), count(metrics.unhandled)
    async with gateway.client.post(ECMS_PATH, data=vector("letter-vb-linqws.xml"), headers=HEADERS) as r:
        body = await r.read()
    codes = [e.findtext("ErrorCode") for e in etree.fromstring(body).iter("ErrorDetail")]
    assert (r.status, codes) == (status, [code]), body[:500]
    assert (count(metrics.input_safety_net), count(metrics.unhandled)) == (nets + (code == "ECMS-105"), bugs)
