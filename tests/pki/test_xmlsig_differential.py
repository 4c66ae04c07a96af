"""Differential tests: the in-place verifier (the hot path), signxml and libxmlsec1 agree.

Valid signatures are generated (XAdES or plain, ECDSA P-256/P-384 or RSA, 0-3
attachments of random size and bytes, header signed or not, ``xml:lang`` on
the envelope or not, sealed or not, lean or XAdES seal) in three styles:

* ``gateway``: ``pki.sign`` as it is, every reference naming exclusive c14n;
* ``standard``: libxmlsec1 signs with no transform on any reference
  (inclusive Canonical XML 1.0, XML-DSig 4.4.3.2), as standard signers do;
* ``legacy``: stock signxml's XAdES (its SignedProperties and KeyInfo
  references bare but digested with exclusive c14n): what was issued before.

and mutated by Hypothesis (a byte of a signed text, a digest, the signature
value, a certificate digest, an id, an added KeyValue, a namespace or
``xml:lang`` brought into scope ...). For each, after the policy checks that
every verifier runs behind, the in-place verifier's verdict must equal
signxml's (and it may only accept in its own shape: see
:mod:`pki.xmlsig_inplace`), and libxmlsec1's verdict must equal them too,
except on a legacy author signature, which libxmlsec1 always refuses (the
gateway's verifiers accept it for compatibility: :mod:`pki.xmlsig_policy`).
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interop import EVERY_PART, legacy_sign, xmlsec_sign
from lxml import etree
from samples import envelope

from pki.errors import PkiError
from pki.keys import FileSigner
from pki.seal import seal_envelope
from pki.sign import sign_envelope
from pki.xmlparse import parse
from pki.xmlsig_inplace import verify_in_place
from pki.xmlsig_parts import DS, SEAL_ID, XADES, E, author_signature, envelope_parts, id_index, strip_comments
from pki.xmlsig_policy import check_algorithms, check_references, keyinfo_certs
from pki.xmlsig_signxml import run_signxml
from pki.xmlsig_xmlsec import XMLSEC_VERSION, check_linked, verify_with_xmlsec


def test_xmlsec_imports_with_the_installed_lxml():
    # A libxml2 mismatch between lxml and xmlsec fails at import; pyproject.toml pins the two together.
    ours, theirs = check_linked()
    assert ours == theirs == etree.LIBXML_VERSION
    assert XMLSEC_VERSION >= (1, 2, 30)


@pytest.fixture(scope="module")
def signers(dev_pki) -> dict[str, FileSigner]:
    factory = dev_pki.issuing_factory()
    out = {"ec-p256": dev_pki.agency_signer("00001")}
    for kind in ("ec-p384", "rsa-2048"):
        issued = factory.agency_signing("00001", f"agency {kind}", key_type=kind)
        out[kind] = FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert])
    return out


def _verdicts(raw: bytes, *, seal: bool) -> dict[str, bool] | None:
    """Each verifier's verdict on the author's signature (or the seal), or None when the shared policy
    already refuses (no verifier runs then)."""
    try:
        root = parse(raw)
    except PkiError:
        return None
    strip_comments(root)
    parts = envelope_parts(root)
    if seal:
        found = [(i, s) for i, s in enumerate(parts.signatures.iterchildren(DS + "Signature"))
                 if s.get("Id") == SEAL_ID]
        position, signature = found[0]
        required = [parts.header, parts.body, *parts.attachments, author_signature(parts)[1]]
        optional = []
    else:
        position, signature = author_signature(parts)
        required = [parts.body, *parts.attachments]
        optional = [parts.header] if parts.header is not None and parts.header.get("Id") else []
    try:
        cert = keyinfo_certs(signature)[0]
        uris, resolved_uris = check_references(signature, id_index(root), required=required, optional=optional)
        check_algorithms(signature, cert, allow_sha1=False)
    except PkiError:
        return None
    resolved = {u[1:]: e for u, e in resolved_uris.items()}
    xades = signature.find(f"{DS}Object/{XADES}QualifyingProperties") is not None
    verdicts = {"in_place": verify_in_place(signature, cert, uris, resolved, xades=xades) is not None}
    try:
        run_signxml(root, position, cert, len(uris), xades=xades, allow_sha1=False, resolved=resolved)
        verdicts["signxml"] = True
    except PkiError:
        verdicts["signxml"] = False
    try:
        verify_with_xmlsec(signature, cert, uris, resolved)
        verdicts["xmlsec"] = True
    except PkiError:
        verdicts["xmlsec"] = False
    return verdicts


def _agree(verdicts: dict[str, bool], *, legacy: bool) -> bool:
    """The verifiers agree; on a legacy author signature libxmlsec1 refuses and the other two agree."""
    if legacy:
        return verdicts["xmlsec"] is False and verdicts["in_place"] == verdicts["signxml"]
    return len(set(verdicts.values())) == 1


letters = st.fixed_dictionaries({
    "attachments": st.integers(0, 3),
    "size": st.integers(1, 3000),
    "xades": st.booleans(),
    "sign_header": st.booleans(),
    "key": st.sampled_from(["ec-p256", "ec-p384", "rsa-2048"]),
    "seal": st.booleans(),
    "seal_xades": st.booleans(),
    "style": st.sampled_from(["gateway", "standard", "legacy"]),
    "xml_lang": st.booleans(),
})
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _legacy(spec) -> bool:
    """A legacy author signature: stock signxml's XAdES (plain signxml names every transform)."""
    return spec["style"] == "legacy" and spec["xades"]


