"""adapters.push.read_plain_ack: the usual unsigned DeliveryAck read without a parser, held to the way
every ack was read before (the hardened parser, envelope-v1.xsd, the delivery id: read_ack_tree).

Whatever the plain way takes, the tree way takes with the same DeliveryId, Sha256 and no signature;
whatever it does not take goes the tree way, so refusals keep their codes. Checked on the offices' own
forms, on hand-written hostile documents and on generated variants (declarations, quotes, white space,
optional elements, values of the wrong shape, markup where text should be, byte mutations).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from adapters.errors import AckRefused
from adapters.push import AckVerifier, PlainAck, read_ack, read_ack_tree, read_plain_ack
from bench.offices import _ACK as BENCH_ACK
from tests.support import delivery_ack

DID = "0b7f5f0e-6c1a-4f0e-9d59-3e2f1c0a9b11"
SHA = hashlib.sha256(b"the sealed envelope").hexdigest()
NS = "urn:th:gov:saraban:envelope:1"


def agrees(body: bytes, delivery_id: str = DID) -> PlainAck | None:
    """The plain way's reading of ``body``, after checking the tree way agrees with it."""
    plain = read_plain_ack(body, delivery_id)
    tree = read_ack_tree(body, delivery_id)
    if plain is not None:
        assert not isinstance(tree, str), f"the plain way took what the tree way refuses ({tree}): {body!r}"
        assert tree.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None
        assert plain.sha256 == ((tree.findtext(f"{{{NS}}}Sha256") or "").strip() or None), body
        assert read_ack(body, delivery_id) == plain
    else:  # the tree way decides, as before
        again = read_ack(body, delivery_id)
        assert again == tree if isinstance(tree, str) else etree.tostring(again) == etree.tostring(tree)
    return plain


def test_the_offices_acks_are_read_the_plain_way() -> None:
    assert agrees(delivery_ack(delivery_id=uuid.UUID(DID), sha256_hex=SHA)) == PlainAck(SHA)
    assert agrees(delivery_ack(delivery_id=uuid.UUID(DID))) == PlainAck(None)
    assert agrees(delivery_ack(delivery_id=uuid.UUID(DID), message_id="m-1:a@b.c", sha256_hex=SHA)) == PlainAck(SHA)
    assert agrees(delivery_ack(delivery_id=uuid.UUID(DID), message_id="x" * 128)) == PlainAck(None)
    assert agrees(BENCH_ACK % (DID.encode(), SHA.encode())) == PlainAck(SHA)
    written = (f'<?xml version="1.0"?>\n<DeliveryAck xmlns="{NS}">\n  <DeliveryId>{DID}</DeliveryId>\n'
               f'  <Sha256>{SHA}</Sha256>\n</DeliveryAck>\n').encode()
    assert agrees(written) == PlainAck(SHA)


