"""The envelope XSD implies signxml's schemas for every ds:Signature :func:`schema_implied` clears.

Intake validates the whole envelope against ``schemas/envelope-v1.xsd`` and checks its signature zone
before the verifier runs, so the in-place verifier skips its own schema check of the author's signature
(signxml's XML-DSig schema, or one of its three XAdES schemas) when told so (``schema_checked``) and
:func:`pki.xmlsig_inplace.schema_implied` holds. That is sound only if whatever the envelope XSD and the
zone check accept, and ``schema_implied`` clears, signxml's schemas accept too. Checked here as a
property: signatures of every style the differential tests make (the gateway's, stock signxml's XAdES,
libxmlsec1's; XAdES or not; sealed or not) are mutated at a random element of the signature (removed,
repeated, moved, renamed into another namespace, a child added, a valid element of a namespace one of
the schemas declares and the other may not, text or an attribute set or removed) and, whenever the
envelope XSD and the zone check still accept the envelope, every ``ds:Signature`` that ``schema_implied``
clears must be valid against signxml's schemas as the verifier would pick them. The hostile corpus's
envelopes are held to the same. Two controls show the harness has teeth: it finds counterexamples as
soon as the envelope XSD stops checking the signatures, and without ``schema_implied`` (an XML-DSig 1.1
element where XAdES has a strict wildcard is valid for the envelope XSD only).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.resources
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interop import EVERY_PART, legacy_sign, resign_signed_info, xmlsec_sign
from lxml import etree
from samples import envelope

from gateway.core.xml import load_schema
from gateway.intake import checks as intake_checks
from pki.errors import PkiError
from pki.keys import FileSigner
from pki.seal import seal_envelope
from pki.sign import sign_envelope
from pki.sigzone import check_signature_zone
from pki.xmlparse import make_parser, parse
from pki.xmlsig_inplace import ENVELOPE_SCHEMA, _schema_valid, schema_implied, verify_in_place
from pki.xmlsig_parts import DS, XADES, E, c14n, envelope_parts, id_index, serialize, strip_comments
from pki.xmlsig_policy import check_references, keyinfo_certs
from pki.xmlsig_signxml import run_signxml

ROOT = Path(__file__).resolve().parents[2]
DSIG11 = "{http://www.w3.org/2009/xmldsig11#}"
XADES141 = "{http://uri.etsi.org/01903/v1.4.1#}"
NAMESPACES = (DS, XADES, XADES141, DSIG11, E, "{urn:example:foreign}", "")
LOCAL_NAMES = ("Signature", "SignedInfo", "CanonicalizationMethod", "SignatureMethod", "Reference", "Transforms",
               "Transform", "DigestMethod", "DigestValue", "SignatureValue", "KeyInfo", "X509Data",
               "X509Certificate", "X509IssuerSerial", "KeyValue", "KeyName", "Object", "SignatureProperties",
               "Manifest", "QualifyingProperties", "SignedProperties", "SignedSignatureProperties",
               "SigningTime", "SigningCertificate", "SigningCertificateV2", "Cert", "CertDigest",
               "DataObjectFormat", "MimeType", "UnsignedProperties", "ECKeyValue", "NamedCurve", "Any", "XPath",
               "InclusiveNamespaces", "HMACOutputLength", "Letter", "x")
TEXTS = ("", " ", "x", "AAAA", "!!not base64!!", "12", "-1", "2001-01-01T00:00:00Z", "yesterday",
         "http://www.w3.org/2001/04/xmlenc#sha256", "#Letter", "a b")
ATTRIBUTES = ("Id", "URI", "Algorithm", "Target", "Type", "Encoding", "MimeType", "ObjectReference", "Qualifier",
              "foo", "{urn:example:foreign}x", "{http://www.w3.org/XML/1998/namespace}lang")
VALUES = ("", "x", "Letter", "GatewaySeal", "AuthorSignature", "#Letter", "1bad", "a b", "http://x/",
          "http://www.w3.org/2001/10/xml-exc-c14n#", "#xades-sp")
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"


def _valid_globals() -> list[etree._Element]:
    """Elements valid as they stand wherever their global declaration is known: of XML-DSig 1.1, XAdES 1.3.2
    and 1.4.1, XML-DSig and the envelope (each schema set knows some of these namespaces, not all)."""
    dsig11_digest = etree.Element(DSIG11 + "X509Digest", Algorithm=SHA256_URI)
    dsig11_digest.text = "AAAA"
    ack = etree.Element(E + "DeliveryAck")
    etree.SubElement(ack, E + "DeliveryId").text = "d-1"
    xades_any = etree.Element(XADES + "Any")
    xades_any.text = "x"
    key_name = etree.Element(DS + "KeyName")
    key_name.text = "k"
    return [dsig11_digest, etree.Element(DSIG11 + "KeyInfoReference", URI="#x"), xades_any,
            etree.Element(XADES + "Include", URI="#x"), etree.Element(XADES141 + "SPDocSpecification"), key_name,
            ack]


@pytest.fixture(scope="module")
def signers(dev_pki) -> dict[str, FileSigner]:
    factory = dev_pki.issuing_factory()
    out = {"ec-p256": dev_pki.agency_signer("00001")}
    issued = factory.agency_signing("00001", "agency rsa-2048", key_type="rsa-2048")
    out["rsa-2048"] = FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert])
    return out


def _signed(signers, seal_signer, *, style: str, xades: bool, key: str, attachments: int, seal: str) -> bytes:
    unsigned = envelope(attachments=attachments, attachment_size=200)
    signer = signers[key]
    if style == "gateway":
        signed = sign_envelope(unsigned, signer, xades=xades, sign_header=attachments % 2 == 0)
    else:
        signed = legacy_sign(unsigned, signer, xades=xades, sign_header=False)
        if style == "standard":
            signed = xmlsec_sign(signed, signer, bare=EVERY_PART)
    if seal == "none":
        return signed
    return seal_envelope(signed, seal_signer, xades=seal == "xades")


def _signatures(root: etree._Element) -> list[etree._Element]:
    holder = root.find(E + "Signatures")
    return [] if holder is None else list(holder.iterchildren(DS + "Signature"))


def _is_xades(signature: etree._Element) -> bool:
    """As :func:`pki.verify.check_signature` decides which of signxml's schemas apply."""
    return any(obj.find(XADES + "QualifyingProperties") is not None for obj in signature.iterchildren(DS + "Object"))


