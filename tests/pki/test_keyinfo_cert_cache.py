"""KeyInfo certificates are read once per text as it stands, and the cache cannot be made to hold padding.

:func:`pki.xmlsig_policy.keyinfo_certs` looks each ``X509Certificate`` text up as it stands (line breaks
and all) before the white-space pass; texts longer than ``_MAX_CACHED_TEXT`` are read every time and never
kept, so a sender padding its certificate with white space cannot fill the cache with megabytes a key.
"""

from __future__ import annotations

import base64
import textwrap

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from pki import xmlsig_policy
from pki.errors import SignatureError
from pki.xmlsig_parts import DS
from pki.xmlsig_policy import keyinfo_certs


def _signature(*texts: str) -> etree._Element:
    signature = etree.Element(DS + "Signature")
    data = etree.SubElement(etree.SubElement(signature, DS + "KeyInfo"), DS + "X509Data")
    for text in texts:
        etree.SubElement(data, DS + "X509Certificate").text = text
    return signature


def _b64(signer) -> str:
    return base64.b64encode(signer.certificate.public_bytes(Encoding.DER)).decode()


def test_every_wrapping_reads_the_same_certificate_once(signer1, signer2):
    flat = _b64(signer1)
    wrapped = "\n".join(textwrap.wrap(flat, 64)) + "\n"
    spaced = " \n" + "\n  ".join(textwrap.wrap(flat, 76)) + "\n"
    first = keyinfo_certs(_signature(wrapped, _b64(signer2)))
    assert [c.public_bytes(Encoding.DER) for c in first] == [signer1.certificate.public_bytes(Encoding.DER),
                                                             signer2.certificate.public_bytes(Encoding.DER)]
    hits = xmlsig_policy._cert_of_short_text.cache_info().hits
    again = keyinfo_certs(_signature(wrapped, _b64(signer2)))
    assert xmlsig_policy._cert_of_short_text.cache_info().hits == hits + 2
    # the very objects (the per-certificate caches key on identity), whatever the wrapping
    assert again[0] is first[0] and keyinfo_certs(_signature(spaced))[0] is first[0]
    assert keyinfo_certs(_signature(flat))[0] is first[0]


def test_padded_text_is_read_but_not_kept(signer1):
    padded = _b64(signer1) + " " * (xmlsig_policy._MAX_CACHED_TEXT + 1)
    before = xmlsig_policy._cert_of_short_text.cache_info()
    cert = keyinfo_certs(_signature(padded))[0]
    assert cert.public_bytes(Encoding.DER) == signer1.certificate.public_bytes(Encoding.DER)
    after = xmlsig_policy._cert_of_short_text.cache_info()
    assert (after.currsize, after.misses, after.hits) == (before.currsize, before.misses, before.hits)


@pytest.mark.parametrize("text", ["!!not base64!!", "AAAA", ""])
def test_an_unreadable_certificate_is_refused_every_time(text):
    for _ in range(2):  # a failure is not cached as an answer
        with pytest.raises(SignatureError, match="unreadable certificate|no X.509"):
            keyinfo_certs(_signature(text))
