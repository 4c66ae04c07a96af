"""Development PKI: a root CA, an intermediate, and every certificate the gateway needs.

``gateway pki init-dev`` calls :func:`init_dev_pki`; tests call it too (into a
temporary directory) and use :class:`CertFactory` to mint odd certificates
(expired, wrong key usage, RSA-1024, SHA-1, revoked, OCSP responder ...).
Never use this PKI outside development: keys are written unencrypted.

Layout written under ``directory``::

    manifest.json                    what is where (paths relative to directory)
    ca/root.pem, ca/root.key         root CA (self-signed, pathlen 1)
    ca/intermediate.pem, .key        intermediate CA (pathlen 0), issues everything else
    ca/intermediate.crl.pem          an empty CRL of the intermediate
    trust/anchors.pem                what a verifier trusts (the root)
    trust/intermediates.pem          the intermediate, for path building
    agencies/<code>/signing.pem|key  document-signing certificate of an agency
    agencies/<code>/tls-client.pem|key  mutual-TLS client certificate of an agency
    gateway/seal.pem|key             the gateway's seal (and receipt) certificate
    gateway/tls-server.pem|key       the gateway's TLS server certificate

End-entity ``.pem`` files hold the certificate followed by the intermediate,
so ``FileSigner.from_pem(key, pem)`` picks up the chain by itself.

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
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pki.errors import PkiError
from pki.keys import FileSigner

__all__ = [
    "AGENCY_ID_PREFIX", "EKU_DOCUMENT_SIGNING", "CertFactory", "Issued", "DevPki", "AgencyCredentials",
    "init_dev_pki", "agency_name",
]

#: Prefix of the organizationIdentifier value that carries the agency code.
AGENCY_ID_PREFIX = "GOVTH-"
#: id-kp-documentSigning (RFC 9336).
EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

KeyType = Literal["ec-p256", "ec-p384", "rsa-1024", "rsa-2048", "rsa-3072"]
Profile = Literal["ca", "document-signing", "seal", "tls-server", "tls-client", "ocsp", "custom"]

_MANIFEST_VERSION = 1


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key(key_type: KeyType = "ec-p256") -> Any:
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


def _simple_name(cn: str, org: str = "Saraban Gateway Development PKI") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TH"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key (``None`` when the key lives elsewhere, e.g. in an HSM)."""

    cert: x509.Certificate
    key: Any = None

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, cert_path: Path, key_path: Path | None = None, chain: Sequence[x509.Certificate] = ()) -> None:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(self.cert_pem + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
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
        self.ca = ca
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
        name = _simple_name(common_name, org)
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
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(Issued(cert, key), now=now)

    def intermediate(self, common_name: str = "Saraban Dev Issuing CA", *, key_type: KeyType = "ec-p256",
                     years: int = 10, path_length: int = 0, ocsp_url: str | None = None,
                     crl_url: str | None = None) -> CertFactory:
        """Issue a subordinate CA and return a factory for it."""
        issued = self.issue(_simple_name(common_name, self._org()), profile="ca", key_type=key_type,
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
        public_key: Any = None,
        days: int = 730,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        hash_algorithm: hashes.HashAlgorithm | None = None,
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
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.cert.public_key()),
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
            cert = _resign_sha1(builder.sign(self.ca.key, hashes.SHA256()), self.ca.key)
        else:
            cert = builder.sign(self.ca.key, hash_algorithm or hashes.SHA256())
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
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.cert.public_key()),
                           critical=False)
            .add_extension(x509.CRLNumber(int(last_update.timestamp())), critical=False)
        )
        for item in revoked:
            serial = item.serial_number if isinstance(item, x509.Certificate) else int(item)
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(last_update - dt.timedelta(minutes=1)).build())
        return builder.sign(self.ca.key, hashes.SHA256())


def _resign_sha1(cert: x509.Certificate, ca_key: Any) -> x509.Certificate:
    """Re-sign ``cert``'s TBS with SHA-1 (ecdsa-with-SHA1 / sha1WithRSAEncryption), via asn1crypto."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.asymmetric import padding

    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    is_ec = isinstance(ca_key, ec.EllipticCurvePrivateKey)
    algorithm = {"algorithm": "sha1_ecdsa" if is_ec else "sha1_rsa"}
    tbs = parsed["tbs_certificate"]
    tbs["signature"] = algorithm
    tbs_der = tbs.dump(force=True)
    if is_ec:
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


def _profile_key_usage(profile: Profile, public_key: Any) -> x509.KeyUsage | None:
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


# --- the development PKI ---------------------------------------------------------------------


@dataclass(frozen=True)
class AgencyCredentials:
    """Paths of one agency's certificates and keys."""

    code: str
    #: Agency name as given (Thai and/or English).
    name: str
    signing_cert: Path
    signing_key: Path
    tls_client_cert: Path
    tls_client_key: Path

    def signer(self) -> FileSigner:
        """Load the document-signing key (once; keep the result)."""
        return FileSigner.from_pem(self.signing_key, self.signing_cert)


