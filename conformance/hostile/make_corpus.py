"""Write the hostile-input corpus: ``inputs/<name>.<ext>`` and ``manifest.json``.

    python -m conformance.hostile.make_corpus          # rewrite the files (deterministic)
    python -m conformance.hostile.make_corpus --check  # exit 1 if the files differ from what it writes

Every input is built here from one valid envelope (the builder in ``gateway.core.envelope_builder``,
fixed ids and dates) by a named mutation, so the corpus is reproducible byte for byte.
Bodies larger than the repository should hold (an oversized request) are not files: the
manifest gives a ``generate`` rule and the runner builds the body at run time.

The manifest's ``profile`` says what the expectations assume of the gateway under test;
every entry is a rejection that must leave nothing stored.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import dataclasses
import datetime as dt
import hashlib
import json
import random
import sys
from pathlib import Path

from conformance.hostile import edges
from gateway.core.envelope import (
    Attachment,
    Envelope,
    Header,
    Letter,
    MessageType,
    Notifier,
    NotifierKind,
    Secrecy,
    Speed,
)
from gateway.core.envelope_builder import build_envelope
from gateway.core.parts import build_related

HERE = Path(__file__).resolve().parent
INPUTS = HERE / "inputs"
MANIFEST = HERE / "manifest.json"
MAX_FILE_BYTES = 1_000_000

SENDER = "0100000000"      # สำนักนายกรัฐมนตรี: the calling agency
RECIPIENT = "1550100000"   # ศาลากลางจังหวัดเชียงใหม่
OTHER = "1500000000"       # กระทรวงมหาดไทย: exists, but is not the caller
UNKNOWN = "9999999999"
BANGKOK = dt.timezone(dt.timedelta(hours=7))
PDF = b"%PDF-1.4\n% hostile corpus letter.\n"  # 34 bytes: its base64 ends in "=="
CONTENT = base64.b64encode(PDF)

PROFILE = {
    "caller": SENDER,
    "recipients_in_directory": [RECIPIENT, OTHER],
    "not_in_directory": UNKNOWN,
    "require_signature": False,
    "seal": True,
    "notes": ("Expectations assume the caller authenticates as agency 0100000000 (--token), that "
              "1550100000 and 1500000000 are in the directory and 9999999999 is not, and that unsigned "
              "letters are accepted (GATEWAY_REQUIRE_SIGNATURE=false) and the gateway seals what it "
              "forwards (GATEWAY_SEAL=true). With signatures required, entries "
              "that fail after the signature check answer 'expect_signatures_required' instead. "
              "'max_body_bytes' rules use the limit passed to the runner (--max-body-bytes)."),
}

#: Codes raised after the author's signature is checked (gateway.intake.checks order): with signatures
#: required, an unsigned envelope stops at signature.missing first. The directory and policy checks
#: (type, recipients, secrecy, registry number) come before the signature: they cost nothing, the
#: signature check may reach the network.
AFTER_SIGNATURE = ("attachment.digest_mismatch", "attachment.base64_invalid")


def envelope(*, sender: str = SENDER, recipients=(RECIPIENT,), secrecy: Secrecy = Secrecy.NORMAL,
             attachments: int = 1, message_id: str = "hostile-0001") -> Envelope:
    created = dt.datetime(2026, 11, 22, 9, 30, tzinfo=BANGKOK)
    return Envelope(
        header=Header(message_id=message_id, message_type=MessageType.LETTER, created_at=created, sender=sender,
                      recipients=tuple(recipients)),
        body=Letter(number="นร 0105/ว 123", date=created.date(), subject="ขอเชิญประชุมคณะกรรมการ",
                    addressee="ผู้ว่าราชการจังหวัดทุกจังหวัด", speed=Speed.URGENT, secrecy=secrecy,
                    signer_name="นายสมชาย ใจดี", signer_position="ปลัดสำนักนายกรัฐมนตรี", body="เนื้อความ"),
        attachments=tuple(Attachment(id=f"att-{i}", file_name="หนังสือ.pdf", mime_type="application/pdf",
                                     content=PDF, role="main" if i == 1 else "enclosure")
                          for i in range(1, attachments + 1)),
    )


def good(**kw) -> bytes:
    return build_envelope(envelope(**kw))


def replace(data: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    if old not in data:
        raise ValueError(f"{old[:60]!r} not in the base envelope")
    return data.replace(old, new, count)


def body_of(data: bytes) -> bytes:
    """The envelope without its XML declaration."""
    return data.split(b"?>", 1)[1].lstrip()


ENTRIES: list[dict] = []
FILES: dict[str, bytes] = {}


def add(name: str, description: str, body: bytes | None, status: int, code: str | None, field: str | None = None,
        *, ext: str = "xml", **request) -> None:
    entry: dict = {"name": name, "description": description}
    if body is not None:
        path = f"inputs/{name}.{ext}"
        FILES[path] = body
        entry["file"] = path
    entry.update({"endpoint": "/v1/messages", "method": "POST", "content_type": "application/xml",
                  "auth": "token"})
    signed = request.pop("expect_signatures_required", None)
    entry.update(request)
    entry["expect"] = {"status": status, "code": code, **({"field": field} if field is not None else {})}
    if signed is not None:
        entry["expect_signatures_required"] = signed
    elif code is not None and code.startswith(AFTER_SIGNATURE):
        entry["expect_signatures_required"] = {"status": 422, "code": "signature.missing"}
    ENTRIES.append(entry)


# ====================================================================== the signature zone (issue 13, class 7)
# env:Signatures is validated by the XML-DSig and XAdES schemas; what they leave open (wildcards, mixed
# content, unreferenced objects, a second signature nobody verifies, a seal the gateway did not make) is
# refused by pki.sigzone before any signature is verified, so the answer is the same with signatures required.
_DS_NS = b'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
_XI = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'


def zone_signature(sig_id: str, *, inside: bytes = b"", uri: bytes = b"#Letter", references: bytes = b"") -> bytes:
    """A ds:Signature the XML-DSig schema accepts (digest and value are placeholders: never verified, the
    shape is refused first), with ``inside`` after its SignatureValue."""
    digest = b"<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>" \
             b"<ds:DigestValue>" + base64.b64encode(bytes(32)) + b"</ds:DigestValue>"
    return (b'<ds:Signature ' + _DS_NS + b' Id="' + sig_id.encode() + b'"><ds:SignedInfo>'
            b'<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
            b'<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>'
            b'<ds:Reference URI="' + uri + b'">' + digest + b"</ds:Reference>" + references + b"</ds:SignedInfo>"
            b"<ds:SignatureValue>" + base64.b64encode(bytes(64)) + b"</ds:SignatureValue>" + inside
            + b"</ds:Signature>")


def signature_zone(base: bytes) -> None:
    def zone(*signatures: bytes) -> bytes:
        return replace(base, b"</Envelope>", b"<Signatures>" + b"".join(signatures) + b"</Signatures></Envelope>")

    forged = (b"<ds:Object>" + body_of(base).split(b"</Header>", 1)[1].split(b"<Attachments>")[0]
              .replace(b'<Letter Id="Letter">', b'<Letter xmlns="urn:th:gov:saraban:envelope:1">')
              .replace("ขอเชิญประชุมคณะกรรมการ".encode(), "โอนเงินด่วนเข้าบัญชีนี้".encode()) + b"</ds:Object>")
    where = "Signatures/Signature[1]"
    add("sigzone-forged-letter-in-object", "a forged, unsigned Letter in a ds:Object of the only signature",
        zone(zone_signature("AuthorSignature", inside=forged)), 422, "signature.structure", f"{where}/Object[1]")
    add("sigzone-second-signature-forged-letter", "a second ds:Signature carrying a forged, unsigned Letter",
        zone(zone_signature("AuthorSignature"), zone_signature("Cosign", inside=forged)), 422,
        "signature.structure", "Signatures/Signature[2]/Object[1]")
    add("sigzone-second-signature", "a second, well-formed author-side signature (nobody would verify it)",
        zone(zone_signature("AuthorSignature"), zone_signature("Cosign")), 422, "signature.structure",
        "Signatures/Signature[2]")
    add("sigzone-object-xinclude", "a ds:Object holding an XInclude of /etc/passwd",
        zone(zone_signature("AuthorSignature", inside=b"<ds:Object>" + _XI + b"</ds:Object>")), 422,
        "signature.structure", f"{where}/Object[1]")
    add("sigzone-referenced-object-xinclude", "a ds:Object the signature references, holding an XInclude",
        zone(zone_signature("AuthorSignature", inside=b'<ds:Object Id="o1">' + _XI + b"</ds:Object>",
                            references=b'<ds:Reference URI="#o1"><ds:DigestMethod Algorithm="http://www.w3.org/'
                            b'2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>')),
        422, "signature.structure", f"{where}/Object[1]/include[1]")
    add("sigzone-xinclude-in-keyinfo", "an XInclude in KeyInfo (an ##other wildcard of the XML-DSig schema)",
        zone(zone_signature("AuthorSignature", inside=b"<ds:KeyInfo>" + _XI + b"</ds:KeyInfo>")), 422,
        "signature.structure", f"{where}/KeyInfo[1]/include[1]")
    add("sigzone-unreferenced-xades-object", "XAdES qualifying properties the signature does not reference",
        zone(zone_signature("AuthorSignature", inside=b'<ds:Object><xades:QualifyingProperties xmlns:xades="http:'
                            b'//uri.etsi.org/01903/v1.3.2#" Target="#AuthorSignature"><xades:SignedProperties '
                            b'Id="sp"/></xades:QualifyingProperties></ds:Object>')), 422, "signature.structure",
        f"{where}/Object[1]")
    add("sigzone-undeclared-xades-element", "an element of the XAdES namespace that XAdES does not declare, in a "
        "referenced ds:Object (a lax wildcard)",
        zone(zone_signature("AuthorSignature", uri=b"#o1", inside=b'<ds:Object Id="o1"><xades:Script xmlns:xades='
                            b'"http://uri.etsi.org/01903/v1.3.2#">alert(1)</xades:Script></ds:Object>')), 422,
        "signature.structure", f"{where}/Object[1]/Script[1]")
    add("sigzone-xslt-transform", "an XSLT stylesheet inside a Transform (an ##other wildcard)",
        zone(zone_signature("AuthorSignature", references=b'<ds:Reference URI="#att-1"><ds:Transforms><ds:Transform '
                            b'Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet xmlns:xsl='
                            b'"http://www.w3.org/1999/XSL/Transform" version="1.0"/></ds:Transform></ds:Transforms>'
                            b'<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>'
                            b'AAAA</ds:DigestValue></ds:Reference>')), 422, "signature.structure",
        f"{where}/SignedInfo[1]/Reference[2]/Transforms[1]/Transform[1]/stylesheet[1]")
    add("sigzone-retrieval-method", "a RetrievalMethod naming a URL a verifier would fetch",
        zone(zone_signature("AuthorSignature", inside=b'<ds:KeyInfo><ds:RetrievalMethod URI="http://127.0.0.1:9/'
                            b'key"/></ds:KeyInfo>')), 422, "signature.structure",
        f"{where}/KeyInfo[1]/RetrievalMethod[1]")
    add("sigzone-external-reference", "a Reference to a network address instead of #id",
        zone(zone_signature("AuthorSignature", uri=b"http://127.0.0.1:9/letter")), 422, "signature.structure",
        f"{where}/SignedInfo[1]/Reference[1]")
    add("sigzone-text-in-keyinfo", "markup-like text in KeyInfo (mixed content in the XML-DSig schema)",
        zone(zone_signature("AuthorSignature", inside=b"<ds:KeyInfo>&lt;script&gt;alert(1)&lt;/script&gt;"
                            b"<ds:KeyName>k</ds:KeyName></ds:KeyInfo>")), 422, "signature.structure",
        f"{where}/KeyInfo[1]")
    add("sigzone-forged-seal", "a ds:Signature claiming to be the gateway's seal in a submitted envelope",
        zone(zone_signature("AuthorSignature"), zone_signature("GatewaySeal")), 422, "signature.sealed",
        "Signatures/Signature[2]")


def build() -> None:
    base = good()
    rng = random.Random(20261122)
    ns = b'xmlns="urn:th:gov:saraban:envelope:1"'

    # ------------------------------------------------------------------ not XML at all
    add("not-xml", "plain text", b"this is not xml\n", 400, "envelope.not_xml", ext="txt")
    add("empty-body", "an empty body", b"", 400, "envelope.not_xml", ext="txt")
    add("binary-garbage", "4 kB of random bytes", bytes(rng.randrange(256) for _ in range(4096)), 400,
        "envelope.not_xml", ext="bin")
    add("json-body", "JSON sent as application/xml", b'{"Envelope": {"Header": {}}}', 400, "envelope.not_xml",
        ext="json")
    add("truncated-half", "the valid envelope cut in half", base[: len(base) // 2], 400, "envelope.not_xml")
    add("truncated-in-declaration", "cut inside the XML declaration", base[:20], 400, "envelope.not_xml")
    add("truncated-last-byte", "the closing '>' missing", base.rstrip()[:-1], 400, "envelope.not_xml")
    add("two-roots", "two Envelope elements one after the other", base + body_of(base), 400, "envelope.not_xml")
    add("duplicate-attribute", "the same attribute twice on one element",
        replace(base, b'version="1"', b'version="1" version="1"'), 400, "envelope.not_xml")
    add("unclosed-cdata", "a CDATA section that never ends",
        replace(base, b"<Body>", b"<Body><![CDATA[never closed"), 400, "envelope.not_xml")

    # ------------------------------------------------------------------ DTDs and entities
    lol = b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    add("billion-laughs", "nested internal entities (exponential expansion)",
        b'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY lol0 "lol">' + lol + b']>\n'
        + replace(body_of(base), "ขอเชิญประชุมคณะกรรมการ".encode(), b"&lol9;"), 400, "envelope.dtd_forbidden")
    add("quadratic-blowup", "one 50 kB entity referenced 200 times",
        b'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY a "' + b"a" * 50_000 + b'">]>\n'
        + replace(body_of(base), b"<Body>\xe0\xb9\x80", b"<Body>" + b"&a;" * 200 + b"\xe0\xb9\x80"), 400,
        "envelope.dtd_forbidden")
    add("xxe-file", "an external entity naming /etc/passwd, used in the subject",
        b'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + replace(body_of(base), "ขอเชิญประชุมคณะกรรมการ".encode(), b"&xxe;"), 400, "envelope.dtd_forbidden")
    add("xxe-network", "an external entity on the network (would be an SSRF)",
        b'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/secret">]>\n'
        + replace(body_of(base), "ขอเชิญประชุมคณะกรรมการ".encode(), b"&xxe;"), 400, "envelope.dtd_forbidden")
    add("external-dtd", "a DOCTYPE naming an external DTD",
        b'<?xml version="1.0"?>\n<!DOCTYPE Envelope SYSTEM "http://127.0.0.1:9/envelope.dtd">\n' + body_of(base),
        400, "envelope.dtd_forbidden")
    add("parameter-entities", "parameter entities pulling an external DTD (out-of-band XXE)",
        b'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/x.dtd"> %ext;]>\n'
        + body_of(base), 400, "envelope.dtd_forbidden")
    add("doctype-after-long-comment", "the DOCTYPE placed after an 8 kB comment, past a prefix check",
        b'<?xml version="1.0"?>\n<!--' + b"x" * 8192 + b'-->\n'
        b'<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + replace(body_of(base), "ขอเชิญประชุมคณะกรรมการ".encode(), b"&xxe;"), 400, "envelope.dtd_forbidden")
    add("doctype-without-subset", "a bare DOCTYPE after a long comment, no entities at all",
        b'<?xml version="1.0"?>\n<!--' + b"y" * 8192 + b'-->\n<!DOCTYPE Envelope>\n' + body_of(base),
        400, "envelope.dtd_forbidden")
    utf16 = ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM '
             '"file:///etc/passwd">]>\n' + body_of(base).decode("utf-8").replace("ขอเชิญประชุมคณะกรรมการ", "&xxe;"))
    add("doctype-utf16", "an XXE DOCTYPE in UTF-16, invisible to a byte search for '<!DOCTYPE'",
        utf16.encode("utf-16"), 400, "envelope.dtd_forbidden")

    # ------------------------------------------------------------------ character encodings (the standard: UTF-8)
    declared = b"<?xml version='1.0' encoding='UTF-8'?>"
    add("latin1-declared-utf8-thai", "UTF-8 Thai bytes under an ISO-8859-1 declaration (would read as mojibake)",
        replace(base, declared, b"<?xml version='1.0' encoding='ISO-8859-1'?>"), 400,
        "envelope.encoding_unsupported", "/")
    add("tis620-letter", "the letter well encoded in TIS-620 (legacy Thai), declared so",
        base.decode("utf-8").replace("encoding='UTF-8'", "encoding='TIS-620'").encode("tis-620"), 400,
        "envelope.encoding_unsupported", "/")
    add("utf16-letter", "the valid letter in UTF-16 with a byte-order mark",
        base.decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'").encode("utf-16"), 400,
        "envelope.encoding_unsupported", "/")

    # ------------------------------------------------------------------ XInclude, processing instructions
    xi = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'
    add("xinclude-in-envelope", "an XInclude element before the Header", replace(base, b"<Header>", xi + b"<Header>"),
        400, "envelope.schema_invalid", "/Envelope/include")
    add("xinclude-in-body", "an XInclude element inside the letter's Body text",
        replace(base, b"<Body>", b"<Body>" + xi), 400, "envelope.schema_invalid", "/Envelope/Letter/Body")
    add("pi-stylesheet-prolog", "an xml-stylesheet processing instruction before the root",
        replace(base, b"?>\n", b'?>\n<?xml-stylesheet type="text/xsl" href="http://127.0.0.1:9/x.xsl"?>\n'),
        400, "envelope.pi_forbidden", "/")
    add("pi-inside-letter", "a processing instruction inside the Letter",
        replace(base, b"<Speed>", b"<?php system('id'); ?><Speed>"), 400, "envelope.pi_forbidden",
        "/Envelope/Letter")

    # ------------------------------------------------------------------ wrong root, wrong namespace
    add("wrong-namespace", "the envelope in namespace ...:envelope:2",
        replace(base, ns, b'xmlns="urn:th:gov:saraban:envelope:2"'), 400, "envelope.schema_invalid", "/Envelope")
    add("no-namespace", "the envelope without its namespace", replace(base, b" " + ns, b""), 400,
        "envelope.schema_invalid", "/Envelope")
    add("wrong-root-delivery-ack", "a DeliveryAck (a valid document of the same schema) posted as a message",
        b'<?xml version="1.0"?>\n<DeliveryAck ' + ns + b'><DeliveryId>x</DeliveryId></DeliveryAck>', 400,
        "envelope.schema_invalid", "/")
    add("soap-envelope", "an e-CMS SOAP request posted to the native API",
        b'<?xml version="1.0"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<SOAP-ENV:Body><GetSecretCodes/></SOAP-ENV:Body></SOAP-ENV:Envelope>', 400, "envelope.schema_invalid",
        "/Envelope")
    add("two-letters", "a second Letter after the first (signature wrapping shape)",
        replace(base, b"</Letter>", b"</Letter>" + body_of(base).split(b"</Header>", 1)[1].split(b"<Attachments>")[0]
                .replace(b'Id="Letter"', b'Id="Letter2"')), 400, "envelope.schema_invalid", "/Envelope/Letter[2]")

    # ------------------------------------------------------------------ depth, attributes
    add("deep-nesting-300", "300 nested elements inside the Body (libxml2's limit is 256)",
        replace(base, "<Body>เนื้อความ</Body>".encode(), b"<Body>" + b"<x>" * 300 + b"</x>" * 300 + b"</Body>"),
        400, "envelope.too_complex", "depth")
    add("deep-nesting-100000", "100,000 nested elements", b"<a>" * 100_000 + b"</a>" * 100_000, 400,
        "envelope.too_complex", "depth")
    add("deep-nesting-200", "200 nested elements (under libxml2's limit, over the gateway's 64)",
        replace(base, "<Body>เนื้อความ</Body>".encode(), b"<Body>" + b"<x>" * 200 + b"</x>" * 200 + b"</Body>"),
        400, "envelope.too_complex", "depth")
    add("huge-attribute", "a 900 kB attribute value on the Envelope",
        replace(base, b'version="1"', b'version="1" x="' + b"A" * 900_000 + b'"'), 400, "envelope.schema_invalid",
        "/Envelope")
    add("many-attributes", "5,000 unknown attributes on one element (quadratic in some validators)",
        replace(base, b'version="1"', b'version="1" ' + b" ".join(b'a%d="x"' % i for i in range(5000))), 400,
        "envelope.too_complex", "attributes")
    add("xml-id-on-header", "xml:id attributes used to plant a second 'Letter' id",
        replace(base, b"<Header>", b'<Header xml:id="Letter">'), 400, "envelope.schema_invalid", "/Envelope/Header")

    # ------------------------------------------------------------------ signature-wrapping helpers
    add("duplicate-id", "an attachment carrying the Letter's Id",
        replace(base, b'Id="att-1"', b'Id="Letter"'), 400, "envelope.schema_invalid",
        "/Envelope/Attachments/Attachment")
    add("id-hidden-in-signatures", "a copy of the Letter with Id='Letter' hidden in Signatures, outside any "
        "signature (the XSD admits only ds:Signature there)",
        replace(base, b"</Envelope>", b'<Signatures><ds:Object xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
                b'Id="Letter">' + body_of(base).split(b"</Header>", 1)[1].split(b"<Attachments>")[0]
                .replace(b"<Letter ", b"<Letter " + ns + b" ")
                + b"</ds:Object></Signatures></Envelope>"), 400, "envelope.schema_invalid",
        "/Envelope/Signatures/Object")
    add("signature-garbage", "a ds:Signature whose SignedInfo is nonsense (validated by the XML-DSig schema)",
        replace(base, b"</Envelope>", b'<Signatures><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
                b"<ds:SignedInfo>nonsense</ds:SignedInfo></ds:Signature></Signatures></Envelope>"), 400,
        "envelope.schema_invalid", "/Envelope/Signatures/Signature/SignedInfo")
    add("too-many-signatures", "11 well-formed signatures in Signatures (the limit is 2: the author's and the seal)",
        replace(base, b"</Envelope>", b'<Signatures>' + b"".join(zone_signature(f"s{i}") for i in range(11))
                + b"</Signatures></Envelope>"), 400, "envelope.schema_invalid", "/Envelope/Signatures/Signature[3]")
    signature_zone(base)

    # ------------------------------------------------------------------ attachments
    add("attachments-over-limit", "101 attachments (the limit is 100)", good(attachments=101), 413,
        "attachment.too_many", "Attachments/Attachment[101]")
    add("attachments-2000", "2,000 attachments", good(attachments=2000), 413, "attachment.too_many",
        "Attachments/Attachment[101]")
    add("attachment-declared-over-limit", "an attachment declared larger than any request may be",
        replace(base, b"<Size>%d</Size>" % len(PDF), b"<Size>99999999999</Size>"), 413, "attachment.too_large",
        "Attachments/Attachment[1]/Size")
    add("attachment-size-mismatch", "declared Size one byte more than the content",
        replace(base, b"<Size>%d</Size>" % len(PDF), b"<Size>%d</Size>" % (len(PDF) + 1)), 422,
        "attachment.digest_mismatch", "Attachments/Attachment[1]/Size")
    add("attachment-size-5000-digits", "a declared Size of 5,000 digits (more than int() parses)",
        replace(base, b"<Size>%d</Size>" % len(PDF), b"<Size>" + b"9" * 5000 + b"</Size>"), 413,
        "attachment.too_large", "Attachments/Attachment[1]/Size")
    add("attachment-size-negative", "a declared Size of -1", replace(base, b"<Size>%d</Size>" % len(PDF),
                                                                    b"<Size>-1</Size>"), 400,
        "envelope.schema_invalid", "/Envelope/Attachments/Attachment/Size")
    add("attachment-digest-mismatch", "the SHA-256 of other bytes",
        replace(base, hashlib.sha256(PDF).hexdigest().encode(), hashlib.sha256(b"other").hexdigest().encode()), 422,
        "attachment.digest_mismatch", "Attachments/Attachment[1]/Sha256")
    add("attachment-digest-upper-case", "the right digest in upper case",
        replace(base, hashlib.sha256(PDF).hexdigest().encode(), hashlib.sha256(PDF).hexdigest().upper().encode()),
        400, "envelope.schema_invalid", "/Envelope/Attachments/Attachment/Sha256")
    add("base64-junk-characters", "'!' and '*' among the base64 characters (lenient decoders drop them)",
        replace(base, CONTENT, b"!!" + CONTENT[:8] + b"*" + CONTENT[8:]), 422, "attachment.base64_invalid",
        "Attachments/Attachment[1]/Content")
    add("base64-thai-characters", "Thai letters inside the base64",
        replace(base, CONTENT, CONTENT[:8] + "กข".encode() + CONTENT[8:]), 422, "attachment.base64_invalid",
        "Attachments/Attachment[1]/Content")
    add("base64-nbsp", "a no-break space (not XML white space) inside the base64",
        replace(base, CONTENT, CONTENT[:8] + "\u00a0".encode() + CONTENT[8:]), 422, "attachment.base64_invalid",
        "Attachments/Attachment[1]/Content")
    add("base64-missing-padding", "the final '=' removed", replace(base, CONTENT, CONTENT.rstrip(b"=")), 400,
        "envelope.schema_invalid", "/Envelope/Attachments/Attachment/Content")
    add("base64-extra-padding", "'===' at the end", replace(base, CONTENT, CONTENT.rstrip(b"=") + b"==="), 400,
        "envelope.schema_invalid", "/Envelope/Attachments/Attachment/Content")
    add("base64-padding-inside", "'=' in the middle, then more data",
        replace(base, CONTENT, CONTENT + base64.b64encode(b"more")), 400, "envelope.schema_invalid",
        "/Envelope/Attachments/Attachment/Content")
    add("base64-whitespace-wrong-digest", "line-wrapped base64 (fine) whose digest is of the base64 text",
        replace(replace(base, CONTENT, b"\n".join(CONTENT[i:i + 8] for i in range(0, len(CONTENT), 8))),
                hashlib.sha256(PDF).hexdigest().encode(), hashlib.sha256(CONTENT).hexdigest().encode()), 422,
        "attachment.digest_mismatch", "Attachments/Attachment[1]/Sha256")
    add("attachment-mime-type-injection", "a MIME type with a header injection",
        replace(base, b"<MimeType>application/pdf</MimeType>",
                b"<MimeType>application/pdf\r\nX-Injected: 1</MimeType>"), 400, "envelope.schema_invalid",
        "/Envelope/Attachments/Attachment/MimeType")

    # ------------------------------------------------------------------ encodings
    subject = "ขอเชิญประชุมคณะกรรมการ".encode()
    add("declared-utf16-utf8-bytes", "declared UTF-16, written in UTF-8",
        replace(base, b"encoding='UTF-8'", b"encoding='UTF-16'"), 400, "envelope.not_xml")
    add("invalid-utf8", "bytes that are not UTF-8 in the subject", replace(base, subject, b"\xff\xfe\xc3("), 400,
        "envelope.not_xml")
    add("overlong-utf8", "an overlong UTF-8 encoding of '/' (C0 AF)", replace(base, subject, b"\xc0\xaf"), 400,
        "envelope.not_xml")
    add("utf8-surrogate", "a UTF-16 surrogate encoded in UTF-8 (ED A0 80)", replace(base, subject, b"\xed\xa0\x80"),
        400, "envelope.not_xml")
    add("bom-utf16le-on-utf8", "a UTF-16LE byte-order mark in front of UTF-8 bytes", b"\xff\xfe" + base, 400,
        "envelope.encoding_unsupported", "/")
    add("bom-utf32-on-utf8", "a UTF-32BE byte-order mark in front of UTF-8 bytes", b"\x00\x00\xfe\xff" + base, 400,
        "envelope.encoding_unsupported", "/")
    add("bom-twice", "two UTF-8 byte-order marks", b"\xef\xbb\xbf\xef\xbb\xbf" + base, 400, "envelope.not_xml")
    add("nul-byte", "a NUL byte in the subject", replace(base, subject, b"a\x00b"), 400, "envelope.not_xml")
    add("control-char-reference", "a character reference to U+0001", replace(base, subject, b"&#1;"), 400,
        "envelope.not_xml")

    # ------------------------------------------------------------------ Thai text in odd forms
    add("thai-digits-sender", "the sender's code in Thai digits (๐๑๐๐...)",
        replace(base, b"<Sender>%s</Sender>" % SENDER.encode(),
                "<Sender>๐๑๐๐๐๐๐๐๐๐</Sender>".encode()), 400, "envelope.schema_invalid", "/Envelope/Header/Sender")
    add("fullwidth-recipient", "the recipient's code in full-width digits",
        replace(base, b"<Recipient>%s</Recipient>" % RECIPIENT.encode(),
                "<Recipient>１５５０１０００００</Recipient>".encode()), 400, "envelope.schema_invalid",
        "/Envelope/Header/Recipients/Recipient")
    add("zero-width-in-recipient", "a zero-width space inside the recipient's code",
        replace(base, b"<Recipient>%s</Recipient>" % RECIPIENT.encode(),
                "<Recipient>15501\u200b00000</Recipient>".encode()), 400, "envelope.schema_invalid",
        "/Envelope/Header/Recipients/Recipient")
    add("thai-message-id", "a Thai message id (outside the MessageId pattern)",
        replace(base, b"<MessageId>hostile-0001</MessageId>", "<MessageId>หนังสือที่๑</MessageId>".encode()), 400,
        "envelope.schema_invalid", "/Envelope/Header/MessageId")
    add("bidi-override-message-id", "a right-to-left override in the message id",
        replace(base, b"<MessageId>hostile-0001</MessageId>", "<MessageId>hostile\u202e1000</MessageId>".encode()),
        400, "envelope.schema_invalid", "/Envelope/Header/MessageId")
    add("thai-secrecy-word", "the secrecy class written in Thai (ลับที่สุด) instead of top-secret",
        replace(base, b"<Secrecy>normal</Secrecy>", "<Secrecy>ลับที่สุด</Secrecy>".encode()), 400,
        "envelope.schema_invalid", "/Envelope/Letter/Secrecy")
    decomposed = "\u0e19\u0e4d\u0e32" * 334  # นำ with SARA AM decomposed (NFKD): 1,002 code points
    add("thai-decomposed-subject-too-long", "a subject of 334 characters, 1,002 code points once SARA AM is "
        "decomposed (the limit is 1,000)", replace(base, subject, decomposed.encode()), 400,
        "envelope.schema_invalid", "/Envelope/Letter/Subject")
    add("thai-combining-marks-only-addressee", "an addressee of 1,001 stacked Thai tone marks",
        replace(base, "ผู้ว่าราชการจังหวัดทุกจังหวัด".encode(), ("\u0e48" * 1001).encode()), 400,
        "envelope.schema_invalid", "/Envelope/Letter/Addressee")

    # ------------------------------------------------------------------ routing and policy
    add("unknown-recipient", "a recipient that is not in the directory", good(recipients=(RECIPIENT, UNKNOWN)), 422,
        "envelope.unknown_recipient", "Header/Recipients/Recipient[2]")
    add("wrong-sender", "the envelope names another agency than the caller", good(sender=OTHER), 403,
        "auth.wrong_sender", "Header/Sender")
    add("top-secret", "secrecy ลับที่สุด (never carried)", good(secrecy=Secrecy.TOP_SECRET), 422, "policy.top_secret",
        "Letter/Secrecy")
    add("type-mismatch", "MessageType notifier over a Letter body",
        replace(base, b"<MessageType>letter</MessageType>", b"<MessageType>notifier</MessageType>"), 422,
        "envelope.type_mismatch", "Header/MessageType")
    created = dt.datetime(2026, 11, 22, 10, 0, tzinfo=BANGKOK)
    add("accepted-notifier-without-registry-number", "an 'accepted' notifier with no RegistryNumber",
        build_envelope(Envelope(
            header=Header(message_id="hostile-n-0001", message_type=MessageType.NOTIFIER, created_at=created,
                          sender=SENDER, recipients=(RECIPIENT,), ref_to_message_id="hostile-0001"),
            body=Notifier(kind=NotifierKind.ACCEPTED, letter_number="นร 0105/ว 123", letter_date=created.date()))),
        422, "envelope.registry_number_missing", "Notifier/RegistryNumber")
    receipt = (b'<?xml version="1.0"?>\n<Envelope ' + ns + b' version="1"><Header><MessageId>hostile-r-0001'
               b'</MessageId><MessageType>receipt</MessageType><CreatedAt>2026-11-22T10:00:00+07:00</CreatedAt>'
               b'<Sender>' + SENDER.encode() + b'</Sender><Recipients><Recipient>' + RECIPIENT.encode()
               + b'</Recipient></Recipients></Header><Receipt Id="Receipt"><Kind>delivery</Kind><MessageId>x'
               b'</MessageId><Sender>' + RECIPIENT.encode() + b'</Sender><Sha256>' + b"0" * 64
               + b'</Sha256><At>2026-11-22T10:00:00+07:00</At></Receipt></Envelope>')
    add("receipt-submitted", "a forged delivery receipt submitted by an agency", receipt, 422,
        "envelope.receipt_not_submittable", "Header/MessageType")
    many = b"".join(b"<Recipient>%s</Recipient>" % RECIPIENT.encode() for _ in range(5001))
    add("recipients-over-limit", "5,001 recipients (the limit is 5,000)",
        replace(base, b"<Recipient>%s</Recipient>" % RECIPIENT.encode(), many), 400, "envelope.schema_invalid",
        "/Envelope/Header/Recipients/Recipient[5001]")

    # ------------------------------------------------------------------ size
    add("oversized-declared", "a body one byte over the limit, with an honest Content-Length", None, 413,
        "envelope.too_large", generate={"rule": "pad_to_limit", "over_limit_by": 1, "chunked": False})
    add("oversized-chunked", "a body over the limit sent chunked (no Content-Length to check first)", None, 413,
        "request.too_large", generate={"rule": "pad_to_limit", "over_limit_by": 1, "chunked": True})

    # ------------------------------------------------------------------ headers
    FILES["inputs/valid-letter.xml"] = base  # the body the header cases send
    header = {"file": "inputs/valid-letter.xml"}

    def add_header(name, description, status, code, field=None, **request):
        entry_request = dict(header, **request)
        add(name, description, None, status, code, field, **entry_request)

    add_header("content-type-text-plain", "Content-Type text/plain", 415, "request.unsupported_media_type",
               "Content-Type", content_type="text/plain")
    add_header("content-type-missing", "no Content-Type at all", 415, "request.unsupported_media_type",
               "Content-Type", content_type=None)
    add_header("content-type-json", "Content-Type application/json", 415, "request.unsupported_media_type",
               "Content-Type", content_type="application/json")
    add_header("content-type-multipart-garbage", "a multipart type with no parts", 415,
               "request.unsupported_media_type", "Content-Type", content_type="multipart/form-data; boundary=x")
    add_header("authorization-missing", "no Authorization header", 401, "auth.required", auth="none")
    add_header("authorization-basic", "HTTP Basic credentials", 401, "auth.required",
               auth={"Authorization": "Basic YWRtaW46YWRtaW4="})
    add_header("authorization-bearer-empty", "'Bearer' with no token", 401, "auth.required",
               auth={"Authorization": "Bearer "})
    add_header("authorization-garbage", "a 4 kB random bearer token", 401, "auth.invalid_token",
               auth={"Authorization": "Bearer " + "".join(rng.choice("abcdef0123456789-_.~+/") for _ in range(4096))})
    add_header("authorization-sql", "a bearer token that is SQL", 401, "auth.invalid_token",
               auth={"Authorization": "Bearer ' OR 1=1 --"})
    add_header("authorization-other-agency", "a valid token of another agency (1550100000) for this envelope", 403,
               "auth.wrong_sender", "Header/Sender", auth={"token_of": RECIPIENT})
    add_header("header-too-large", "one 64 kB header (answered by the HTTP layer, before the application)", 400, None,
               headers={"X-Padding": "a" * 65536})
    add_header("method-get", "GET on the submission endpoint", 405, "method_not_allowed", method="GET")
    add("content-length-short", "Content-Length says 100 bytes, the body is the whole envelope (the rest would "
        "be read as a second request, which the HTTP layer refuses)", None, 400, None, transport="raw", content_length=100,
        **header)
    add("content-length-long", "Content-Length says 100 bytes more than are sent, then the client stops sending",
        None, 0, None, transport="raw", content_length_extra=100, half_close=True, **header)
    add("content-length-not-a-number", "Content-Length: abc", None, 400, None, transport="raw",
        content_length="abc", **header)
    add("content-length-and-chunked", "both Content-Length and Transfer-Encoding: chunked (request smuggling)", None,
        400, None, transport="raw", content_length=10, raw_headers={"Transfer-Encoding": "chunked"}, **header)
    add("content-length-huge", "Content-Length of 10^15 with a small body", None, 413, "envelope.too_large",
        transport="raw", content_length=10 ** 15, **header)
    build_parts_encodings_limits(base)


# ---------------------------------------------------------------------------- issue 13: classes 4, 6 and 8
# Part headers of a multipart/related submission, byte order marks against the XML declaration, and the
# parser's shape limits (attributes, names, namespace URIs, depth).

PART = b"%PDF-1.4\n% a file beside the envelope\n"


def related_letter() -> tuple[bytes, str]:
    """(body, Content-Type) of a valid multipart/related submission: the envelope, then part <att-2>
    (application/pdf, signed type) beside it."""
    env = dataclasses.replace(envelope(), attachments=(
        *envelope().attachments,
        Attachment.external_part(id="att-2", file_name="แผนที่.pdf", mime_type="application/pdf", size=len(PART),
                                 sha256=hashlib.sha256(PART).hexdigest())))
    return build_related(build_envelope(env), {"att-2": ("application/pdf", PART)})


def part_header(body: bytes, name: bytes, value: bytes, *, part: int = 2) -> bytes:
    """Set header ``name`` of part ``part`` (1: the envelope) to the raw ``value``."""
    heads = [i for i in range(len(body)) if body.startswith(b"--saraban-", i)]
    start = heads[part - 1]
    end = body.index(b"\r\n\r\n", start)
    lines = body[start:end].split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(name.lower() + b":")]
    return body[:start] + b"\r\n".join([*kept, name + b": " + value]) + body[end:]


def build_parts_encodings_limits(base: bytes) -> None:
    body, ctype = related_letter()
    multipart = {"ext": "mime", "content_type": ctype}
    # class 4: every part header checked at the edge (request.multipart_invalid, naming part and header)
    for name, description, header, value, part, field in [
        ("part-content-type-nul", "a NUL inside a part's Content-Type", b"Content-Type", b"application/p\x00df", 2,
         "part[2]"),
        ("part-content-type-control", "a control character (0x01) in a part's Content-Type", b"Content-Type",
         b"application/\x01pdf", 2, "part[2]"),
        ("part-content-type-not-utf8", "bytes that are not UTF-8 in a part's Content-Type", b"Content-Type",
         b"application/\xff\xfepdf", 2, "part[2]/Content-Type"),
        ("part-content-type-thai", "Thai letters in a part's Content-Type", b"Content-Type",
         "application/พีดีเอฟ".encode(), 2, "part[2]/Content-Type"),
        ("part-content-type-not-a-type", "a part's Content-Type that is no type/subtype", b"Content-Type", b"pdf",
         2, "part[2]/Content-Type"),
        ("part-content-id-not-utf8", "bytes that are not UTF-8 in a part's Content-ID", b"Content-ID",
         b"<att-\xff2>", 2, "part[2]/Content-ID"),
        ("part-transfer-encoding-not-utf8", "bytes that are not UTF-8 in Content-Transfer-Encoding",
         b"Content-Transfer-Encoding", b"bin\xe0ary", 2, "part[2]/Content-Transfer-Encoding"),
        ("part-disposition-not-utf8", "bytes that are not UTF-8 in a part's Content-Disposition",
         b"Content-Disposition", b'attachment; filename="\xff\xfe.pdf"', 2, "part[2]/Content-Disposition"),
        ("part-disposition-nul", "a NUL in a part's Content-Disposition file name", b"Content-Disposition",
         b'attachment; filename="a\x00.pdf"', 2, "part[2]"),
        ("part-header-name-not-utf8", "a header name with a byte that is not UTF-8", b"X-\xffNote", b"1", 2,
         "part[2]"),
        ("envelope-part-content-type-nul", "a NUL in the envelope part's Content-Type", b"Content-Type",
         b"application/xml; charset=\x00", 1, "part[1]"),
        ("envelope-part-charset-not-utf8", "bytes that are not UTF-8 in the envelope part's charset",
         b"Content-Type", b"application/xml; charset=\xff", 1, "part[1]/Content-Type"),
    ]:
        add(name, description, part_header(body, header, value, part=part), 400, "request.multipart_invalid", field,
            **multipart)
    add("part-type-contradicts-signed-type", "a part sent as text/html whose signed Attachment says application/pdf "
        "(the recipient would have been served HTML)", part_header(body, b"Content-Type", b"text/html"), 422,
        "attachment.type_mismatch", "part <att-2>/Content-Type",
        expect_signatures_required={"status": 422, "code": "signature.missing"}, **multipart)

    # class 6: a byte order mark and the XML declaration that disagree (envelope.encoding_unsupported)
    text = base.decode("utf-8")
    for name, description, data in [
        ("bom-utf8-declared-utf16", "a UTF-8 byte order mark, then encoding='UTF-16' (read as UTF-8 by libxml2)",
         codecs.BOM_UTF8 + replace(base, b"encoding='UTF-8'", b"encoding='UTF-16'")),
        ("bom-utf8-declared-latin1", "a UTF-8 byte order mark, then encoding='ISO-8859-1'",
         codecs.BOM_UTF8 + replace(base, b"encoding='UTF-8'", b"encoding='ISO-8859-1'")),
        ("bom-utf16le-declared-utf8", "the letter in UTF-16LE with its byte order mark, declared UTF-8",
         codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
        ("bom-utf16be-declared-utf16le", "a UTF-16BE byte order mark, declared UTF-16LE",
         codecs.BOM_UTF16_BE + text.replace("encoding='UTF-8'", "encoding='UTF-16LE'").encode("utf-16-be")),
        ("bom-utf32le-declared-utf8", "the letter in UTF-32LE with its byte order mark, declared UTF-8",
         codecs.BOM_UTF32_LE + text.encode("utf-32-le")),
        ("bom-utf8-before-utf16-text", "a UTF-8 byte order mark before a declaration written in UTF-16LE",
         codecs.BOM_UTF8 + text.encode("utf-16-le")),
    ]:
        add(name, description, data, 400, "envelope.encoding_unsupported", "/")

    # class 8: the parser's shape limits, checked while the tree is built (envelope.too_complex)
    signatures = b'<Signatures xmlns:ds="http://www.w3.org/2000/09/xmldsig#">%s</Signatures></Envelope>'
    for name, description, data, limit in [
        ("attributes-10000-in-signatures", "10,000 attributes on a ds:Signature (a zone the XSD skips)",
         replace(base, b"</Envelope>", signatures % (b"<ds:Signature "
                                                      + b" ".join(b'a%d="x"' % i for i in range(10_000)) + b"/>")),
         "attributes"),
        ("attributes-65", "65 attributes on one element (the limit is 64)",
         replace(base, b"<Speed>", b"<x " + b" ".join(b'a%d="x"' % i for i in range(65)) + b"/><Speed>"),
         "attributes"),
        ("namespace-declarations-100", "100 namespace declarations on one element",
         replace(base, b"<Speed>", b"<x " + b" ".join(b'xmlns:p%d="urn:x"' % i for i in range(100)) + b"/><Speed>"),
         "attributes"),
        ("element-name-40000", "an element name of 40,000 characters",
         replace(base, b"<Speed>", b"<" + b"n" * 40_000 + b"/><Speed>"), "name"),
        ("attribute-name-300", "an attribute name of 300 characters",
         replace(base, b"<Speed>", b"<x " + b"a" * 300 + b'="1"/><Speed>'), "name"),
        ("prefix-300", "a namespace prefix of 300 characters",
         replace(base, b"<Speed>", b"<" + b"p" * 300 + b':x xmlns:' + b"p" * 300 + b'="urn:x"/><Speed>'), "name"),
        ("namespace-uri-900k", "a namespace URI of 900,000 characters (the issue's was 1 MB)",
         replace(base, b"<Speed>", b'<x xmlns:z="urn:' + b"u" * 900_000 + b'"/><Speed>'), "namespace"),
        ("default-namespace-uri-2000", "a default namespace URI of 2,000 characters in Signatures",
         replace(base, b"</Envelope>", signatures % (b'<ds:Signature xmlns="urn:' + b"u" * 2000 + b'"/>')),
         "namespace"),
        ("nesting-65", "65 nested elements (the limit is 64)",
         replace(base, b"<Speed>", b"<x>" * 63 + b"</x>" * 63 + b"<Speed>"), "depth"),
        ("nesting-254", "254 nested elements, just under libxml2's own limit",
         replace(base, b"<Speed>", b"<x>" * 252 + b"</x>" * 252 + b"<Speed>"), "depth"),
        ("nesting-in-signatures", "100 nested ds:Object elements in Signatures (a zone the XSD skips)",
         replace(base, b"</Envelope>", signatures % (b"<ds:Object>" * 100 + b"</ds:Object>" * 100)), "depth"),
    ]:
        add(name, description, data, 400, "envelope.too_complex", limit)

    # ------------------------------------------------------------------ around the envelope (edges.py)
    edges.build(add, ENTRIES)


def write(check: bool = False) -> int:
    build()
    manifest = {"version": 1, "profile": PROFILE, "entries": ENTRIES}
    outputs = {"manifest.json": (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8"), **FILES}
    names = [e["name"] for e in ENTRIES]
    assert len(names) == len(set(names)), "entry names must be unique"
    too_big = {p: len(b) for p, b in outputs.items() if len(b) >= MAX_FILE_BYTES}
    assert not too_big, f"files over {MAX_FILE_BYTES} bytes: {too_big}"
    stale = []
    for rel, data in outputs.items():
        path = HERE / rel
        if check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    known = {HERE / rel for rel in outputs}
    extra = [p for p in INPUTS.glob("*") if p not in known] if INPUTS.exists() else []
    if check:
        stale += [str(p.relative_to(HERE)) for p in extra]
        if stale:
            print("stale corpus files (run python -m conformance.hostile.make_corpus):", *stale, sep="\n  ")
            return 1
        print(f"{len(ENTRIES)} entries, corpus files up to date")
        return 0
    for p in extra:
        p.unlink()
    print(f"wrote {len(ENTRIES)} entries and {len(FILES)} files to {HERE}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    sys.exit(write(check=parser.parse_args().check))


if __name__ == "__main__":
    main()