def _make(signers, seal_signer, spec) -> bytes:
    unsigned = envelope(attachments=spec["attachments"], attachment_size=spec["size"])
    if spec["xml_lang"]:
        root = etree.fromstring(unsigned)
        root.set(XML_LANG, "th")
        unsigned = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    signer = signers[spec["key"]]
    if spec["style"] == "gateway":
        signed = sign_envelope(unsigned, signer, xades=spec["xades"], sign_header=spec["sign_header"])
    else:
        signed = legacy_sign(unsigned, signer, xades=spec["xades"], sign_header=spec["sign_header"])
        if spec["style"] == "standard":
            signed = xmlsec_sign(signed, signer, bare=EVERY_PART)
    return seal_envelope(signed, seal_signer, xades=spec["seal_xades"]) if spec["seal"] else signed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=letters)
def test_valid_signatures_all_verifiers_accept(signers, seal_signer, spec):
    raw = _make(signers, seal_signer, spec)
    for seal in (False, True) if spec["seal"] else (False,):
        verdicts = _verdicts(raw, seal=seal)
        assert verdicts is not None
        if _legacy(spec) and not seal:
            assert verdicts == {"in_place": True, "signxml": True, "xmlsec": False}, verdicts
        else:
            assert set(verdicts.values()) == {True}, verdicts


