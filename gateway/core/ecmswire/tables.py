"""The e-CMS code tables: SpeedCode, SecretCode, MIME types and notifier elements.

SpeedCode and SecretCode are answered by GetSpeedCodes / GetSecretCodes and accepted on input
together with the one-digit forms, the Thai names and the native names (see
:func:`gateway.core.ecmswire.reading.speed_code`); an empty code means normal:

=====  =====================  ==========================
code   SpeedCode              SecretCode
=====  =====================  ==========================
001    ปกติ (normal)           ปกติ (normal)
002    ด่วน (urgent)            ลับ (confidential)
003    ด่วนมาก (very-urgent)     ลับมาก (secret)
004    ด่วนที่สุด (most-urgent)   ลับที่สุด (top-secret: refused)
=====  =====================  ==========================
"""

from __future__ import annotations

from typing import Final

from gateway.core.envelope import NotifierKind, Secrecy, Speed

SPEED_CODES: Final[dict[str, Speed]] = {
    "001": Speed.NORMAL, "002": Speed.URGENT, "003": Speed.VERY_URGENT, "004": Speed.MOST_URGENT}
SECRET_CODES: Final[dict[str, Secrecy]] = {
    "001": Secrecy.NORMAL, "002": Secrecy.CONFIDENTIAL, "003": Secrecy.SECRET, "004": Secrecy.TOP_SECRET}
SPEED_NAMES_TH: Final = {"001": "ปกติ", "002": "ด่วน", "003": "ด่วนมาก", "004": "ด่วนที่สุด"}
SECRET_NAMES_TH: Final = {"001": "ปกติ", "002": "ลับ", "003": "ลับมาก", "004": "ลับที่สุด"}

#: e-CMS notifier element <-> native notifier kind.
NOTIFIER_KINDS: Final[dict[str, NotifierKind]] = {
    "ReceiveLetterNotifier": NotifierKind.RECEIVED,
    "AcceptLetterNotifier": NotifierKind.ACCEPTED,
    "RejectLetterNotifier": NotifierKind.REJECTED,
    "InvalidLetterNotifier": NotifierKind.INVALID,
    "InvalidAcceptIDNotifier": NotifierKind.INVALID_REGISTRY_NUMBER,
}
NOTIFIER_ELEMENTS: Final = {kind: name for name, kind in NOTIFIER_KINDS.items()}

#: MIME types named in GetMimeCodes, with the file extension used for native FileName.
MIME_TYPES: Final[dict[str, str]] = {
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tif",
    "text/plain": "txt",
    "application/zip": "zip",
    "application/octet-stream": "bin",
}
#: File extension (as some clients send it in mimeCode) -> MIME type.
EXT_TO_MIME: Final = ({ext: mime for mime, ext in MIME_TYPES.items()}
                      | {"jpeg": "image/jpeg", "tiff": "image/tiff"})
