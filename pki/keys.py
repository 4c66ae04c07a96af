"""Signing keys behind one protocol: a key file loaded once, or a key in an HSM.

The gateway holds one :class:`Signer` for its seal and receipts (acquired and
released in aiohttp's ``cleanup_ctx``); tests and demo agencies hold one per
agency. Everything that signs (XML-DSig in :mod:`pki.sign`, :mod:`pki.seal` and
:mod:`pki.receipts`, PAdES in :mod:`pki.pdf`) goes through this protocol, so
swapping a file key for an HSM key is configuration, not code.

Why :attr:`Signer.xmldsig_key`: signxml signs by calling ``key.sign(...)`` on
a ``cryptography`` private key object and reads ``key.key_size``; it never
inspects the private numbers. A :class:`FileSigner` hands it the real key (no
overhead); a :class:`Pkcs11Signer` hands it :class:`ExternalKey`, a duck-typed
stand-in that forwards to the token. signxml therefore still builds SignedInfo,
canonicalises, digests and writes KeyInfo; only the private-key operation
happens in the HSM.

Signatures are "raw" as XML-DSig wants them: ECDSA as the fixed-width
``r || s`` concatenation (RFC 4050 / XML-DSig 1.1), RSA as PKCS#1 v1.5 bytes.
The hash is fixed by the key: SHA-256 for P-256 and RSA, SHA-384 for P-384.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from signxml.algorithms import SignatureMethod

from pki.errors import KeyUnavailable

__all__ = ["Signer", "FileSigner", "Pkcs11Signer", "ExternalKey", "key_algorithm_of", "PrivateKey",
           "PublicKey"]

#: The key types the gateway signs with: ECDSA (P-256, P-384) and RSA.
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@runtime_checkable
class Signer(Protocol):
    """What every signing key offers to the XML signature modules and :mod:`pki.pdf`."""

    #: The signer's end-entity certificate.
    certificate: x509.Certificate
    #: Intermediate CA certificates to send along (not the root).
    chain: list[x509.Certificate]
    #: ``"ecdsa-p256"``, ``"ecdsa-p384"``, ``"rsa-2048"``, ``"rsa-3072"`` ...
    key_algorithm: str

    @property
    def signature_method(self) -> SignatureMethod:
        """XML-DSig SignatureMethod this key signs with (ECDSA-SHA256, RSA-SHA256 ...)."""
        ...

    @property
    def hash_name(self) -> str:
        """Hash the key signs with: ``"sha256"`` or ``"sha384"``."""
        ...

    @property
    def xmldsig_key(self) -> Any:
        """An object signxml can sign with (a cryptography private key or :class:`ExternalKey`)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Hash ``data`` and sign it; return the raw XML-DSig signature value."""
        ...


def key_algorithm_of(public_key: object) -> str:
    """``"ecdsa-p256"`` / ``"rsa-2048"`` ... for a cryptography public key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}.get(
            public_key.curve.name, f"ecdsa-{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    raise KeyUnavailable(f"unsupported key type {type(public_key).__name__}")


_HASHES: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
                                             "sha512": hashes.SHA512()}


def public_key_of(certificate: x509.Certificate) -> PublicKey:
    """The certificate's key, which must be ECDSA or RSA (``key.unavailable`` otherwise)."""
    key = certificate.public_key()
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise KeyUnavailable(f"unsupported key type {type(key).__name__}")
    return key


def _hash_for(key_algorithm: str) -> str:
    if key_algorithm == "ecdsa-p384":
        return "sha384"
    if key_algorithm == "ecdsa-p521":
        return "sha512"
    return "sha256"


def _method_for(key_algorithm: str, hash_name: str) -> SignatureMethod:
    family = "ECDSA" if key_algorithm.startswith("ecdsa") else "RSA"
    return SignatureMethod[f"{family}_{hash_name.upper()}"]


def _coordinate_bytes(public_key: PublicKey) -> int:
    return (public_key.curve.key_size + 7) // 8 if isinstance(public_key, ec.EllipticCurvePublicKey) else 0


def der_to_raw_ecdsa(der: bytes, width: int) -> bytes:
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


def raw_to_der_ecdsa(raw: bytes) -> bytes:
    half = len(raw) // 2
    return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


class _SignerBase:
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    key_algorithm: str

    def _init_common(self, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
        self.certificate = certificate
        self.chain = list(chain)
        public_key = public_key_of(certificate)
        self.key_algorithm = key_algorithm_of(public_key)
        self._hash_name = _hash_for(self.key_algorithm)
        self._method = _method_for(self.key_algorithm, self._hash_name)
        self._width = _coordinate_bytes(public_key)

    @property
    def signature_method(self) -> SignatureMethod:
        return self._method

    @property
    def hash_name(self) -> str:
        return self._hash_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key_algorithm}, {self.certificate.subject.rfc4514_string()!r})"