def _mutate(root: etree._Element, rnd: random.Random) -> str:
    """Change one random element of one signature in place; say what was done."""
    signature = rnd.choice(_signatures(root))
    elements = list(signature.iter(etree.Element))
    el = rnd.choice(elements)
    parent = el.getparent()
    what = rnd.randrange(11)
    if what >= 9:  # a valid element of some namespace, anywhere (strict wildcards take any declared one)
        new = copy.deepcopy(rnd.choice(_valid_globals()))
        el.insert(rnd.randrange(len(el) + 1), new)
        return f"added valid {new.tag} in {el.tag}"
    if what == 0 and el is not signature:
        parent.remove(el)
        return f"removed {el.tag}"
    if what == 1 and el is not signature:
        el.addnext(copy.deepcopy(el))
        return f"repeated {el.tag}"
    if what == 2 and el is not signature and el.getprevious() is not None:
        el.getprevious().addprevious(el)
        return f"moved {el.tag} up"
    if what == 3:
        el.tag = rnd.choice(NAMESPACES) + etree.QName(el).localname
        return f"renamed to {el.tag}"
    if what == 4:
        el.tag = etree.QName(el).namespace and f"{{{etree.QName(el).namespace}}}{rnd.choice(LOCAL_NAMES)}" or el.tag
        return f"renamed to {el.tag}"
    if what == 5:
        new = etree.Element(rnd.choice(NAMESPACES) + rnd.choice(LOCAL_NAMES))
        if rnd.random() < 0.5:
            new.text = rnd.choice(TEXTS)
        el.insert(rnd.randrange(len(el) + 1), new)
        return f"added {new.tag} in {el.tag}"
    if what == 6:
        el.text = rnd.choice(TEXTS)
        return f"text of {el.tag}"
    if what == 7 and el.attrib:
        name = rnd.choice(list(el.attrib))
        del el.attrib[name]
        return f"removed @{name} of {el.tag}"
    name, value = rnd.choice(ATTRIBUTES), rnd.choice(VALUES)
    el.set(name, value)
    return f"@{name}={value!r} on {el.tag}"


