"""The signature zone is checked once per submitted letter: intake checks it (no seal allowed yet,
the stricter form) and the gateway's verifier, handed that very tree, does not walk it again. So is
the signature's schema: intake's envelope XSD, not signxml's schemas again."""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from gateway.core import xml
from gateway.core.directory import Directory
from gateway.core.errors import EnvelopeError
from gateway.core.settings import Settings
from gateway.core.signing import build_trust
from gateway.intake import checks
from pki import sigzone, verify, xmlsig_inplace
from pki.devca import init_dev_pki
from pki.errors import PkiError
from pki.seal import seal_envelope
from pki.sign import sign_envelope
from tests.support import OPM, directory_dict, letter_bytes


@pytest.fixture
def gateway(tmp_path):
    dev = init_dev_pki(tmp_path / "pki", {OPM: "สำนักนายกรัฐมนตรี"})
    settings = Settings.from_env({"GATEWAY_PKI_DIR": str(tmp_path / "pki"), "GATEWAY_DATA_DIR": str(tmp_path),
                                  "GATEWAY_REVOCATION": "off", "GATEWAY_REQUIRE_SIGNATURE": "true"})
    directory = Directory.from_dict(directory_dict())
    trust = build_trust(settings, directory)
    return dev, checks.Intake(directory, max_bytes=1 << 20, verifier=trust.verifier(settings))


async def test_intake_walks_the_signature_zone_once(gateway, monkeypatch):
    dev, intake = gateway
    calls: list[bool] = []

    def counting(root, *, seal=True):
        calls.append(seal)
        return sigzone.check_signature_zone(root, seal=seal)

    monkeypatch.setattr(checks, "check_signature_zone", counting)
    monkeypatch.setattr(verify, "check_signature_zone", counting)
    checked = await intake.check(sign_envelope(letter_bytes(), dev.agency_signer(OPM)), agency=OPM)
    assert checked.facts["signed"] is True and checked.facts["signature_intact"] is True
    assert calls == [False]  # intake's check, where no seal may be yet; the verifier trusts it


async def test_a_zone_intake_refuses_never_reaches_the_verifier(gateway):
    """Skipping the verifier's walk loses nothing: intake's (seal=False) refuses all it would, and more."""
    dev, intake = gateway
    sealed = seal_envelope(sign_envelope(letter_bytes(), dev.agency_signer(OPM)), dev.seal_signer())
    with pytest.raises((EnvelopeError, PkiError)) as info:
        await intake.check(sealed, agency=OPM)
    assert (info.value.code, info.value.field) == ("signature.sealed", "Signatures/Signature[2]")


async def test_intake_schema_checks_the_signature_once(gateway, monkeypatch):
    """The envelope XSD (intake) validates the author's signature; signxml's schemas, which it implies
    (tests/pki/test_signature_schema_implied.py), are not run on it again. Outside intake they still are."""
    dev, intake = gateway
    calls: list[bool] = []
    real = xmlsig_inplace._schema_valid

    def counting(signature, xades):
        calls.append(xades)
        return real(signature, xades)

    monkeypatch.setattr(xmlsig_inplace, "_schema_valid", counting)
    signed = sign_envelope(letter_bytes(), dev.agency_signer(OPM))
    checked = await intake.check(signed, agency=OPM)
    assert checked.facts["signed"] is True and checked.facts["signature_intact"] is True
    assert calls == []
    await verify.verify_envelope(signed, dev.trust_store(ocsp=False), sender=OPM)  # bytes alone: checked here
    assert calls == [True]


async def test_intake_reads_header_texts_as_findtext_does(gateway):
    two = etree.fromstring(letter_bytes())
    header = two.find(f"{{{xml.ENVELOPE_NS}}}Header")
    header.addnext(copy.deepcopy(header))
    empty = etree.fromstring(letter_bytes())
    empty.find(f"{{{xml.ENVELOPE_NS}}}Header/{{{xml.ENVELOPE_NS}}}Sender").text = None
    bare = etree.fromstring(letter_bytes())
    bare.remove(bare.find(f"{{{xml.ENVELOPE_NS}}}Header"))
    for root in (etree.fromstring(letter_bytes()), two, empty, bare):
        for name in ("Sender", "MessageId", "Nothing"):
            tag = f"{{{xml.ENVELOPE_NS}}}{name}"
            assert checks._header_text(root, tag) == root.findtext(f"{{{xml.ENVELOPE_NS}}}Header/{tag}")