@dataclass(frozen=True)
class DevPki:
    """A loaded development PKI (see the module docstring for the file layout)."""

    directory: Path
    root_cert: x509.Certificate
    intermediate_cert: x509.Certificate
    agencies: dict[str, AgencyCredentials]
    seal_cert: Path
    seal_key: Path
    tls_server_cert: Path
    tls_server_key: Path
    #: Path of the intermediate's (empty) CRL.
    crl: Path
    anchors: Path
    intermediates: Path
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    def agency_signer(self, code: str) -> FileSigner:
        return self.agencies[code].signer()

    def seal_signer(self) -> FileSigner:
        return FileSigner.from_pem(self.seal_key, self.seal_cert)

    @property
    def gateway_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.seal_cert.read_bytes())[0]

    def issuing_factory(self, *, now: dt.datetime | None = None, ocsp_url: str | None = None,
                        crl_url: str | None = None) -> CertFactory:
        """A :class:`CertFactory` over the intermediate CA (to mint test certificates)."""
        key = serialization.load_pem_private_key((self.directory / self.manifest["intermediate"]["key"]).read_bytes(),
                                                 password=None)
        return CertFactory(Issued(self.intermediate_cert, key), now=now, ocsp_url=ocsp_url, crl_url=crl_url)

    def trust_store(self, **kwargs: Any):
        """A :class:`pki.trust.TrustStore` anchored at this PKI's root."""
        from pki.trust import TrustStore

        return TrustStore([self.root_cert], [self.intermediate_cert], **kwargs)


def init_dev_pki(directory: Path, agencies: dict[str, str], *,
                 gateway_hosts: Sequence[str] = ("127.0.0.1", "localhost"),
                 now: dt.datetime | None = None) -> DevPki:
    """Create (or load, if ``manifest.json`` exists) the development PKI in ``directory``.

    Idempotent: an existing PKI is loaded, never regenerated; agencies missing
    from it are added (issued by the existing intermediate), the others kept.
    ``agencies`` maps agency code -> name (Thai or English).
    """
    directory = Path(directory)
    for code in agencies:
        if not (code.isdigit() and len(code) in (5, 10)):
            raise PkiError(f"agency code {code!r} must be 5 or 10 digits", code="pki.config", field=code)
    # Gateway processes starting side by side (``--workers``, or several ``gateway serve`` on
    # one data directory) all get here on first start: one creates the PKI, the others wait
    # and load it, instead of writing two roots over each other.
    directory.mkdir(parents=True, exist_ok=True)
    try:
        lock = open(directory / ".init.lock", "a")
    except OSError:  # a read-only PKI directory: it can only be loaded, so there is nothing to race
        return _init_dev_pki(directory, agencies, gateway_hosts=gateway_hosts, now=now)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _init_dev_pki(directory, agencies, gateway_hosts=gateway_hosts, now=now)


