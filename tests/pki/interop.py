"""Signatures as other signers write them, for the interoperability tests.

* :func:`legacy_sign`: stock signxml's ``XAdESSigner`` (what ``pki.sign`` wrote before it named every
  transform, and what agency tools built on signxml write): the SignedProperties and KeyInfo references
  carry no Transform and are digested with exclusive c14n.
* :func:`xmlsec_sign`: libxmlsec1 (python-xmlsec) signs a template; references without Transforms are
  digested the standard way (XML-DSig 1.1 4.4.3.2: inclusive Canonical XML 1.0, comments omitted).
* :func:`resign_signed_info`: a new SignatureValue over SignedInfo as it stands, so that a test can
  change a DigestValue and still have a signature value that holds (the digest alone is then at fault).
* :func:`xmlsec1_cli`: the Debian ``xmlsec1`` command (libxmlsec1 1.2, another build) on a file.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import xmlsec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import SignatureConstructionMethod
from signxml.xades import XAdESSigner

from pki.keys import FileSigner
from pki.xmlparse import parse
from pki.xmlsig_parts import (
    AUTHOR_SIGNATURE_ID,
    DS,
    SIGNABLE_TAGS,
    XADES,
    envelope_parts,
    id_index,
    serialize,
    signatures_container,
)
from pki.xmlsig_policy import EXC_C14N

XMLSEC1 = shutil.which("xmlsec1")
ENVELOPE_NS = "urn:th:gov:saraban:envelope:1"


def legacy_sign(raw: bytes, signer: FileSigner, *, xades: bool = True, sign_header: bool = False) -> bytes:
    """The author's signature as stock signxml 5 writes it: XAdES with no Transform on its XAdES references
    (plain XML-DSig names every transform: the same as ``pki.sign``)."""
    root = parse(raw)
    parts = envelope_parts(root)
    refs = [f"#{parts.body.get('Id')}"] + [f"#{a.get('Id')}" for a in parts.attachments]
    if sign_header:
        parts.header.set("Id", "Header")
        refs.insert(0, "#Header")
    cls = XAdESSigner if xades else XMLSigner
    xs = cls(method=SignatureConstructionMethod.detached, signature_algorithm=signer.signature_method,
             c14n_algorithm=EXC_C14N)
    xs.signature_annotators.insert(0, lambda sig_root, signing_settings: sig_root.set("Id", AUTHOR_SIGNATURE_ID))
    signature = xs.sign(root, key=signer.xmldsig_key, cert=[signer.certificate, *signer.chain],
                        reference_uri=refs, always_add_key_value=False)
    signatures_container(parts).append(signature)
    return serialize(root)


def _signature(root: etree._Element, signature_id: str | None) -> etree._Element:
    found = [s for s in root.iter(DS + "Signature") if signature_id is None or s.get("Id") == signature_id]
    assert len(found) == 1, signature_id
    return found[0]


def bare_references(signature: etree._Element) -> list[etree._Element]:
    """The references of ``signature`` that carry no Transforms."""
    return [r for r in signature[0].iterchildren(DS + "Reference") if r.find(DS + "Transforms") is None]


#: Every element a detached reference of ours may name: all bare.
EVERY_PART = (XADES + "SignedProperties", DS + "KeyInfo", DS + "Signature", *SIGNABLE_TAGS)


def xmlsec_sign(raw: bytes, signer: FileSigner, *, signature_id: str | None = AUTHOR_SIGNATURE_ID,
                bare: Sequence[str] = (XADES + "SignedProperties", DS + "KeyInfo")) -> bytes:
    """libxmlsec1 re-signs the signature ``signature_id`` as a template: the references to elements whose
    tag is in ``bare`` (:data:`EVERY_PART`: all) lose their Transforms, every digest and the signature value
    are computed anew. ``signature_id`` None: the document's only signature (an enveloped ``URI=""`` one
    keeps its transforms)."""
    root = parse(raw)
    signature = _signature(root, signature_id)
    index = id_index(root)
    for ref in signature[0].iterchildren(DS + "Reference"):
        uri = ref.get("URI") or ""
        target = index[uri[1:]][0] if uri else None
        transforms = ref.find(DS + "Transforms")
        if target is not None and target.tag in bare and transforms is not None:
            ref.remove(transforms)
        ref.find(DS + "DigestValue").text = ""
    signature.find(DS + "SignatureValue").text = ""
    xmlsec.tree.add_ids(root, ["Id"])
    ctx = xmlsec.SignatureContext()
    pem = signer.xmldsig_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    ctx.key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem)
    ctx.sign(signature)
    return serialize(root)


def resign_signed_info(signature: etree._Element, signer: FileSigner) -> None:
    """Sign SignedInfo (exclusive c14n) again with ``signer``'s key, in place (ECDSA as ``r || s``)."""
    signed_info = etree.tostring(signature[0], method="c14n", exclusive=True, with_comments=False)
    key = signer.xmldsig_key
    algorithm = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[
        signature[0].find(DS + "SignatureMethod").get("Algorithm")[-3:]]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signed_info, ec.ECDSA(algorithm)))
        width = (key.key_size + 7) // 8
        value = r.to_bytes(width, "big") + s.to_bytes(width, "big")
    else:
        value = key.sign(signed_info, padding.PKCS1v15(), algorithm)
    signature.find(DS + "SignatureValue").text = base64.b64encode(value).decode()


def xmlsec1_cli(raw: bytes, signature_id: str, trusted: Sequence[bytes], untrusted: Sequence[bytes],
                tmp: Path) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify`` of the signature ``signature_id`` in ``raw``, the certificates checked against
    ``trusted`` (PEM) through ``untrusted`` (PEM)."""
    assert XMLSEC1 is not None
    doc = tmp / "signed.xml"
    doc.write_bytes(raw)
    args = [XMLSEC1, "--verify", "--node-id", signature_id]
    for i, pem in enumerate(trusted):
        (tmp / f"trusted{i}.pem").write_bytes(pem)
        args += ["--trusted-pem", str(tmp / f"trusted{i}.pem")]
    for i, pem in enumerate(untrusted):
        (tmp / f"untrusted{i}.pem").write_bytes(pem)
        args += ["--untrusted-pem", str(tmp / f"untrusted{i}.pem")]
    for tag in (f"{ENVELOPE_NS}:Header", f"{ENVELOPE_NS}:Letter", f"{ENVELOPE_NS}:Notifier",
                f"{ENVELOPE_NS}:Attachment", "http://www.w3.org/2000/09/xmldsig#:Signature",
                "http://www.w3.org/2000/09/xmldsig#:KeyInfo", "http://uri.etsi.org/01903/v1.3.2#:SignedProperties"):
        args += ["--id-attr:Id", tag]
    return subprocess.run([*args, str(doc)], capture_output=True, text=True, timeout=60, check=False)
