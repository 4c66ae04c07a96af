"""Trust store: chains, revocation by CRL and OCSP, caching, agency codes; and the dev CA."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys

import pytest
from conftest import AGENCIES, file_signer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocsp_responder import OcspResponder

from gateway.http.errors import status_for
from pki.certfactory import EKU_DOCUMENT_SIGNING, CertFactory, agency_name
from pki.devca import init_dev_pki
from pki.errors import PkiError
from pki.sign import sign_envelope
from pki.trust import AgencyBinding, TrustStore, agency_of, fingerprint, per_certificate
from pki.verify import verify_envelope


async def expect(code: str, trust: TrustStore, cert: x509.Certificate, **kwargs) -> PkiError:
    with pytest.raises(PkiError) as info:
        await trust.validate_signer(cert, **kwargs)
    assert info.value.code == code, repr(info.value)
    return info.value


# --------------------------------------------------------------------------- dev CA


def test_dev_pki_layout_and_extensions(dev_pki):
    manifest = json.loads((dev_pki.directory / "manifest.json").read_text("utf-8"))
    assert set(manifest["agencies"]) == set(AGENCIES)
    root, inter = dev_pki.root_cert, dev_pki.intermediate_cert
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    ku = inter.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    signer = dev_pki.agency_signer("00001").certificate
    assert agency_of(signer) == "00001"
    assert signer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == "GOVTH-00001"
    ku = signer.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert EKU_DOCUMENT_SIGNING in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = signer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    tls = x509.load_pem_x509_certificates(dev_pki.tls_server_cert.read_bytes())[0]
    sans = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in tls.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    client = x509.load_pem_x509_certificates(dev_pki.agencies["00002"].tls_client_cert.read_bytes())[0]
    assert ExtendedKeyUsageOID.CLIENT_AUTH in client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert agency_of(client) == "00002"
    assert (dev_pki.agencies["00001"].signing_key.stat().st_mode & 0o777) == 0o600


def test_dev_pki_is_idempotent(tmp_path):
    first = init_dev_pki(tmp_path, {"00001": "A"})
    again = init_dev_pki(tmp_path, {"00001": "renamed", "00003": "C"})
    assert again.root_cert == first.root_cert
    assert again.agency_signer("00001").certificate == first.agency_signer("00001").certificate
    assert set(again.agencies) == {"00001", "00003"}
    assert again.agencies["00003"].signer().certificate.issuer == first.intermediate_cert.subject
    with pytest.raises(PkiError):
        init_dev_pki(tmp_path / "x", {"123": "bad code"})


# --------------------------------------------------------------------------- chains and usage


async def test_valid_signer_and_path(dev_pki, trust, signer1):
    validated = await trust.validate_signer(signer1.certificate)
    assert validated.agency_code == "00001"
    assert [c.subject for c in validated.path] == [signer1.certificate.subject, dev_pki.intermediate_cert.subject,
                                                   dev_pki.root_cert.subject]
    assert validated.fingerprint == fingerprint(signer1.certificate)


async def test_seal_and_tls_usages(dev_pki, trust):
    assert (await trust.validate_signer(dev_pki.gateway_cert, usage="seal")).agency_code is None
    client = x509.load_pem_x509_certificates(dev_pki.agencies["00001"].tls_client_cert.read_bytes())[0]
    await trust.validate_signer(client, usage="tls-client")
    await expect("certificate.key_usage", trust, client, usage="document-signing")


async def test_cache_respects_ttl_and_validity(dev_pki, factory, signer1):
    now = [factory.now]
    trust = dev_pki.trust_store(ocsp=False, clock=lambda: now[0], ttl=dt.timedelta(minutes=10))
    await trust.validate_signer(signer1.certificate)
    now[0] += dt.timedelta(minutes=9)
    await trust.validate_signer(signer1.certificate)
    assert trust.stats == {"hits": 1, "validations": 1}
    now[0] += dt.timedelta(minutes=2)  # revocation information is stale: validate again
    await trust.validate_signer(signer1.certificate)
    assert trust.stats["validations"] == 2
    short = factory.agency_signing("00001", "A", not_after=factory.now + dt.timedelta(minutes=30))
    now[0] = factory.now
    validated = await trust.validate_signer(short.cert)
    assert validated.valid_until <= short.cert.not_valid_after_utc
    now[0] = factory.now + dt.timedelta(hours=1)  # the cached success must not outlive the certificate
    await expect("certificate.expired", trust, short.cert)


async def test_concurrent_validations_share_one_computation(trust, signer1):
    results = await asyncio.gather(*(trust.validate_signer(signer1.certificate) for _ in range(5)))
    assert len({id(r) for r in results}) == 1 and trust.stats["validations"] == 1


async def test_point_in_time_validation(factory):
    past = factory.now - dt.timedelta(days=100)
    inter = CertFactory.new_root(now=past).intermediate()
    old = inter.agency_signing("00001", "A", not_before=past, not_after=past + dt.timedelta(days=70))
    trust = TrustStore([x509.load_pem_x509_certificate(inter_root_pem(inter))], [inter.ca.cert], ocsp=False)
    await expect("certificate.expired", trust, old.cert)
    validated = await trust.validate_signer(old.cert, at=past + dt.timedelta(days=10))
    assert validated.checked_at == past + dt.timedelta(days=10)
    await expect("certificate.not_yet_valid", trust, old.cert, at=past - dt.timedelta(days=10))


def inter_root_pem(inter) -> bytes:
    """The root above a factory's intermediate (new_root keeps it as the intermediate's issuer factory)."""
    return inter.root.ca.cert_pem


# --------------------------------------------------------------------------- revocation


async def test_revoked_by_crl(dev_pki, factory):
    crl_factory = dev_pki.issuing_factory(crl_url="http://127.0.0.1:9/intermediate.crl")
    revoked = crl_factory.agency_signing("00001", "A")
    good = crl_factory.agency_signing("00001", "A")
    crl = crl_factory.crl([revoked.cert])
    trust = dev_pki.trust_store(ocsp=False, crls=[crl], revocation="hard-fail")
    await expect("certificate.revoked", trust, revoked.cert)
    assert (await trust.validate_signer(good.cert)).agency_code == "00001"
    # without the CRL, hard-fail refuses a certificate whose declared CRL cannot be had ...
    no_crl = dev_pki.trust_store(ocsp=False, revocation="hard-fail")
    await expect("certificate.revocation_unknown", no_crl, good.cert)
    # ... soft-fail tolerates it and says so
    soft = await dev_pki.trust_store(ocsp=False, revocation="soft-fail").validate_signer(good.cert)
    assert soft.agency_code == "00001"
    # a PEM CRL file as written by the dev CA is accepted as well
    pem = crl.public_bytes(serialization.Encoding.PEM)
    await expect("certificate.revoked", dev_pki.trust_store(ocsp=False, crls=[pem]), revoked.cert)


@pytest.fixture
async def ocsp_responder(dev_pki):
    responder = OcspResponder(dev_pki.issuing_factory())
    await responder.start()
    yield responder
    await responder.stop()


async def test_revoked_by_ocsp(dev_pki, ocsp_responder, letter):
    issuing = dev_pki.issuing_factory(ocsp_url=ocsp_responder.url)
    revoked = issuing.agency_signing("00001", "A")
    good = issuing.agency_signing("00001", "A")
    unknown_to_responder = issuing.agency_signing("00001", "A")
    ocsp_responder.register(revoked.cert, revoked=True)
    ocsp_responder.register(good.cert)
    aia = revoked.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == ocsp_responder.url
    # the development CAs name no URL of their own: the responder's host is allowed explicitly
    allow = ["127.0.0.1"]
    trust = dev_pki.trust_store(ocsp=True, revocation="hard-fail", fetch_allow=allow)
    signed = sign_envelope(letter, file_signer(revoked, dev_pki))
    with pytest.raises(PkiError) as info:
        await verify_envelope(signed, trust, sender="00001")
    assert info.value.code == "certificate.revoked"
    assert ocsp_responder.requests >= 1
    assert (await trust.validate_signer(good.cert)).soft_failures == ()
    await expect("certificate.revocation_unknown", trust, unknown_to_responder.cert)
    # the responder is gone: hard-fail refuses, soft-fail accepts with a note
    await ocsp_responder.stop()
    await expect("certificate.revocation_unknown", dev_pki.trust_store(ocsp=True, revocation="hard-fail",
                                                                       fetch_allow=allow), good.cert)
    soft = await dev_pki.trust_store(ocsp=True, revocation="soft-fail", fetch_allow=allow).validate_signer(good.cert)
    assert soft.soft_failures and soft.revocation == "unknown"


# --------------------------------------------------------------------------- agency binding


def test_agency_binding(signer1, signer2):
    binding = AgencyBinding()
    assert binding.check(signer1.certificate, "00001") == "00001"
    with pytest.raises(PkiError) as info:
        binding.check(signer2.certificate, "00001")
    assert info.value.code == "certificate.wrong_agency" and status_for(info.value.code) == 403
    pinned = AgencyBinding.from_directory({"00001": [fingerprint(signer1.certificate).upper()]}, require_pins=True)
    assert pinned.check(signer1.certificate, "00001") == "00001"
    with pytest.raises(PkiError):
        pinned.check(signer2.certificate, "00002")  # no pin registered for 00002


def test_agency_of_needs_a_well_formed_code(factory):
    assert agency_of(factory.issue(agency_name("1500100001", "อำเภอ")).cert) == "1500100001"
    odd = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "GOVTH-12"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    assert agency_of(factory.issue(odd).cert) is None


def test_per_certificate_memo_is_by_object_and_never_stale(factory):
    """The identity memo (instead of lru_cache, whose key is the certificate's costly __hash__) gives each
    certificate its own answer: distinct certificates never share an entry, a re-parsed copy of the same DER
    gets the same answer, and eviction (a tiny cache here) changes no answer."""
    calls = []

    @per_certificate(maxsize=2)
    def digest(cert, algorithm):
        calls.append(cert)
        return cert.fingerprint(algorithm())

    certs = [factory.agency_signing(f"0000{i}", f"agency {i}").cert for i in range(1, 5)]
    for _ in range(3):  # rotating through more certificates than the cache holds
        for cert in certs:
            assert digest(cert, hashes.SHA256) == cert.fingerprint(hashes.SHA256())
            assert digest(cert, hashes.SHA384) == cert.fingerprint(hashes.SHA384())
    assert digest(certs[3], hashes.SHA384) and calls[-1] is certs[3]  # the last entry is still cached
    before = len(calls)
    assert digest(certs[3], hashes.SHA384) == certs[3].fingerprint(hashes.SHA384()) and len(calls) == before
    copy = x509.load_der_x509_certificate(certs[0].public_bytes(Encoding.DER))
    assert digest(copy, hashes.SHA256) == digest(certs[0], hashes.SHA256)
    # the module's own memos: fingerprint and agency code follow the certificate, not a previous one
    assert [fingerprint(c) for c in certs] == [c.fingerprint(hashes.SHA256()).hex() for c in certs]
    assert [agency_of(c) for c in certs] == ["00001", "00002", "00003", "00004"]


def test_per_certificate_memo_holds_its_certificates(factory):
    """An entry keeps its certificate alive, so a freed certificate's id() cannot be reused by a new one
    while the entry could still answer for it."""
    @per_certificate(maxsize=8)
    def subject(cert):
        return cert.subject.rfc4514_string()

    cert = factory.agency_signing("00001", "short-lived").cert
    alone = sys.getrefcount(cert)
    assert "short-lived" in subject(cert)
    assert sys.getrefcount(cert) > alone
    subject.cache_clear()
    assert sys.getrefcount(cert) == alone


def test_per_certificate_memo_tells_calls_of_each_arity_apart(factory):
    """One, two and more arguments are keyed three ways (an id, a pair, a tuple): a variadic function
    gets the answer of its own arguments, in their order, whatever it was called with before."""
    @per_certificate(maxsize=8)
    def names(*certs):
        return tuple(c.subject.rfc4514_string() for c in certs)

    a, b, c = (factory.agency_signing(f"0000{i}", f"arity {i}").cert for i in range(1, 4))
    for _ in range(2):
        assert names(a) == (a.subject.rfc4514_string(),)
        assert names(a, b) == (a.subject.rfc4514_string(), b.subject.rfc4514_string())
        assert names(b, a) == (b.subject.rfc4514_string(), a.subject.rfc4514_string())
        assert names(a, b, c) == tuple(x.subject.rfc4514_string() for x in (a, b, c))
        assert names() == ()
