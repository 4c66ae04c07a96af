"""Development PKI: a root CA, an intermediate, and every certificate the gateway needs.

``gateway pki init-dev`` calls :func:`init_dev_pki`; tests call it too (into a
temporary directory) and use :class:`pki.certfactory.CertFactory` (see
:meth:`DevPki.issuing_factory`) to mint odd certificates. Never use this PKI
outside development: keys are written unencrypted.

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
so ``FileSigner.from_pem(key, pem)`` picks up the chain by itself. The
certificates' profiles (and how an agency code is carried in the subject) are
:mod:`pki.certfactory`'s.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.certfactory import AGENCY_ID_PREFIX, CertFactory, Issued, agency_name, simple_name
from pki.errors import PkiError
from pki.keys import FileSigner, PrivateKey
from pki.trust import TrustStore

__all__ = ["DevPki", "AgencyCredentials", "init_dev_pki"]

_MANIFEST_VERSION = 1


def _load_ca_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PkiError(f"{path}: the development CA key is neither EC nor RSA", code="pki.config")
    return key


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
        key = _load_ca_key(self.directory / self.manifest["intermediate"]["key"])
        return CertFactory(Issued(self.intermediate_cert, key), now=now, ocsp_url=ocsp_url, crl_url=crl_url)

    def trust_store(self, **kwargs: Any) -> TrustStore:
        """A :class:`pki.trust.TrustStore` anchored at this PKI's root."""
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
        manifest: dict[str, Any] = json.loads(manifest_path.read_text("utf-8"))
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

    seal = inter.issue(simple_name("Saraban Gateway Seal", "Saraban Gateway"), profile="seal")
    seal.write(directory / "gateway/seal.pem", directory / "gateway/seal.key", chain)
    hosts = list(gateway_hosts)
    ips = [h for h in hosts if _is_ip(h)]
    names = [h for h in hosts if not _is_ip(h)]
    tls = inter.issue(simple_name(names[0] if names else ips[0], "Saraban Gateway"), profile="tls-server",
                      dns_names=names, ip_addresses=ips, days=397)
    tls.write(directory / "gateway/tls-server.pem", directory / "gateway/tls-server.key", chain)

    manifest = {
        "version": _MANIFEST_VERSION,
        "created_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
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
    factory.agency_signing(code, name).write(directory / f"{base}/signing.pem",
                                             directory / f"{base}/signing.key", chain)
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
    key = _load_ca_key(directory / manifest["intermediate"]["key"])
    return CertFactory(Issued(cert, key), now=now)


def _load(directory: Path, manifest: dict[str, Any]) -> DevPki:
    def p(rel: str) -> Path:
        return directory / rel

    agencies = {
        code: AgencyCredentials(code=code, name=a["name"], signing_cert=p(a["signing"]["cert"]),
                                signing_key=p(a["signing"]["key"]),
                                tls_client_cert=p(a["tls_client"]["cert"]),
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
