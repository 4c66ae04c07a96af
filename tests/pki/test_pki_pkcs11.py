"""PKCS#11 signer against SoftHSM2: a token initialised in a temporary SOFTHSM2_CONF, an EC key generated in it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from pki.certfactory import agency_name
from pki.errors import KeyUnavailable
from pki.keys import Pkcs11Signer, Signer
from pki.seal import seal_envelope, verify_sealed
from pki.sign import sign_envelope
from pki.verify import verify_envelope

SOFTHSM_LIBS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/local/lib/softhsm/libsofthsm2.so")
LIB = next((p for p in SOFTHSM_LIBS if Path(p).exists()), None)

pytestmark = pytest.mark.skipif(LIB is None or shutil.which("softhsm2-util") is None,
                                reason="softhsm2 is not installed (apt-get install softhsm2; `make test` does)")


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    """A fresh SoftHSM2 token with an EC P-256 key pair labelled 'seal'; returns the public key."""
    # python-pkcs11 is optional (the hsm extra): imported here, after the module's skip for a missing SoftHSM2

    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "saraban-test", "--so-pin", "5678",
                    "--pin", "1234"], check=True, capture_output=True)
    lib = pkcs11.lib(LIB)
    with lib.get_token(token_label="saraban-test").open(user_pin="1234", rw=True) as session:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        public, _ = params.generate_keypair(store=True, label="seal")
        public_der = encode_ec_public_key(public)
    yield load_der_public_key(public_der)
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


async def test_pkcs11_signer_signs_envelopes_and_receipts(token, dev_pki, factory, letter):
    cert = factory.issue(agency_name("00001", "HSM agency"), public_key=token).cert
    signer = Pkcs11Signer(LIB, "saraban-test", "seal", "1234", cert, [dev_pki.intermediate_cert])
    try:
        assert isinstance(signer, Signer) and signer.key_algorithm == "ecdsa-p256"
        raw = signer.sign(b"data")
        assert len(raw) == 64  # r || s, the XML-DSig form
        trust = dev_pki.trust_store(ocsp=False)
        for xades in (False, True):
            signed = sign_envelope(letter, signer, xades=xades)  # signxml signs through ExternalKey
            verified = await verify_envelope(signed, trust, sender="00001")
            assert verified.signer == cert and verified.report.ok
        sealed = seal_envelope(sign_envelope(letter, dev_pki.agency_signer("00001")), signer)
        result = await verify_sealed(sealed, trust, gateway_cert=cert)
        assert result.seal_ok
    finally:
        signer.close()


def test_pkcs11_wrong_pin_is_a_clear_error(token, factory):
    cert = factory.issue(agency_name("00001", "HSM agency"), public_key=token).cert
    with pytest.raises(KeyUnavailable) as info:
        Pkcs11Signer(LIB, "saraban-test", "seal", "0000", cert)
    assert info.value.code == "key.unavailable" and "saraban-test" in info.value.message
