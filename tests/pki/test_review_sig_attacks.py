"""Security review of perf-xml-cpu (59a3585): attack envelopes against the three shortcuts it added.

1. intake's envelope XSD standing in for signxml's schemas of the author's signature
   (``verify_in_place(schema_checked=True)``, :func:`pki.xmlsig_inplace.schema_implied`);
2. the seal reusing the verifier's id index and digests (``VerifiedTrees.put(raw, root, verified)``);
3. ``_header_text`` reading Header/MessageId and Sender without ElementPath.

Each attack is cryptographically valid where it matters (SignedInfo and the digests of what changed inside
the signature signed again with the author's key), so only the check under attack can refuse it. The rule
held throughout: whatever the intake path accepts, the bytes-only verifier (which runs signxml's schemas,
as intake did before the merge) accepts too; and the seal of a letter that went through intake verifies
against a fresh parse of the forwarded bytes, its digests being those of the very elements forwarded.
"""

from __future__ import annotations

import base64
import copy
import hashlib

import pytest
from interop import resign_signed_info
from lxml import etree

from gateway.core import xml
from gateway.core.directory import Directory
from gateway.core.envelope_reader import read_header
from gateway.core.errors import GatewayError
from gateway.core.settings import Settings
from gateway.core.signing import VERIFIED_TREES, PkiSealer, VerifiedTrees, build_trust
from gateway.intake import checks
from pki.devca import init_dev_pki
from pki.errors import PkiError
from pki.seal import seal_tree, verify_sealed
from pki.sign import sign_envelope
from pki.verify import verify_envelope
from pki.xmlparse import parse
from pki.xmlsig_parts import DS, SEAL_ID, XADES, E, c14n, id_index
from tests.support import OPM, directory_dict, letter_bytes

DSIG11 = "{http://www.w3.org/2009/xmldsig11#}"
XADES141 = "{http://uri.etsi.org/01903/v1.4.1#}"
XML_NS = "{http://www.w3.org/XML/1998/namespace}"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"


@pytest.fixture
def gateway(tmp_path):
    dev = init_dev_pki(tmp_path / "pki", {OPM: "สำนักนายกรัฐมนตรี"})
    settings = Settings.from_env({"GATEWAY_PKI_DIR": str(tmp_path / "pki"), "GATEWAY_DATA_DIR": str(tmp_path),
                                  "GATEWAY_REVOCATION": "off", "GATEWAY_REQUIRE_SIGNATURE": "true"})
    trust = build_trust(settings, Directory.from_dict(directory_dict()))
    intake = checks.Intake(Directory.from_dict(directory_dict()), max_bytes=1 << 20, verifier=trust.verifier(settings))
    return dev, intake, dev.trust_store(ocsp=False)


