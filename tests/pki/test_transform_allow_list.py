"""The reference transforms :func:`pki.xmlsig_policy.check_algorithms` allows, case by case.

Its loop over a reference's transforms was rewritten without generators; the allow-list is the same:
exclusive c14n or nothing for a detached reference, and no Transform with any child at all (an
``InclusiveNamespaces``, an XPath, even a comment), whichever reference carries it.
"""

from __future__ import annotations

import pytest
from lxml import etree
from samples import envelope

from pki.errors import SignatureError
from pki.sign import sign_envelope
from pki.xmlsig_parts import DS, author_signature, envelope_parts
from pki.xmlsig_policy import ENVELOPED, EXC_C14N_URI, check_algorithms, keyinfo_certs

EXC_NS = "{http://www.w3.org/2001/10/xml-exc-c14n#}"


def _mutated(signer, ref_index: int, change) -> tuple[etree._Element, object]:
    root = etree.fromstring(sign_envelope(envelope(), signer, xades=True))
    _, signature = author_signature(envelope_parts(root))
    refs = list(signature[0].iterchildren(DS + "Reference"))
    change(refs[ref_index])
    return signature, keyinfo_certs(signature)[0]


def _transforms(ref: etree._Element) -> etree._Element:
    return ref.find(DS + "Transforms")


CASES = {
    "as signed": (lambda ref: None, True),
    "no transforms": (lambda ref: ref.remove(_transforms(ref)), True),
    "InclusiveNamespaces": (lambda ref: etree.SubElement(_transforms(ref)[0], EXC_NS + "InclusiveNamespaces",
                                                         PrefixList="env"), False),
    "a comment inside": (lambda ref: _transforms(ref)[0].append(etree.Comment("x")), False),
    "two exclusive c14n": (lambda ref: _transforms(ref).append(etree.Element(DS + "Transform", Algorithm=EXC_C14N_URI)),
                           False),
    "enveloped in a detached reference": (lambda ref: _transforms(ref)[0].set("Algorithm", ENVELOPED), False),
    "no algorithm": (lambda ref: _transforms(ref)[0].attrib.pop("Algorithm"), False),
    "inclusive c14n": (lambda ref: _transforms(ref)[0].set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"),
                       False),
}


@pytest.mark.parametrize("ref_index", [0, 1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_transform_allow_list(signer1, case, ref_index):
    change, allowed = CASES[case]
    signature, cert = _mutated(signer1, ref_index, change)
    if allowed:
        check_algorithms(signature, cert, allow_sha1=False)
    else:
        with pytest.raises(SignatureError, match="transforms of") as refused:
            check_algorithms(signature, cert, allow_sha1=False)
        assert refused.value.code == "signature.algorithm"