HOSTILE = {
    "dtd_entity_in_id": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY d "' + DID.encode() + b'">]>'
                        b'<DeliveryAck xmlns="' + NS.encode() + b'"><DeliveryId>&d;</DeliveryId></DeliveryAck>',
    "external_entity": b'<!DOCTYPE DeliveryAck SYSTEM "http://example.invalid/x.dtd"><DeliveryAck xmlns="'
                       + NS.encode() + b'"><DeliveryId>' + DID.encode() + b'</DeliveryId></DeliveryAck>',
    "char_reference_in_id": b'<DeliveryAck xmlns="' + NS.encode() + b'"><DeliveryId>&#48;' + DID[1:].encode()
                            + b"</DeliveryId></DeliveryAck>",
    "cdata_id": b'<DeliveryAck xmlns="' + NS.encode() + b'"><DeliveryId><![CDATA[' + DID.encode()
                + b"]]></DeliveryId></DeliveryAck>",
    "comment_in_id": b'<DeliveryAck xmlns="' + NS.encode() + b'"><DeliveryId>' + DID[:4].encode() + b"<!---->"
                     + DID[4:].encode() + b"</DeliveryId></DeliveryAck>",
    "other_namespace": b'<DeliveryAck xmlns="urn:other"><DeliveryId>' + DID.encode() + b"</DeliveryId></DeliveryAck>",
    "prefixed": b'<e:DeliveryAck xmlns:e="' + NS.encode() + b'"><e:DeliveryId>' + DID.encode()
                + b"</e:DeliveryId></e:DeliveryAck>",
    "upper_case_digest": b'<DeliveryAck xmlns="' + NS.encode() + b'"><DeliveryId>' + DID.encode()
                         + b"</DeliveryId><Sha256>" + SHA.upper().encode() + b"</Sha256></DeliveryAck>",
    "two_roots": b'<DeliveryAck xmlns="' + NS.encode() + b'"><DeliveryId>' + DID.encode()
                 + b'</DeliveryId></DeliveryAck><DeliveryAck xmlns="' + NS.encode() + b'"/>',
    "bom": b"\xef\xbb\xbf" + delivery_ack(delivery_id=uuid.UUID(DID)),
    "utf16_declared": delivery_ack(delivery_id=uuid.UUID(DID)).replace(b"UTF-8", b"UTF-16"),
    "form_feed": b'<DeliveryAck xmlns="' + NS.encode() + b'">\f<DeliveryId>' + DID.encode()
                 + b"</DeliveryId></DeliveryAck>",
    "whitespace_before_declaration": b" " + delivery_ack(delivery_id=uuid.UUID(DID)),
    "message_id_too_long": delivery_ack(delivery_id=uuid.UUID(DID), message_id="x" * 129),
    "message_id_with_a_slash": delivery_ack(delivery_id=uuid.UUID(DID), message_id="a/b"),
    "received_at": delivery_ack(delivery_id=uuid.UUID(DID), received_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
    "huge": delivery_ack(delivery_id=uuid.UUID(DID)) + b" " * (2 << 20),
    "another_delivery": delivery_ack(delivery_id=uuid.uuid4(), sha256_hex=SHA),
    "signature_after": delivery_ack(delivery_id=uuid.UUID(DID)).replace(
        b"</DeliveryAck>", b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></DeliveryAck>'),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_anything_else_goes_the_tree_way(case: str) -> None:
    assert agrees(HOSTILE[case]) is None


def test_refusals_keep_their_codes() -> None:
    assert read_ack(HOSTILE["dtd_entity_in_id"], DID).startswith("ack.dtd_forbidden")
    assert read_ack(HOSTILE["huge"], DID).startswith("ack.too_large")
    assert read_ack(HOSTILE["upper_case_digest"], DID).startswith("ack.schema_invalid")
    assert read_ack(HOSTILE["another_delivery"], DID).startswith("ack.wrong_delivery_id")
    small = delivery_ack(delivery_id=uuid.UUID(DID))
    assert read_ack(small, DID, max_bytes=len(small) - 1).startswith("ack.too_large")


_ws = st.sampled_from(["", "", " ", "\n", "\r\n", "\t", "  \n  "])
_quote = st.sampled_from(["'", '"'])


def pick(draw: st.DrawFn, usual: str, *others: str) -> str:
    """``usual`` most of the time, else one of ``others`` (a way that may not be valid)."""
    return usual if not others or draw(st.integers(0, 4)) else draw(st.sampled_from(others))


@st.composite
def acks(draw: st.DrawFn) -> bytes:
    """A DeliveryAck in one of the many ways it can be written, now and then not a valid one."""
    q1, q2, q3 = draw(_quote), draw(_quote), draw(_quote)
    declaration = ""
    if draw(st.booleans()):
        declaration = pick(draw, f"<?xml version={q1}1.0{q1}", f"<?xml version={q1}1.1{q1}",
                           f"<?xml  version = {q1}1.0{q1}", f"<?xml version={q1}1.0{q2}")
        if draw(st.booleans()):
            encoding = pick(draw, draw(st.sampled_from(["UTF-8", "utf-8", "Utf-8"])), "ISO-8859-1", "US-ASCII",
                            "UTF8", "UTF-16")
            declaration += f"{pick(draw, ' ', '  ', '')}encoding{draw(_ws)}={draw(_ws)}{q2}{encoding}{q2}"
        declaration += pick(draw, "", " standalone='yes'") + draw(_ws) + "?>" + draw(_ws)
    did = pick(draw, DID, DID.upper(), DID + " ", "x", "", "a" * 65, DID.replace("-", "_"), str(uuid.UUID(int=1)))
    children = [f"{draw(_ws)}<DeliveryId>{did}</DeliveryId>"]
    for name, usual, others in (("MessageId", "m-1", ("m 1", "x" * 128, "x" * 129, "a/b", "")),
                                ("Sha256", SHA, (SHA.upper(), SHA[:63], SHA + "0", " " + SHA, "")),
                                ("ReceivedAt", "2026-01-02T03:04:05+07:00", ("2026-02-30T00:00:00Z",))):
        if draw(st.booleans()):
            children.append(f"{draw(_ws)}<{name}>{pick(draw, usual, *others)}</{name}>")
    if not draw(st.integers(0, 9)):
        children = draw(st.permutations(children))
    attributes = pick(draw, "", " Id='a'", " Id='1'", " xmlns:x='urn:x'")
    namespace = pick(draw, NS, NS + " ", "urn:other")
    root = (f"<DeliveryAck{pick(draw, ' ', '  ', chr(10))}xmlns{draw(_ws)}={draw(_ws)}{q3}{namespace}{q3}"
            f"{attributes}{draw(_ws)}>{''.join(children)}{draw(_ws)}</DeliveryAck{draw(_ws)}>{draw(_ws)}")
    return (declaration + root).encode()


@given(acks())
def test_generated_acks_read_the_same_both_ways(body: bytes) -> None:
    agrees(body)


@given(acks(), st.integers(0, 400), st.binary(min_size=1, max_size=3))
def test_mutated_acks_read_the_same_both_ways(body: bytes, at: int, inserted: bytes) -> None:
    at = min(at, len(body))
    agrees(body[:at] + inserted + body[at:])
    agrees(body[:at] + body[at + len(inserted):])


@given(st.binary(max_size=300))
def test_any_bytes_read_the_same_both_ways(body: bytes) -> None:
    agrees(body)


async def test_a_plain_ack_is_checked_against_the_delivered_digest() -> None:
    envelope = b"the sealed envelope"
    verifier = AckVerifier()
    body = delivery_ack(delivery_id=uuid.UUID(DID), sha256_hex=SHA)
    read = read_ack(body, DID)
    assert isinstance(read, PlainAck)
    facts = {"ack_signed": False, "ack_sha256_checked": True}
    assert await verifier.verify(body, agency="x", delivery_id=DID, delivered=envelope, read=read) == facts
    assert await verifier.verify(body, agency="x", delivery_id=DID, delivered=envelope) == facts  # (pull: parsed)
    assert await verifier.verify(body, agency="x", delivery_id=DID, delivered=envelope, read=read,
                                 delivered_sha256=hashlib.sha256(envelope).digest()) == facts
    other = b"other bytes"
    for refused_by in (lambda: verifier.verify(body, agency="x", delivery_id=DID, delivered=other, read=read),
                       lambda: verifier.verify(body, agency="x", delivery_id=DID, delivered=envelope, read=read,
                                               delivered_sha256=hashlib.sha256(other).digest())):
        with pytest.raises(AckRefused) as refused:
            await refused_by()
        assert refused.value.code == "ack.digest_mismatch"