def _mutations(root: etree._Element, seal: bool) -> list[tuple[str, object]]:
    """(name, function mutating a tree in place) for every place worth breaking."""
    parts = envelope_parts(root)
    sigs = list(parts.signatures.iterchildren(DS + "Signature"))
    sig = [s for s in sigs if (s.get("Id") == SEAL_ID) == seal][0]
    out: list[tuple[str, object]] = []

    def retext(el, text):
        return lambda: setattr(el, "text", text)

    body_texts = [el for el in parts.body.iter() if el.text and el.text.strip()]
    for el in body_texts[:3]:
        out.append((f"body text {etree.QName(el).localname}", retext(el, el.text + "x")))
    for att in parts.attachments:
        content = att.find(E + "Content")
        out.append(("attachment content", retext(content, base64.b64encode(b"other bytes").decode())))
        out.append(("attachment attribute", lambda att=att: att.set("role", "other")))
    for ref in sig[0].iterchildren(DS + "Reference"):
        dv = ref.find(DS + "DigestValue")
        flipped = base64.b64encode(bytes([base64.b64decode(dv.text)[0] ^ 1]) + base64.b64decode(dv.text)[1:])
        out.append((f"digest of {ref.get('URI')}", retext(dv, flipped.decode())))
    value = sig.find(DS + "SignatureValue")
    raw_value = base64.b64decode(value.text)
    out.append(("signature value bit", retext(value, base64.b64encode(raw_value[:-1] + bytes([raw_value[-1] ^ 1]))
                                                .decode())))
    out.append(("signature value short", retext(value, base64.b64encode(raw_value[:-2]).decode())))
    out.append(("signature value garbage", retext(value, "!!!not base64!!!")))
    out.append(("signed info comment-free text", lambda: sig[0].set("Id", "si-1")))
    for cd in sig.iter(XADES + "CertDigest"):
        v = cd.find(DS + "DigestValue")
        out.append(("xades cert digest", retext(v, base64.b64encode(b"\0" * 32).decode())))
    for st_el in sig.iter(XADES + "SigningTime"):
        out.append(("xades signing time", retext(st_el, "2001-01-01T00:00:00+00:00")))
    key_info = sig.find(DS + "KeyInfo")
    if key_info is not None:
        def add_key_value(key_info=key_info):
            kv = etree.SubElement(key_info, DS + "KeyValue")
            etree.SubElement(kv, DS + "RSAKeyValue")
        out.append(("added KeyValue", add_key_value))
        x509_data = key_info.find(DS + "X509Data")
        certs = x509_data.findall(DS + "X509Certificate")
        if len(certs) > 1:
            out.append(("chain swapped", lambda c=certs: (c[0].addprevious(c[1]))))
    out.append(("extra SignedInfo child", lambda: sig[0].append(etree.Element(DS + "Unknown"))))
    cm = sig[0].find(DS + "CanonicalizationMethod")
    out.append(("inclusive namespaces", lambda: etree.SubElement(
        cm, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces", PrefixList="env")))
    if parts.header is not None:
        mid = parts.header.find(E + "MessageId")
        out.append(("header text", retext(mid, (mid.text or "") + "x")))
    out.append(("reference order", lambda: sig[0][2].addnext(sig[0][3]) if len(sig[0]) > 3 else None))
    # what inclusive c14n of a bare reference reads from outside the element: the namespaces and xml:*
    # attributes in scope (exclusive c14n reads neither)
    out.append(("xml:lang on the envelope", lambda: root.set(XML_LANG, "en")))
    out.append(("xml:lang on the signatures", lambda: parts.signatures.set(XML_LANG, "en")))

    def namespace_in_scope(container=parts.signatures):
        wider = etree.Element(container.tag, dict(container.attrib), nsmap={**container.nsmap, "x": "urn:x"})
        wider.text = container.text
        wider.extend(list(container))
        container.getparent().replace(container, wider)
    out.append(("namespace brought into scope", namespace_in_scope))
    for ref in sig[0].iterchildren(DS + "Reference"):
        transforms = ref.find(DS + "Transforms")
        if transforms is not None:
            out.append((f"transforms dropped from {ref.get('URI')}", lambda r=ref, t=transforms: r.remove(t)))
        else:
            def add_transform(r=ref):
                t = etree.Element(DS + "Transforms")
                etree.SubElement(t, DS + "Transform", Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
                r.insert(0, t)
            out.append((f"transform added to {ref.get('URI')}", add_transform))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=letters, pick=st.integers(0, 10_000), seal=st.booleans())
def test_mutated_signatures_verdicts_agree(signers, seal_signer, spec, pick, seal):
    seal = seal and spec["seal"]
    raw = _make(signers, seal_signer, spec)
    mutations = _mutations(parse(raw), seal)
    for name, _ in mutations[pick % len(mutations):] + mutations[:pick % len(mutations)]:
        root = parse(raw)
        dict(_mutations(root, seal))[name]()
        verdicts = _verdicts(etree.tostring(root), seal=seal)
        if verdicts is None:
            continue
        assert _agree(verdicts, legacy=_legacy(spec) and not seal), (name, verdicts)


@pytest.mark.parametrize("name", ["added KeyValue", "inclusive namespaces", "extra SignedInfo child"])
def test_shapes_outside_the_fast_path_go_to_signxml(signers, seal_signer, name):
    # The in-place verifier never accepts these shapes; signxml decides them (and refuses these).
    raw = _make(signers, seal_signer, {**_ONE, "style": "gateway"})
    root = parse(raw)
    dict(_mutations(root, False))[name]()
    verdicts = _verdicts(etree.tostring(root), seal=False)
    assert verdicts in (None, {"in_place": False, "signxml": False, "xmlsec": False})


_ONE = {"attachments": 1, "size": 100, "xades": True, "sign_header": False, "key": "ec-p256", "seal": False,
        "seal_xades": False, "xml_lang": False}


@pytest.mark.parametrize("name", ["xml:lang on the envelope", "xml:lang on the signatures",
                                  "namespace brought into scope"])
@pytest.mark.parametrize("style", ["gateway", "standard", "legacy"])
def test_context_of_a_bare_reference_counts_only_where_the_standard_says(signers, seal_signer, style, name):
    """Inclusive c14n (a bare reference, standard) reads the namespaces and xml:* attributes in scope;
    exclusive c14n (named, or the legacy digest) reads neither. Each verifier says the same."""
    raw = _make(signers, seal_signer, {**_ONE, "style": style})
    root = parse(raw)
    dict(_mutations(root, False))[name]()
    verdicts = _verdicts(etree.tostring(root), seal=False)
    expected = {"gateway": {"in_place": True, "signxml": True, "xmlsec": True},
                "standard": {"in_place": False, "signxml": False, "xmlsec": False},
                "legacy": {"in_place": True, "signxml": True, "xmlsec": False}}[style]
    assert verdicts == expected, verdicts