def _resign(root: etree._Element, signature: etree._Element, signer) -> bytes:
    """Digest again every reference to an element inside ``signature`` (they may have changed), then sign
    SignedInfo again: the signature holds cryptographically whatever was done inside it."""
    index = id_index(root)
    for ref in signature[0].iterchildren(DS + "Reference"):
        holders = index.get((ref.get("URI") or "")[1:], [])
        if len(holders) == 1 and any(a is signature for a in holders[0].iterancestors()):
            ref.find(DS + "DigestValue").text = base64.b64encode(hashlib.sha256(c14n(holders[0])).digest()).decode()
    resign_signed_info(signature, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _signed(dev, *, xades: bool = True, sign_header: bool = False) -> tuple[etree._Element, etree._Element]:
    root = parse(sign_envelope(letter_bytes(), dev.agency_signer(OPM), xades=xades, sign_header=sign_header))
    return root, next(root.iter(DS + "Signature"))


async def _intake(intake, raw: bytes) -> str:
    try:
        await intake.check(raw, agency=OPM)
    except (GatewayError, PkiError) as exc:
        return exc.code or type(exc).__name__
    finally:
        VERIFIED_TREES.take(raw)  # no handoff is left behind by a test
    return "accepted"


async def _bytes_only(raw: bytes, trust) -> str:
    """The verifier on the bytes alone: signxml's schemas for the signature, as intake ran them before."""
    try:
        await verify_envelope(raw, trust, sender=OPM)
    except (GatewayError, PkiError) as exc:
        return exc.code or type(exc).__name__
    return "accepted"


def _in_signature(xades: bool):
    """(name, mutation) pairs, each inside the author's signature."""

    def ssp(sig):
        return next(sig.iter(XADES + "SignedSignatureProperties"))

    attacks = [
        ("xml:lang on SignatureValue", lambda sig: sig.find(DS + "SignatureValue").set(XML_NS + "lang", "th")),
        ("xml:id on SignedInfo", lambda sig: sig[0].set(XML_NS + "id", "x1")),
        ("xml:space on Signature", lambda sig: sig.set(XML_NS + "space", "preserve")),
        ("dsig11:X509Digest in X509Data", lambda sig: etree.SubElement(
            next(sig.iter(DS + "X509Data")), DSIG11 + "X509Digest", Algorithm=SHA256_URI).__setattr__("text", "AAAA")),
        ("unknown ds element in X509Data", lambda sig: etree.SubElement(next(sig.iter(DS + "X509Data")), DS + "Foo")),
        ("ds:Object holding env:Sender", lambda sig: etree.SubElement(
            etree.SubElement(sig, DS + "Object"), E + "Sender").__setattr__("text", OPM)),
        ("ds:Object with an Id holding a dsig11 element", lambda sig: etree.SubElement(
            etree.SubElement(sig, DS + "Object", Id="o1"), DSIG11 + "KeyInfoReference", URI="#x")),
        ("SignatureValue Id clashing with Body", lambda sig: sig.find(DS + "SignatureValue").set("Id", "Letter")),
        ("text beside SignedInfo's children", lambda sig: sig[0][0].__setattr__("tail", "x")),
    ]
    if xades:
        attacks += [
            ("dsig11:X509Digest in SignedSignatureProperties (strict ##other)", lambda sig: etree.SubElement(
                ssp(sig), DSIG11 + "X509Digest", Algorithm=SHA256_URI).__setattr__("text", "AAAA")),
            ("env:MessageId in SignedSignatureProperties", lambda sig: etree.SubElement(
                ssp(sig), E + "MessageId").__setattr__("text", "x")),
            ("xades141:SignaturePolicyStore in SignedSignatureProperties", lambda sig: etree.SubElement(
                ssp(sig), XADES141 + "SignaturePolicyStore")),
            ("xml:lang on SignedSignatureProperties", lambda sig: ssp(sig).set(XML_NS + "lang", "th")),
            ("SigningTime twice", lambda sig: ssp(sig).insert(0, copy.deepcopy(ssp(sig).find(XADES + "SigningTime")))),
            ("SigningTime not a dateTime", lambda sig: ssp(sig).find(XADES + "SigningTime").__setattr__("text", "x")),
        ]
    else:
        attacks += [
            ("xades:SigningTime in an Object of a plain signature", lambda sig: etree.SubElement(
                etree.SubElement(sig, DS + "Object"), XADES + "SigningTime").__setattr__("text", "x")),
        ]
    return attacks


@pytest.mark.parametrize("xades", [True, False], ids=["xades", "plain"])
async def test_intake_accepts_no_signature_signxmls_schemas_refuse(gateway, xades):
    """(a) Elements and attributes signxml's schemas refuse, or the envelope XSD declares beyond them, put
    into a cryptographically valid author signature: intake (envelope XSD, zone, the verifier told
    schema_checked) accepts none that the bytes-only verifier (signxml's schemas) refuses."""
    dev, intake, trust = gateway
    signer = dev.agency_signer(OPM)
    root, sig = _signed(dev, xades=xades)
    control = _resign(root, sig, signer)
    assert await _intake(intake, control) == "accepted" == await _bytes_only(control, trust)
    verdicts = {}
    for name, mutate in _in_signature(xades):
        root, sig = _signed(dev, xades=xades)
        mutate(sig)
        raw = _resign(root, sig, signer)
        verdicts[name] = (await _intake(intake, raw), await _bytes_only(raw, trust))
    holes = {name: v for name, v in verdicts.items() if v[0] == "accepted" and v[1] != "accepted"}
    assert holes == {}, verdicts
    # a valid XML-DSig 1.1 X509Data child is a legitimate signature (both accept it); every other one is refused
    assert {name for name, v in verdicts.items() if v[0] == "accepted"} <= {"dsig11:X509Digest in X509Data"}, verdicts


async def test_wrapping_duplicates_and_second_signatures_are_refused(gateway):
    """(a) The classic wrapping and id tricks, with the schema check of the signature now skipped."""
    dev, intake, trust = gateway
    signer = dev.agency_signer(OPM)
    results = {}

    # the signed Body moved into a ds:Object of the signature, a forged Body in its place: with the same Id,
    # without one, and with an Id of its own (the author's #Letter then names the wrapped one only)
    for name, forged_id in (("body wrapped in ds:Object", "Letter"), ("body wrapped, forged body without Id", None),
                            ("body wrapped, forged body with another Id", "Letter2")):
        root, sig = _signed(dev)
        body = root.find(E + "Letter")
        assert body is not None and body.get("Id") == "Letter"
        forged = copy.deepcopy(body)
        next(forged.iter(E + "Subject")).text = "forged"
        if forged_id is None:
            del forged.attrib["Id"]
        else:
            forged.set("Id", forged_id)
        etree.SubElement(sig, DS + "Object").append(body)
        root.insert(1, forged)
        results[name] = await _intake(intake, _resign(root, sig, signer))

    # a second ds:Signature (a copy of the author's, other Id)
    root, sig = _signed(dev)
    second = copy.deepcopy(sig)
    second.set("Id", "Second")
    sig.addnext(second)
    results["second ds:Signature"] = await _intake(intake, etree.tostring(root))

    # a second, whole signature: a copy of the author's with every Id inside it renamed (no id clash)
    root, sig = _signed(dev)
    second = copy.deepcopy(sig)
    for el in second.iter(etree.Element):
        if el.get("Id"):
            el.set("Id", el.get("Id") + "-2")
    for ref in second[0].iterchildren(DS + "Reference"):
        if any(el.get("Id") == ref.get("URI")[1:] + "-2" for el in second.iter(etree.Element)):
            ref.set("URI", ref.get("URI") + "-2")
    sig.addnext(second)
    _resign(root, second, signer)
    results["second ds:Signature, ids renamed"] = await _intake(intake, etree.tostring(root))

    # a second signature first, referencing nothing that exists
    root, sig = _signed(dev)
    second = copy.deepcopy(sig)
    second.set("Id", "First")
    sig.addprevious(second)
    results["foreign ds:Signature first"] = await _intake(intake, etree.tostring(root))

    # two attachments with the same Id (the second a copy of the first)
    raw = sign_envelope(letter_bytes(), signer)
    root = parse(raw)
    attachments = root.find(E + "Attachments")
    attachments.append(copy.deepcopy(attachments[0]))
    results["attachments with equal Ids"] = await _intake(intake, etree.tostring(root))

    # an attachment whose Id equals the Body's, signed as such
    root, sig = _signed(dev)
    attachment = root.find(E + "Attachments")[0]
    ref = next(r for r in sig[0].iterchildren(DS + "Reference") if r.get("URI") == f"#{attachment.get('Id')}")
    attachment.set("Id", "Letter")
    ref.set("URI", "#Letter")
    ref.find(DS + "DigestValue").text = base64.b64encode(hashlib.sha256(c14n(attachment)).digest()).decode()
    resign_signed_info(sig, signer)
    results["attachment Id equals Body Id, signed"] = await _intake(intake, etree.tostring(root))

    # a processing instruction and a comment inside the signature (SignedInfo stays as signed: c14n drops them)
    root, sig = _signed(dev)
    sig[0].append(etree.ProcessingInstruction("x", "y"))
    results["PI in SignedInfo"] = await _intake(intake, etree.tostring(root))
    root, sig = _signed(dev)
    sig[0].append(etree.Comment("x"))
    results["comment in SignedInfo"] = await _intake(intake, etree.tostring(root))

    # the gateway's seal Id on the author's signature
    root, sig = _signed(dev)
    sig.set("Id", SEAL_ID)
    results["author signature claiming the seal Id"] = await _intake(intake, etree.tostring(root))

    assert all(v != "accepted" for v in results.values()), results


async def _sealed_through_intake(intake, trust, dev, raw: bytes) -> bytes:
    checked = await intake.check(raw, agency=OPM)
    forwarded = PkiSealer(dev.seal_signer(), VERIFIED_TREES).seal_envelope(checked.raw)
    sealed = await verify_sealed(forwarded, trust, gateway_cert=dev.seal_signer().certificate)
    assert sealed.seal_ok, sealed.seal_failure
    return forwarded


def _seal_digests_match_the_bytes(forwarded: bytes) -> None:
    """Every seal reference's DigestValue is SHA-256 of the exclusive c14n of that element in a fresh
    parse of the forwarded bytes: the seal covers the bytes that travel, not a remembered tree."""
    root = parse(forwarded)
    index = id_index(root)
    seal = next(s for s in root.iter(DS + "Signature") if s.get("Id") == SEAL_ID)
    refs = list(seal[0].iterchildren(DS + "Reference"))
    assert len(refs) >= 3
    for ref in refs:
        (element,) = index[ref.get("URI")[1:]]
        assert base64.b64decode(ref.find(DS + "DigestValue").text) == hashlib.sha256(c14n(element)).digest()


@pytest.mark.parametrize("xades,sign_header", [(True, False), (True, True), (False, True)])
async def test_the_seal_through_intake_covers_the_forwarded_bytes(gateway, xades, sign_header):
    """(b) Through intake, verifier and sealer as the gateway wires them (the index and digests handed over),
    with a signed Header, with a Header the seal must give an Id to, XAdES or not."""
    dev, intake, trust = gateway
    raw = sign_envelope(letter_bytes(), dev.agency_signer(OPM), xades=xades, sign_header=sign_header)
    _seal_digests_match_the_bytes(await _sealed_through_intake(intake, trust, dev, raw))


async def test_the_seal_through_intake_with_a_namespace_trick(gateway):
    """(b) The body's namespace declared on the root under a second prefix and on the body again: exclusive
    c14n renders what the body uses, whichever ancestor declared it; the handed-over digest must still be
    the forwarded body's."""
    dev, intake, trust = gateway
    text = letter_bytes().decode()
    text = text.replace("<Envelope ", '<Envelope xmlns:x="urn:example:unused" xmlns:e2="urn:th:gov:saraban:envelope:1" ', 1)
    raw = sign_envelope(text.encode(), dev.agency_signer(OPM))
    _seal_digests_match_the_bytes(await _sealed_through_intake(intake, trust, dev, raw))


async def test_a_handoff_from_another_tree_is_not_used(gateway):
    """(b) ``put`` keeps the verifier's findings only for the very tree they are of; sealing then computes
    its own digests, over the tree handed over, never another's."""
    dev, intake, trust = gateway
    raw = sign_envelope(letter_bytes(), dev.agency_signer(OPM))
    first = await verify_envelope(raw, trust, sender=OPM)
    other_raw = sign_envelope(letter_bytes(), dev.agency_signer(OPM))  # another letter, other digests
    other = await verify_envelope(other_raw, trust, sender=OPM)
    trees = VerifiedTrees()
    trees.put(first.raw, first.root, other)
    assert trees.take_verified(first.raw) == (first.root, None)
    # equal bytes, another object: nothing is taken, the sealer parses them again
    trees.put(first.raw, first.root, first)
    assert trees.take_verified(bytes(bytearray(first.raw))) is None
    forwarded = PkiSealer(dev.seal_signer(), trees).seal_envelope(bytes(bytearray(first.raw)))
    _seal_digests_match_the_bytes(forwarded)
    # the other tree's index with this tree: refused rather than sealed
    with pytest.raises(PkiError, match="names another element"):
        seal_tree(parse(raw), dev.seal_signer(), ids=other.ids, exclusive_sha256=other.exclusive_sha256)


def _trees_for_header_text() -> dict[str, etree._Element]:
    ns = xml.ENVELOPE_NS
    letter = letter_bytes()  # (a new MessageId each call)
    base = letter.decode()
    out: dict[str, etree._Element] = {}

    def variant(name: str, old: str, new: str) -> None:
        assert old in base, old
        out[name] = etree.fromstring(base.replace(old, new, 1).encode())

    root = etree.fromstring(letter)
    sender = root.find(f"{{{ns}}}Header/{{{ns}}}Sender")
    message_id = root.find(f"{{{ns}}}Header/{{{ns}}}MessageId")
    s, m = sender.text, message_id.text
    variant("CDATA sender", f">{s}</", f"><![CDATA[{s}]]></")
    variant("character references", f">{s}</", ">" + "".join(f"&#x{ord(c):x};" for c in s) + "</")
    variant("whitespace around", f">{s}</", f"> {s}\n</")
    variant("comment splitting", f">{s}</", f">{s[:2]}<!--x-->{s[2:]}</")
    variant("PI splitting", f">{s}</", f">{s[:2]}<?x y?>{s[2:]}</")
    variant("nested element", f">{s}</", f"><Sender>99999</Sender>{s}</")
    variant("nested element first", f">{m}</", f"><x:MessageId xmlns:x=\"{ns}\">other</x:MessageId></")
    out["prefixed Header"] = etree.fromstring(base.replace("<Header>", f'<h:Header xmlns:h="{ns}">', 1)
                                              .replace("</Header>", "</h:Header>", 1).encode())
    # a foreign-namespace Header (or a default-namespace reset) before the real one
    first = etree.fromstring(letter_bytes())
    foreign = etree.Element("{urn:example:other}Header")
    etree.SubElement(foreign, "{urn:example:other}Sender").text = "99999"
    etree.SubElement(foreign, f"{{{ns}}}Sender").text = "99998"
    first.insert(0, foreign)
    out["foreign Header first"] = first
    reset = etree.fromstring(letter_bytes())
    plain = etree.Element("Header")
    etree.SubElement(plain, "Sender").text = "99999"
    reset.insert(0, plain)
    out["no-namespace Header first"] = reset
    two = etree.fromstring(letter_bytes())
    empty_header = etree.Element(f"{{{ns}}}Header")
    two.insert(0, empty_header)
    out["empty Header first"] = two
    comment_first = etree.fromstring(letter_bytes())
    comment_first.find(f"{{{ns}}}Header").insert(0, etree.Comment("Sender"))
    out["comment first in Header"] = comment_first
    return out


def test_header_text_reads_what_findtext_reads():
    """(c) Wherever the trees differ from a plain letter, ``_header_text`` finds what ElementPath finds."""
    ns = xml.ENVELOPE_NS
    for name, root in _trees_for_header_text().items():
        for tag in ("Sender", "MessageId"):
            assert checks._header_text(root, f"{{{ns}}}{tag}") == root.findtext(f"{{{ns}}}Header/{{{ns}}}{tag}"), name


async def test_intake_sender_is_the_schema_valid_sender(gateway):
    """(c) The sender intake authorises is the one the envelope reader (and the XSD) sees, or it refuses."""
    dev, intake, trust = gateway
    signer = dev.agency_signer(OPM)
    for name, root in _trees_for_header_text().items():
        raw = sign_envelope(etree.tostring(root), signer)
        verdict = await _intake(intake, raw)
        if verdict == "accepted":
            parsed = parse(raw)
            assert read_header(parsed).sender == OPM == checks._header_text(parsed, f"{{{xml.ENVELOPE_NS}}}Sender"), name
        else:
            assert name not in ("CDATA sender", "character references", "prefixed Header"), (name, verdict)
