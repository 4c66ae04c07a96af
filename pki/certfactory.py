"""Minting certificates: a CA's :class:`CertFactory`, with strict profiles that tests can bend.

:mod:`pki.devca` builds the development PKI with it; tests use it directly to mint odd
certificates (expired, wrong key usage, RSA-1024, SHA-1, revoked, OCSP responder ...).
Never use it outside development and tests: keys are written unencrypted.

Agency binding in the subject: a document-signing certificate of an agency
carries ``organizationIdentifier`` (OID 2.5.4.97) = ``GOVTH-<agency code>``,
e.g. ``GOVTH-00001`` — the ETSI EN 319 412-1 style "<3-letter scheme><2-letter
country>-<identifier>" with the scheme "GOV". :func:`pki.trust.agency_of` reads
it back. ``O`` holds the agency's name (Thai allowed, UTF8String), ``C`` is TH.

Extensions are strict: basicConstraints critical everywhere (CA true with a
pathlen for CAs), keyUsage critical (keyCertSign+cRLSign for CAs,
digitalSignature+nonRepudiation for signers, digitalSignature(+keyEncipherment
for RSA) for TLS), SKI and AKI, extendedKeyUsage documentSigning
(1.3.6.1.5.5.7.3.36) + emailProtection for signers, serverAuth / clientAuth for
TLS, OCSPSigning + id-pkix-ocsp-nocheck for an OCSP responder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pki.keys import PrivateKey, PublicKey

__all__ = [
    "AGENCY_ID_PREFIX", "EKU_DOCUMENT_SIGNING", "CertFactory", "Issued", "agency_name", "simple_name",
    "new_key",
]

#: Prefix of the organizationIdentifier value that carries the agency code.
AGENCY_ID_PREFIX = "GOVTH-"
#: id-kp-documentSigning (RFC 9336).
EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

KeyType = Literal["ec-p256", "ec-p384", "rsa-1024", "rsa-2048", "rsa-3072"]
Profile = Literal["ca", "document-signing", "seal", "tls-server", "tls-client", "ocsp", "custom"]
#: Hashes a certificate may be signed with (SHA-1 only to prove that it is refused).
CertHash = hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key(key_type: KeyType = "ec-p256") -> PrivateKey:
    """A fresh private key of the given type."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"unknown key type {key_type}")


def agency_name(code: str, name: str, *, purpose: str = "document signing") -> x509.Name:
    """Subject of an agency certificate: C=TH, O=<name>, organizationIdentifier=GOVTH-<code>, CN."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TH"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"{AGENCY_ID_PREFIX}{code}"),
        x509.NameAttribute(NameOID.COMMON_NAME, _fit(f"{code} {purpose} {name}", 64)),
    ])


def _fit(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes (cryptography counts bytes; Thai takes 3 each)."""
    while len(text.encode()) > limit:
        text = text[:-1]
    return text.rstrip()


