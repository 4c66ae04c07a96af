"""Stable e-CMS ErrorCodes and the translation of gateway errors into them.

e-CMS clients read failures as ``ErrorDetail{ErrorCode, ErrorDescription}``.
The codes here are the contract (documented in ``gateway/ecms/CODES.md``):
never renumber one; add new ones. The description carries the gateway's own
fine-grained code and field in brackets, e.g.
``[envelope.schema_invalid @ Letter/Subject] ...``, so an operator can match a
client's complaint to the native error table.
"""

from __future__ import annotations

from typing import Final

from gateway.core.errors import GatewayError


class EcmsError(GatewayError):
    """A failure answered to an e-CMS client as ErrorDetail (``code`` is the gateway code)."""

    code = "ecms.error"

    def __init__(self, message: str, *, ecms_code: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)
        #: The stable e-CMS ErrorCode (see CODES).
        self.ecms_code = ecms_code


#: ErrorCode -> (short name, meaning). Grouped: 1xx request, 2xx caller, 3xx content,
#: 4xx signature, 5xx gateway.
CODES: Final[dict[str, tuple[str, str]]] = {
    "ECMS-100": ("not_xml", "The request is not well-formed XML."),
    "ECMS-101": ("dtd_forbidden", "The request declares a DTD or entities; these are never accepted."),
    "ECMS-102": ("too_large", "The request is larger than the configured limit."),
    "ECMS-103": ("not_soap", "The request is not a SOAP 1.1 Envelope with a Body."),
    "ECMS-104": ("unknown_operation", "The Body does not hold exactly one known e-CMS operation."),
    "ECMS-105": ("schema_invalid", "The operation does not match the e-CMS schema (the field is named)."),
    "ECMS-106": ("timeout", "The request body did not arrive in time (a body trickled in is not waited for)."),
    "ECMS-200": ("auth_required", "The caller is not authenticated (token or client certificate)."),
    "ECMS-201": ("wrong_sender", "The request names a sender department other than the caller."),
    "ECMS-202": ("not_yours", "The ProcessID or letter belongs to another agency."),
    "ECMS-300": ("unknown_agency", "A department code is not in the directory."),
    "ECMS-301": ("invalid_date", "A date is not yyyy-MM-dd."),
    "ECMS-302": ("invalid_code", "A SpeedCode or SecretCode is not in the code table."),
    "ECMS-303": ("refused_by_policy", "Refused by policy (e.g. secrecy ลับที่สุด is never carried)."),
    "ECMS-304": ("invalid_binary", "A binary object is not valid base64 or is too large."),
    "ECMS-305": ("letter_not_found", "No letter with this LetterID and CorrespondenceDate between these agencies."),
    "ECMS-306": ("already_sent", "A letter with this LetterID and date was already sent to this receiver; withdraw it first."),
    "ECMS-307": ("process_not_found", "No queued item with this ProcessID for the caller."),
    "ECMS-308": ("ambiguous", "The item cannot be routed unambiguously; name AcceptDepartment/Code."),
    "ECMS-309": ("rejected", "The gateway refused the item (the description names the reason)."),
    "ECMS-310": ("not_withdrawable", "The letter was delivered and its receiver did not reject it or mark it invalid; it cannot be withdrawn."),
    "ECMS-400": ("signature_invalid", "The letter's signature does not verify."),
    "ECMS-401": ("signature_algorithm", "The signature uses an algorithm this gateway's legacy profile does not allow (e.g. rsa-sha1)."),
    "ECMS-402": ("unsigned_refused", "Unsigned letters are refused by this gateway's policy."),
    "ECMS-403": ("signature_untrusted", "The signing certificate is not trusted for the sending agency."),
    "ECMS-500": ("internal", "Internal error; the request was not processed. Retry later."),
    "ECMS-503": ("unavailable", "The gateway cannot take the request now. Retry later."),
    "ECMS-504": ("not_supported", "This gateway does not offer the operation yet."),
}

# Native (gateway) error code -> e-CMS ErrorCode. Prefix matches (ending in '.')
# are tried after exact matches; anything else becomes ECMS-309.
_FROM_GATEWAY: Final[dict[str, str]] = {
    "ecms.not_xml": "ECMS-100",
    "ecms.dtd_forbidden": "ECMS-101",
    "ecms.too_large": "ECMS-102",
    "ecms.schema_invalid": "ECMS-105",
    "envelope.schema_invalid": "ECMS-105",
    "auth.required": "ECMS-200",
    "auth.wrong_sender": "ECMS-201",
    "auth.forbidden": "ECMS-202",
    "not_found": "ECMS-307",
    "message.not_withdrawable": "ECMS-310",
    "unavailable": "ECMS-503",
    "envelope.too_large": "ECMS-102",
    "envelope.unknown_recipient": "ECMS-300",
    "recipient.": "ECMS-300",
    "directory.": "ECMS-300",
    "policy.": "ECMS-303",
    "attachment.": "ECMS-304",
    "signature.": "ECMS-400",
    "auth.": "ECMS-200",
}


def ecms_code_for(exc: GatewayError) -> str:
    """The stable e-CMS ErrorCode for any gateway error."""
    if isinstance(exc, EcmsError):
        return exc.ecms_code
    code = exc.code or ""
    if code in _FROM_GATEWAY:
        return _FROM_GATEWAY[code]
    for prefix, ecms in _FROM_GATEWAY.items():
        if prefix.endswith(".") and code.startswith(prefix):
            return ecms
    if code.startswith("unavailable"):
        return "ECMS-503"
    if code.startswith(("config.", "key.", "internal")) or code == "pdf.font_missing":
        return "ECMS-500"
    return "ECMS-309"


def describe(exc: GatewayError) -> str:
    """ErrorDescription: the gateway code (and field) in brackets, then the message."""
    where = f" @ {exc.field}" if exc.field else ""
    return f"[{exc.code}{where}] {exc.message}"


def codes_markdown() -> str:
    """The table in CODES.md, generated from :data:`CODES` (a test keeps them equal)."""
    lines = ["| ErrorCode | name | meaning |", "|---|---|---|"]
    lines += [f"| {code} | {name} | {meaning} |" for code, (name, meaning) in CODES.items()]
    return "\n".join(lines) + "\n"
