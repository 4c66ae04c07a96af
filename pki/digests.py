"""An attachment's bytes against its declared Size and Sha256: checked here, and only here.

Every path that meets an attachment's bytes (inline base64 content read from an
envelope, a file sent beside it as a MIME part, a stored part read back for a
legacy receiver, the signature check naming why a reference broke) calls
:func:`check_digest`, so a mismatch is always ``attachment.digest_mismatch``
with the field that disagrees (``.../Size`` or ``.../Sha256``).
"""

from __future__ import annotations

import hashlib

from pki.errors import AttachmentError


def check_digest(where: str, *, size: int, sha256_hex: str, declared_size: int | str | None,
                 declared_sha256: str | None) -> None:
    """Refuse bytes of ``size`` and ``sha256_hex`` that are not what ``where`` declares."""
    text = str(declared_size).strip() if declared_size is not None else ""
    try:  # xs:nonNegativeInteger: "+0" and "007" are numbers too; int() refuses more than 4300 digits
        declared = int(text)
    except ValueError:
        declared = -1
    if declared != size:
        raise AttachmentError(f"declared Size {text[:40]} but the content has {size} bytes",
                              code="attachment.digest_mismatch", field=f"{where}/Size")
    if sha256_hex != (declared_sha256 or "").strip():
        raise AttachmentError("the SHA-256 of the content does not match the declared Sha256",
                              code="attachment.digest_mismatch", field=f"{where}/Sha256")


def check_content(where: str, content: bytes, *, declared_size: int | str | None,
                  declared_sha256: str | None) -> None:
    """:func:`check_digest` for bytes in hand."""
    check_digest(where, size=len(content), sha256_hex=hashlib.sha256(content).hexdigest(),
                 declared_size=declared_size, declared_sha256=declared_sha256)