def simple_name(cn: str, org: str = "Saraban Gateway Development PKI") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TH"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key (``None`` when the key lives elsewhere, e.g. in an HSM)."""

    cert: x509.Certificate
    key: PrivateKey | None = None

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        if self.key is None:
            raise ValueError(f"no private key for {self.cert.subject.rfc4514_string()} (it lives elsewhere)")
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, cert_path: Path, key_path: Path | None = None,
              chain: Sequence[x509.Certificate] = ()) -> None:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(self.cert_pem
                              + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        if key_path is not None and self.key is not None:
            _write_private(key_path, self.key_pem)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class CertFactory:
    """Issues certificates under one CA certificate and key.

    The default profile values give well-formed certificates; every argument of
    :meth:`issue` can be bent to produce a deliberately broken one for a test.
    """

    def __init__(self, ca: Issued, *, now: dt.datetime | None = None, ocsp_url: str | None = None,
                 crl_url: str | None = None) -> None:
        if ca.key is None:
            raise ValueError("a CertFactory signs with its CA's private key, and this CA has none here")
        self.ca = ca
        self._ca_key: PrivateKey = ca.key
        self.now = now or _utcnow()
        self.ocsp_url = ocsp_url
        self.crl_url = crl_url
        #: The factory of the root above this CA, when this factory made the chain (None for a root).
        self.root: CertFactory | None = None

    # --- CAs ---------------------------------------------------------------------------------

    @classmethod
    def new_root(cls, common_name: str = "Saraban Dev Root CA", *, now: dt.datetime | None = None,
                 key_type: KeyType = "ec-p256", years: int = 20, org: str = "Saraban Gateway Development PKI",
                 ) -> CertFactory:
        now = now or _utcnow()
        key = new_key(key_type)
        name = simple_name(common_name, org)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(Issued(cert, key), now=now)

    def intermediate(self, common_name: str = "Saraban Dev Issuing CA", *, key_type: KeyType = "ec-p256",
                     years: int = 10, path_length: int = 0, ocsp_url: str | None = None,
                     crl_url: str | None = None) -> CertFactory:
        """Issue a subordinate CA and return a factory for it."""
        issued = self.issue(simple_name(common_name, self._org()), profile="ca", key_type=key_type,
                            days=365 * years, path_length=path_length)
        sub = CertFactory(issued, now=self.now, ocsp_url=ocsp_url, crl_url=crl_url)
        sub.root = self.root if self.root is not None else self
        return sub

    def _org(self) -> str:
        orgs = self.ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(orgs[0].value) if orgs else "Saraban Gateway Development PKI"

    # --- end entities ------------------------------------------------------------------------

    def issue(
        self,
        subject: x509.Name,
        *,
        profile: Profile = "document-signing",
        key_type: KeyType = "ec-p256",
        public_key: PublicKey | None = None,
        days: int = 730,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        hash_algorithm: CertHash | None = None,
        key_usage: x509.KeyUsage | None = None,
        extended_key_usage: Sequence[ObjectIdentifier] | None = None,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
        path_length: int | None = 0,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        serial: int | None = None,
    ) -> Issued:
        """Issue one certificate. ``public_key`` given: no private key is generated (HSM keys)."""
        key = None
        if public_key is None:
            key = new_key(key_type)
            public_key = key.public_key()
        not_before = not_before or (self.now - dt.timedelta(minutes=5))
        not_after = not_after or (self.now + dt.timedelta(days=days))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.ca.cert.subject)
            .public_key(public_key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                           critical=False)
        )
        is_ca = profile == "ca"
        builder = builder.add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None), critical=True)
        if key_usage is None:
            key_usage = _profile_key_usage(profile, public_key)
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        if extended_key_usage is None:
            extended_key_usage = _PROFILE_EKU.get(profile, ())
        if extended_key_usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        ocsp_url = ocsp_url or (self.ocsp_url if not is_ca and profile != "ocsp" else None)
        if ocsp_url:
            builder = builder.add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
        crl_url = crl_url or (self.crl_url if profile != "ocsp" else None)
        if crl_url and not is_ca:
            builder = builder.add_extension(x509.CRLDistributionPoints([
                x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]),
                critical=False)
        if profile == "ocsp":
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        if isinstance(hash_algorithm, hashes.SHA1):
            # cryptography refuses to sign certificates with SHA-1; tests need one to prove it is refused.
            cert = _resign_sha1(builder.sign(self._ca_key, hashes.SHA256()), self._ca_key)
        else:
            cert = builder.sign(self._ca_key, hash_algorithm or hashes.SHA256())
        return Issued(cert, key)

    def agency_signing(self, code: str, name: str, **kwargs: Any) -> Issued:
        """Document-signing certificate of an agency (ECDSA P-256 unless ``key_type`` says otherwise)."""
        return self.issue(agency_name(code, name), profile="document-signing", **kwargs)

    def crl(self, revoked: Iterable[x509.Certificate | int] = (), *, days: int = 7,
            last_update: dt.datetime | None = None) -> x509.CertificateRevocationList:
        """A CRL of this CA listing ``revoked`` (certificates or serial numbers)."""
        last_update = last_update or (self.now - dt.timedelta(minutes=5))
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.cert.subject)
            .last_update(last_update)
            .next_update(last_update + dt.timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                           critical=False)
            .add_extension(x509.CRLNumber(int(last_update.timestamp())), critical=False)
        )
        for item in revoked:
            serial = item.serial_number if isinstance(item, x509.Certificate) else int(item)
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(last_update - dt.timedelta(minutes=1)).build())
        return builder.sign(self._ca_key, hashes.SHA256())


def _resign_sha1(cert: x509.Certificate, ca_key: PrivateKey) -> x509.Certificate:
    """Re-sign ``cert``'s TBS with SHA-1 (ecdsa-with-SHA1 / sha1WithRSAEncryption), via asn1crypto."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    algorithm = {"algorithm": "sha1_ecdsa" if isinstance(ca_key, ec.EllipticCurvePrivateKey) else "sha1_rsa"}
    tbs = parsed["tbs_certificate"]
    tbs["signature"] = algorithm
    tbs_der = tbs.dump(force=True)
    if isinstance(ca_key, ec.EllipticCurvePrivateKey):
        signature = ca_key.sign(tbs_der, ec.ECDSA(hashes.SHA1()))
    else:
        signature = ca_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA1())
    resigned = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm,
                                      "signature_value": signature})
    return x509.load_der_x509_certificate(resigned.dump(force=True))


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False,
               key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=content_commitment,
                         key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)


def _profile_key_usage(profile: Profile, public_key: PublicKey) -> x509.KeyUsage | None:
    if profile == "ca":
        return _ca_key_usage()
    if profile in ("document-signing", "seal"):
        return _key_usage(digital_signature=True, content_commitment=True)
    if profile in ("tls-server", "tls-client"):
        return _key_usage(digital_signature=True, key_encipherment=isinstance(public_key, rsa.RSAPublicKey))
    if profile == "ocsp":
        return _key_usage(digital_signature=True)
    return None


_PROFILE_EKU: dict[str, tuple[ObjectIdentifier, ...]] = {
    "document-signing": (EKU_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION),
    "seal": (EKU_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION),
    "tls-server": (ExtendedKeyUsageOID.SERVER_AUTH,),
    "tls-client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
    "ocsp": (ExtendedKeyUsageOID.OCSP_SIGNING,),
}

