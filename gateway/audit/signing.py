"""Signing checkpoints (through a :class:`gateway.core.sealing.CheckpointSigner`), and verification with
only a certificate."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _hash_for(key: PublicKeyTypes) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(key.curve.name,
                                                                                hashes.SHA256())
    return hashes.SHA256()


def verify_signature(cert: x509.Certificate, data: bytes, signature: bytes) -> bool:
    key = cert.public_key()
    algorithm = _hash_for(key)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            width = (key.curve.key_size + 7) // 8
            if len(signature) == 2 * width:  # raw r||s
                signature = utils.encode_dss_signature(int.from_bytes(signature[:width], "big"),
                                                       int.from_bytes(signature[width:], "big"))
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


class PemSigner:
    """A checkpoint signer from PEM files (until the PKI's ``FileSigner`` is wired in)."""

    def __init__(self, key_path: str | Path, cert_path: str | Path) -> None:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            # verify_signature checks ECDSA and RSA only: any other key would sign checkpoints nobody can
            # verify
            raise ValueError(f"{key_path}: an audit key must be ECDSA or RSA, not {type(key).__name__}")
        self._key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = key
        self.certificate = load_certificate(Path(cert_path).read_bytes())

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(_hash_for(self._key.public_key())))
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