class FileSigner(_SignerBase):
    """A private key held in memory, loaded once from PEM files.

    Loading an RSA key costs ~240 ms (key consistency checks), so construct one
    :class:`FileSigner` at start-up and keep it; never load per request.
    """

    def __init__(self, private_key: PrivateKeyTypes, certificate: x509.Certificate,
                 chain: Sequence[x509.Certificate] = ()) -> None:
        if not isinstance(private_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise KeyUnavailable(f"unsupported private key type {type(private_key).__name__}")
        if private_key.public_key().public_numbers() != public_key_of(certificate).public_numbers():
            raise KeyUnavailable("the private key does not match the certificate")
        self._key: PrivateKey = private_key
        self._init_common(certificate, chain)

    @classmethod
    def from_pem(cls, key_path: str | Path, cert_path: str | Path, chain_paths: Sequence[str | Path] = (),
                 password: bytes | str | None = None) -> FileSigner:
        """Load a PEM private key, its certificate (first in the file) and intermediates."""
        if isinstance(password, str):
            password = password.encode()
        try:
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=password)
            certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
            chain = list(certs[1:])
            for path in chain_paths:
                chain.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
        except (OSError, ValueError, TypeError) as exc:
            raise KeyUnavailable(f"cannot load signing key {key_path} / {cert_path}: {exc}") from None
        return cls(key, certs[0], chain)

    @property
    def xmldsig_key(self) -> Any:
        return self._key

    @property
    def private_key(self) -> PrivateKey:
        """The cryptography key object (file signers only; pyHanko signs with it directly)."""
        return self._key

    def sign(self, data: bytes) -> bytes:
        algorithm = _HASHES[self._hash_name]
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return der_to_raw_ecdsa(self._key.sign(data, ec.ECDSA(algorithm)), self._width)
        return self._key.sign(data, padding.PKCS1v15(), algorithm)


class ExternalKey:
    """Duck-typed stand-in for a cryptography private key whose operation happens elsewhere.

    It implements exactly what signxml's ``XMLSigner.sign`` uses: ``sign()``
    with cryptography's calling convention (returning DER for ECDSA, as
    cryptography does; signxml converts it back to ``r || s``), ``key_size``,
    ``curve`` and ``public_key()``.
    """

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = public_key_of(signer.certificate)
        self.key_size = self._public.key_size
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            self.curve = self._public.curve

    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes, *args: Any, **kwargs: Any) -> bytes:
        algorithm = kwargs.get("signature_algorithm") or kwargs.get("algorithm")
        if algorithm is None:
            algorithm = next((a for a in args if not isinstance(a, padding.AsymmetricPadding)), None)
        if isinstance(algorithm, ec.ECDSA):
            algorithm = algorithm.algorithm
        pad = kwargs.get("padding") or next((a for a in args if isinstance(a, padding.AsymmetricPadding)),
                                            None)
        if pad is not None and not isinstance(pad, padding.PKCS1v15):
            raise KeyUnavailable("external keys sign RSA with PKCS#1 v1.5 only")
        name = getattr(algorithm, "name", None)  # a HashAlgorithm; None for anything else (Prehashed ...)
        if name != self._signer.hash_name:
            raise KeyUnavailable(f"this key signs with {self._signer.hash_name}, not {name}")
        raw = self._signer.sign(data)
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            return raw_to_der_ecdsa(raw)
        return raw


class Pkcs11Signer(_SignerBase):
    """A private key inside a PKCS#11 token (HSM, SoftHSM2), used through python-pkcs11.

    One session is opened at construction and kept for the signer's lifetime
    (opening a session and logging in per signature would cost more than the
    signature); a lock serialises use because a PKCS#11 session is not safe to
    share between threads. Call :meth:`close` at shutdown.
    """

    def __init__(self, lib_path: str | Path, token_label: str, key_label: str, pin: str,
                 cert: x509.Certificate, chain: Sequence[x509.Certificate] = ()) -> None:
        try:
            # python-pkcs11 is optional (the ``hsm`` extra): only a gateway whose key is in an HSM needs it,
            # so it is imported when such a signer is made, and its absence is a KeyUnavailable.
            import pkcs11
            from pkcs11 import KeyType, Mechanism, ObjectClass
        except ImportError as exc:  # pragma: no cover - python-pkcs11 is in the test extras
            raise KeyUnavailable(f"python-pkcs11 is not installed: {exc}") from None
        self._init_common(cert, chain)
        try:
            lib = pkcs11.lib(str(lib_path))
            token = lib.get_token(token_label=token_label)
            self._session = token.open(user_pin=pin)
            key_type = KeyType.EC if self.key_algorithm.startswith("ecdsa") else KeyType.RSA
            key = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=key_type,
                                        label=key_label)
        except Exception as exc:  # python-pkcs11 raises many unrelated types; wrap at the boundary
            raise KeyUnavailable(f"PKCS#11 key {key_label!r} on token {token_label!r}: "
                                 f"{type(exc).__name__} {exc}") from None
        if not isinstance(key, pkcs11.SignMixin):
            raise KeyUnavailable(f"PKCS#11 key {key_label!r} on token {token_label!r} cannot sign")
        self._key: pkcs11.SignMixin = key
        self._prehash = key_type == KeyType.EC
        if key_type == KeyType.EC:
            # CKM_ECDSA_SHA256 is missing from many tokens (SoftHSM2 2.6 among them): hash here and
            # let the token do plain CKM_ECDSA over the digest, which every EC-capable token has.
            self._mechanism = Mechanism.ECDSA
        else:
            self._mechanism = {"sha256": Mechanism.SHA256_RSA_PKCS, "sha384": Mechanism.SHA384_RSA_PKCS,
                               "sha512": Mechanism.SHA512_RSA_PKCS}[self.hash_name]
        self._lock = threading.Lock()
        self._external = ExternalKey(self)

    @property
    def xmldsig_key(self) -> Any:
        return self._external

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            try:
                if self._prehash:
                    data = hashlib.new(self.hash_name, data).digest()
                # PKCS#11 returns ECDSA signatures as r || s already (the XML-DSig form).
                return bytes(self._key.sign(data, mechanism=self._mechanism))
            except Exception as exc:
                raise KeyUnavailable(f"PKCS#11 signing failed: {type(exc).__name__} {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._session.close()