def _verdicts(raw: bytes, envelope_schema: etree.XMLSchema) -> tuple[bool, list[tuple[bool, bool]]] | None:
    """(intake accepts: the envelope XSD and the zone check (seal or not), then for each signature:
    (signxml's schemas accept it, ``schema_implied`` clears it)) as intake and the verifier see the bytes, or
    None when the hardened parser refuses them (nothing is validated then)."""
    try:
        root = parse(raw)
    except PkiError:
        return None
    strip_comments(root)
    accepted = envelope_schema.validate(root)
    if accepted:
        try:
            check_signature_zone(root, seal=True)
        except PkiError:
            accepted = False
    return accepted, [(_schema_valid(s, _is_xades(s)), schema_implied(s, _is_xades(s))) for s in _signatures(root)]


def _counterexample(verdicts: tuple[bool, list[tuple[bool, bool]]] | None, *, guarded: bool = True) -> bool:
    """Intake accepts, and a signature the rule clears (every one, unguarded) is refused by signxml's schemas."""
    return verdicts is not None and verdicts[0] and any(
        not signxml_ok and (implied or not guarded) for signxml_ok, implied in verdicts[1])


def _mutated(base: bytes, seed: int, rounds: int) -> tuple[bytes, list[str]]:
    rnd = random.Random(seed)
    root = parse(base)
    done = [_mutate(root, rnd) for _ in range(rounds) if _signatures(root)]
    return serialize(root), done