def _init_dev_pki(directory: Path, agencies: dict[str, str], *, gateway_hosts: Sequence[str],
                  now: dt.datetime | None) -> DevPki:
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text("utf-8"))
        if manifest.get("version") != _MANIFEST_VERSION:
            raise PkiError(f"{manifest_path}: unsupported manifest version", code="pki.config")
        missing = {c: n for c, n in agencies.items() if c not in manifest["agencies"]}
        if missing:
            factory = _load_factory(directory, manifest, now)
            for code, name in missing.items():
                manifest["agencies"][code] = _issue_agency(directory, factory, code, name)
            _write_manifest(manifest_path, manifest)
        return _load(directory, manifest)

    directory.mkdir(parents=True, exist_ok=True)
    root = CertFactory.new_root(now=now)
    inter = root.intermediate()
    root.ca.write(directory / "ca/root.pem", directory / "ca/root.key")
    inter.ca.write(directory / "ca/intermediate.pem", directory / "ca/intermediate.key")
    (directory / "trust").mkdir(exist_ok=True)
    (directory / "trust/anchors.pem").write_bytes(root.ca.cert_pem)
    (directory / "trust/intermediates.pem").write_bytes(inter.ca.cert_pem)
    (directory / "ca/intermediate.crl.pem").write_bytes(inter.crl().public_bytes(serialization.Encoding.PEM))
    chain = [inter.ca.cert]

    seal = inter.issue(_simple_name("Saraban Gateway Seal", "Saraban Gateway"), profile="seal")
    seal.write(directory / "gateway/seal.pem", directory / "gateway/seal.key", chain)
    hosts = list(gateway_hosts)
    ips = [h for h in hosts if _is_ip(h)]
    names = [h for h in hosts if not _is_ip(h)]
    tls = inter.issue(_simple_name(names[0] if names else ips[0], "Saraban Gateway"), profile="tls-server",
                      dns_names=names, ip_addresses=ips, days=397)
    tls.write(directory / "gateway/tls-server.pem", directory / "gateway/tls-server.key", chain)

    manifest: dict[str, Any] = {
        "version": _MANIFEST_VERSION,
        "created_at": (now or _utcnow()).isoformat(),
        "agency_id_attribute": f"organizationIdentifier (2.5.4.97) = {AGENCY_ID_PREFIX}<code>",
        "root": {"cert": "ca/root.pem", "key": "ca/root.key"},
        "intermediate": {"cert": "ca/intermediate.pem", "key": "ca/intermediate.key",
                         "crl": "ca/intermediate.crl.pem"},
        "trust": {"anchors": "trust/anchors.pem", "intermediates": "trust/intermediates.pem"},
        "gateway": {"seal": {"cert": "gateway/seal.pem", "key": "gateway/seal.key"},
                    "tls_server": {"cert": "gateway/tls-server.pem", "key": "gateway/tls-server.key",
                                   "hosts": hosts}},
        "agencies": {},
    }
    for code, name in agencies.items():
        manifest["agencies"][code] = _issue_agency(directory, inter, code, name)
    _write_manifest(manifest_path, manifest)
    return _load(directory, manifest)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _issue_agency(directory: Path, factory: CertFactory, code: str, name: str) -> dict[str, Any]:
    chain = [factory.ca.cert]
    base = f"agencies/{code}"
    factory.agency_signing(code, name).write(directory / f"{base}/signing.pem", directory / f"{base}/signing.key",
                                             chain)
    factory.issue(agency_name(code, name, purpose="TLS client"), profile="tls-client", days=397).write(
        directory / f"{base}/tls-client.pem", directory / f"{base}/tls-client.key", chain)
    return {"name": name,
            "signing": {"cert": f"{base}/signing.pem", "key": f"{base}/signing.key"},
            "tls_client": {"cert": f"{base}/tls-client.pem", "key": f"{base}/tls-client.key"}}


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
    tmp.replace(path)


def _load_factory(directory: Path, manifest: dict[str, Any], now: dt.datetime | None) -> CertFactory:
    cert = x509.load_pem_x509_certificate((directory / manifest["intermediate"]["cert"]).read_bytes())
    key = serialization.load_pem_private_key((directory / manifest["intermediate"]["key"]).read_bytes(), None)
    return CertFactory(Issued(cert, key), now=now)


def _load(directory: Path, manifest: dict[str, Any]) -> DevPki:
    def p(rel: str) -> Path:
        return directory / rel

    agencies = {
        code: AgencyCredentials(code=code, name=a["name"], signing_cert=p(a["signing"]["cert"]),
                                signing_key=p(a["signing"]["key"]), tls_client_cert=p(a["tls_client"]["cert"]),
                                tls_client_key=p(a["tls_client"]["key"]))
        for code, a in manifest["agencies"].items()
    }
    return DevPki(
        directory=directory,
        root_cert=x509.load_pem_x509_certificate(p(manifest["root"]["cert"]).read_bytes()),
        intermediate_cert=x509.load_pem_x509_certificate(p(manifest["intermediate"]["cert"]).read_bytes()),
        agencies=agencies,
        seal_cert=p(manifest["gateway"]["seal"]["cert"]),
        seal_key=p(manifest["gateway"]["seal"]["key"]),
        tls_server_cert=p(manifest["gateway"]["tls_server"]["cert"]),
        tls_server_key=p(manifest["gateway"]["tls_server"]["key"]),
        crl=p(manifest["intermediate"]["crl"]),
        anchors=p(manifest["trust"]["anchors"]),
        intermediates=p(manifest["trust"]["intermediates"]),
        manifest=manifest,
    )
