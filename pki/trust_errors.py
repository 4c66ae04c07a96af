"""certvalidator's exceptions as the stable ``certificate.*`` codes of :class:`pki.errors.CertificateError`
(the trust store's one translation table; :mod:`pki.ltv_verify` has its own for past validation)."""

from __future__ import annotations

from pyhanko_certvalidator import errors as cv_errors

from pki.errors import CertificateError, PkiError

__all__ = ["map_error"]


def map_error(exc: Exception) -> PkiError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, cv_errors.RevokedError):
        return CertificateError(text, code="certificate.revoked")
    if isinstance(exc, cv_errors.ExpiredError):
        return CertificateError(text, code="certificate.expired")
    if isinstance(exc, cv_errors.NotYetValidError):
        return CertificateError(text, code="certificate.not_yet_valid")
    if isinstance(exc, cv_errors.InsufficientRevinfoError):
        return CertificateError(text, code="certificate.revocation_unknown")
    if isinstance(exc, cv_errors.DisallowedAlgorithmError):
        return CertificateError(text, code="certificate.algorithm")
    if isinstance(exc, cv_errors.InvalidCertificateError):
        return CertificateError(text, code="certificate.key_usage")
    if isinstance(exc, cv_errors.PathBuildingError):
        return CertificateError(text, code="certificate.untrusted")
    if isinstance(exc, (cv_errors.PathValidationError, cv_errors.ValidationError)):
        lowered = text.lower()
        if "revoked" in lowered:
            return CertificateError(text, code="certificate.revoked")
        if "revocation" in lowered:
            return CertificateError(text, code="certificate.revocation_unknown")
        return CertificateError(text, code="certificate.invalid")
    return CertificateError(f"certificate validation failed: {type(exc).__name__}: {text}",
                            code="certificate.invalid")