STYLES = st.fixed_dictionaries({
    "style": st.sampled_from(["gateway", "standard", "legacy"]),
    "xades": st.booleans(),
    "key": st.sampled_from(["ec-p256", "rsa-2048"]),
    "attachments": st.integers(0, 2),
    "seal": st.sampled_from(["none", "lean", "xades"]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=STYLES, seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 3))
def test_what_the_envelope_schema_accepts_signxmls_schemas_accept(signers, seal_signer, spec, seed, rounds):
    schema = load_schema(ENVELOPE_SCHEMA)
    base = _signed(signers, seal_signer, **spec)
    assert _verdicts(base, schema) == (True, [(True, True)] * len(_signatures(parse(base))))
    for k in range(8):
        raw, done = _mutated(base, seed + k, rounds)
        verdicts = _verdicts(raw, schema)
        assert not _counterexample(verdicts), (done, verdicts)


def _sweep(signers, seal_signer, schema: etree._Element | etree.XMLSchema, n: int) -> dict[str, int]:
    counts = {"envelope accepts": 0, "envelope refuses": 0, "counterexamples": 0, "unguarded counterexamples": 0}
    specs = [dict(style=style, xades=xades, key="ec-p256", attachments=1, seal=seal)
             for style in ("gateway", "standard", "legacy") for xades in (True, False) for seal in ("none", "lean")]
    bases = [_signed(signers, seal_signer, **spec) for spec in specs]
    for i in range(n):
        raw, _ = _mutated(bases[i % len(bases)], 7919 * i, 1 + i % 2)
        verdicts = _verdicts(raw, schema)
        if verdicts is None:
            continue
        counts["envelope accepts" if verdicts[0] else "envelope refuses"] += 1
        counts["counterexamples"] += _counterexample(verdicts)
        counts["unguarded counterexamples"] += _counterexample(verdicts, guarded=False)
    return counts


def test_the_sweep_is_not_vacuous(signers, seal_signer):
    # Seeded, so the same mutations every run: both outcomes occur often, and none breaks the implication.
    counts = _sweep(signers, seal_signer, load_schema(ENVELOPE_SCHEMA), 1000)
    assert counts["counterexamples"] == 0, counts
    assert counts["envelope accepts"] >= 60 and counts["envelope refuses"] >= 150, counts
    # and the namespace rule is needed: without it, valid elements signxml's schemas do not declare, where
    # a wildcard is strict, are counterexamples
    assert counts["unguarded counterexamples"] >= 3, counts


def _lax_envelope_schema() -> etree.XMLSchema:
    """The envelope XSD with its ds:Signature declaration replaced by a wildcard that checks nothing."""
    resource = importlib.resources.files("schemas").joinpath(ENVELOPE_SCHEMA)
    with importlib.resources.as_file(resource) as path:
        text = Path(path).read_text(encoding="utf-8")
        declared = '<xs:element ref="ds:Signature" maxOccurs="2"/>'
        assert text.count(declared) == 1
        lax = text.replace(declared, '<xs:any namespace="http://www.w3.org/2000/09/xmldsig#" '
                                     'processContents="skip" maxOccurs="2"/>')
        return etree.XMLSchema(etree.fromstring(lax.encode(), make_parser(), base_url=str(path)))


def test_the_harness_finds_a_schema_that_does_not_check_signatures(signers, seal_signer):
    counts = _sweep(signers, seal_signer, _lax_envelope_schema(), 200)
    assert counts["counterexamples"] >= 10, counts  # even with the namespace rule


def test_hostile_corpus_envelopes_hold_too():
    schema = load_schema(ENVELOPE_SCHEMA)
    checked = 0
    for path in sorted((ROOT / "conformance" / "hostile" / "inputs").glob("*.xml")):
        verdicts = _verdicts(path.read_bytes(), schema)
        assert not _counterexample(verdicts), path.name
        if verdicts is not None and verdicts[0]:
            checked += len(verdicts[1])
    assert checked >= 1


def test_schema_checked_skips_only_signxmls_schemas(signers, seal_signer):
    # An attribute the XML-DSig schema does not declare, on the signature element itself (no reference
    # covers it): the cryptography holds, signxml's schemas refuse, and so does the envelope XSD, which is
    # why only a caller that ran the envelope XSD on the tree may say schema_checked.
    root = parse(_signed(signers, seal_signer, style="gateway", xades=True, key="ec-p256", attachments=1,
                         seal="none"))
    signature = _signatures(root)[0]
    signature.set("foo", "x")
    cert = keyinfo_certs(signature)[0]
    parts = envelope_parts(root)
    uris, resolved = check_references(signature, id_index(root), required=[parts.body, *parts.attachments])
    by_id = {u[1:]: e for u, e in resolved.items()}
    assert not load_schema(ENVELOPE_SCHEMA).validate(root)
    assert verify_in_place(signature, cert, uris, by_id, xades=True) is None
    assert verify_in_place(signature, cert, uris, by_id, xades=True, schema_checked=True) is not None
    del signature.attrib["foo"]
    assert load_schema(ENVELOPE_SCHEMA).validate(root)
    assert verify_in_place(signature, cert, uris, by_id, xades=True) is not None


def test_intake_validates_against_the_schema_the_verifier_relies_on():
    assert intake_checks.SCHEMA == ENVELOPE_SCHEMA


def test_a_signed_xmldsig11_element_in_a_strict_wildcard_goes_to_signxml(signers, seal_signer):
    # The case the namespace rule is for: an author signs a XAdES signature whose SignedSignatureProperties
    # end with a valid dsig11:X509Digest. The envelope XSD (which declares XML-DSig 1.1) and the zone check
    # accept it, signxml's XAdES schemas (which do not) refuse it: so must the verifier, told schema_checked.
    root = parse(_signed(signers, seal_signer, style="gateway", xades=True, key="ec-p256", attachments=1,
                         seal="none"))
    signature = _signatures(root)[0]
    properties = next(signature.iter(XADES + "SignedProperties"))
    etree.SubElement(next(properties.iter(XADES + "SignedSignatureProperties")), DSIG11 + "X509Digest",
                     Algorithm=SHA256_URI).text = "AAAA"
    reference = [r for r in signature[0].iterchildren(DS + "Reference") if r.get("URI") == f"#{properties.get('Id')}"]
    reference[0].find(DS + "DigestValue").text = base64.b64encode(hashlib.sha256(c14n(properties)).digest()).decode()
    resign_signed_info(signature, signers["ec-p256"])
    assert load_schema(ENVELOPE_SCHEMA).validate(root)
    check_signature_zone(root, seal=False)
    assert not _schema_valid(signature, True) and not schema_implied(signature, True)
    cert = keyinfo_certs(signature)[0]
    parts = envelope_parts(root)
    uris, resolved = check_references(signature, id_index(root), required=[parts.body, *parts.attachments])
    by_id = {u[1:]: e for u, e in resolved.items()}
    assert verify_in_place(signature, cert, uris, by_id, xades=True, schema_checked=True) is None
    with pytest.raises(PkiError):
        run_signxml(root, 0, cert, len(uris), xades=True, allow_sha1=False, resolved=by_id)
