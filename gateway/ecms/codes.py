"""Stable e-CMS ErrorCodes and the one translation of domain errors into them.

e-CMS clients read failures as ``ErrorDetail{ErrorCode, ErrorDescription}``.
The codes here are the contract (documented in ``gateway/ecms/CODES.md``):
never renumber one; add new ones. The description carries the gateway's own
fine-grained code and field in brackets, e.g.
``[envelope.schema_invalid @ Letter/Subject] ...``, so an operator can match a
client's complaint to the native error table.

This module is the only place that maps a domain error to its wire form: every
:class:`gateway.core.errors.GatewayError` (whatever package raised it, the wire
package :mod:`gateway.core.ecmswire` included) and every :class:`pki.errors.PkiError`
goes through :func:`to_wire`, by its stable code (:data:`TO_WIRE`). No domain error
becomes ECMS-500: that code is left for exceptions that are not domain errors (bugs),
which the facade logs with their traceback and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from adapters.errors import AdapterError
from gateway.core.errors import GatewayError
from pki.errors import PkiError

#: What the gateway refuses with a stable code: its own errors and the PKI library's.
DomainError = GatewayError | PkiError | AdapterError

#: ErrorCode -> (short name, meaning). Grouped: 1xx request, 2xx caller, 3xx content,
#: 4xx signature, 5xx gateway.
CODES: Final[dict[str, tuple[str, str]]] = {
    "ECMS-100": ("not_xml", "The request is not well-formed XML."),
    "ECMS-101": ("dtd_forbidden", "The request declares a DTD or entities; these are never accepted."),
    "ECMS-102": ("too_large", "The request is larger than the configured limit."),
    "ECMS-103": ("not_soap", "The request is not a SOAP 1.1 Envelope with a Body."),
    "ECMS-104": ("unknown_operation", "The Body does not hold exactly one known e-CMS operation."),
    "ECMS-105": ("schema_invalid", "The operation does not match the e-CMS schema (the field is named)."),
    "ECMS-106": ("timeout",
                 "The request body did not arrive in time (a body trickled in is not waited for)."),
    "ECMS-107": ("too_complex", "The request exceeds a parser limit (nesting depth, attributes per element, "
                 "name or namespace length); the limit is named."),
    "ECMS-200": ("auth_required", "The caller is not authenticated (token or client certificate)."),
    "ECMS-201": ("wrong_sender", "The request names a sender department other than the caller."),
    "ECMS-202": ("not_yours", "The ProcessID or letter belongs to another agency."),
    "ECMS-300": ("unknown_agency", "A department code is not in the directory."),
    "ECMS-301": ("invalid_date", "A date is not yyyy-MM-dd."),
    "ECMS-302": ("invalid_code", "A SpeedCode or SecretCode is not in the code table."),
    "ECMS-303": ("refused_by_policy", "Refused by policy (e.g. secrecy ลับที่สุด is never carried)."),
    "ECMS-304": ("invalid_binary", "A binary object is not valid base64 or is too large."),
    "ECMS-305": ("letter_not_found",
                 "No letter with this LetterID and CorrespondenceDate between these agencies."),
    "ECMS-306": ("already_sent",
                 "A letter with this LetterID and date was already sent to this receiver; "
                 "withdraw it first."),
    "ECMS-307": ("process_not_found", "No queued item with this ProcessID for the caller."),
    "ECMS-308": ("ambiguous", "The item cannot be routed unambiguously; name AcceptDepartment/Code."),
    "ECMS-309": ("rejected", "The gateway refused the item (the description names the reason)."),
    "ECMS-310": ("not_withdrawable",
                 "The letter was delivered and its receiver did not reject it or mark it invalid; "
                 "it cannot be withdrawn."),
    "ECMS-400": ("signature_invalid", "The letter's signature does not verify."),
    "ECMS-401": ("signature_algorithm",
                 "The signature uses an algorithm this gateway's legacy profile does not allow "
                 "(e.g. rsa-sha1)."),
    "ECMS-402": ("unsigned_refused", "Unsigned letters are refused by this gateway's policy."),
    "ECMS-403": ("signature_untrusted", "The signing certificate is not trusted for the sending agency."),
    "ECMS-500": ("internal", "Internal error; the request was not processed. Retry later."),
    "ECMS-503": ("unavailable", "The gateway cannot take the request now. Retry later."),
    "ECMS-504": ("not_supported", "This gateway does not offer the operation yet."),
}

#: Domain error code -> e-CMS ErrorCode. A ``family.*`` key covers the codes of that family
#: (the part before the first dot) that have no key of their own. A code in no listed family
#: answers ECMS-309 (refused): never ECMS-500, which is only for bugs.
TO_WIRE: Final[dict[str, str]] = {
    # 1xx: the request (the hardened parser, the SOAP shape, the e-CMS schema)
    "ecms.not_xml": "ECMS-100",
    "envelope.encoding_unsupported": "ECMS-100",
    "ecms.encoding_unsupported": "ECMS-100",
    "ecms.dtd_forbidden": "ECMS-101",
    "ecms.too_large": "ECMS-102",
    "envelope.too_large": "ECMS-102",
    "ecms.too_complex": "ECMS-107",
    "envelope.too_complex": "ECMS-107",
    "ecms.not_soap": "ECMS-103",
    "ecms.unknown_operation": "ECMS-104",
    "ecms.schema_invalid": "ECMS-105",
    "envelope.schema_invalid": "ECMS-105",
    # 2xx: the caller
    "auth.required": "ECMS-200",
    "auth.wrong_sender": "ECMS-201",
    "auth.forbidden": "ECMS-202",
    "auth.*": "ECMS-200",
    # 3xx: the content
    "envelope.unknown_recipient": "ECMS-300",
    "recipient.*": "ECMS-300",
    "directory.*": "ECMS-300",
    "ecms.invalid_date": "ECMS-301",
    "ecms.invalid_code": "ECMS-302",
    "policy.*": "ECMS-303",
    "ecms.invalid_binary": "ECMS-304",
    "attachment.*": "ECMS-304",
    "ecms.letter_not_found": "ECMS-305",
    "ecms.already_sent": "ECMS-306",
    "not_found": "ECMS-307",
    "ecms.ambiguous": "ECMS-308",
    "envelope.*": "ECMS-309",
    "pdf.*": "ECMS-309",
    "throttled.*": "ECMS-309",
    "message.not_withdrawable": "ECMS-310",
    # 4xx: the signature (the legacy ds:Signature, or the PKI library's verdicts)
    "signature.algorithm": "ECMS-401",
    "signature.required": "ECMS-402",
    "signature.missing": "ECMS-402",
    "signature.untrusted": "ECMS-403",
    "signature.*": "ECMS-400",
    "certificate.*": "ECMS-403",
    # 5xx: the gateway cannot do it now (a domain error, not a bug: never ECMS-500)
    "unavailable": "ECMS-503",
    "unavailable.*": "ECMS-503",
    "key.unavailable": "ECMS-503",
    "pdf.font_missing": "ECMS-503",
    "config.invalid": "ECMS-503",
    "config.*": "ECMS-503",
    "pki.config": "ECMS-503",
    "internal": "ECMS-503",
    "ecms.not_supported": "ECMS-504",
}


@dataclass(frozen=True)
class WireError:
    """A domain error as an e-CMS client reads it."""

    code: str
    """ErrorCode (a key of :data:`CODES`)."""
    description: str
    """ErrorDescription: the domain code (and field) in brackets, then the message."""


def ecms_code_for(exc: DomainError) -> str:
    """The stable e-CMS ErrorCode for a domain error (never ECMS-500)."""
    code = exc.code or ""
    wire = TO_WIRE.get(code) or TO_WIRE.get(code.partition(".")[0] + ".*")
    if wire is not None:
        return wire
    return "ECMS-309"


def describe(exc: DomainError) -> str:
    """ErrorDescription: the domain code (and field) in brackets, then the message."""
    where = f" @ {exc.field}" if exc.field else ""
    return f"[{exc.code}{where}] {exc.message}"


def to_wire(exc: DomainError) -> WireError:
    """The ErrorDetail for a domain error."""
    return WireError(ecms_code_for(exc), describe(exc))


def codes_markdown() -> str:
    """The table in CODES.md, generated from :data:`CODES` (a test keeps them equal)."""
    lines = ["| ErrorCode | name | meaning |", "|---|---|---|"]
    lines += [f"| {code} | {name} | {meaning} |" for code, (name, meaning) in CODES.items()]
    return "\n".join(lines) + "\n"


def translation_markdown() -> str:
    """The domain code table in CODES.md, generated from :data:`TO_WIRE` (a test keeps them equal)."""
    lines = ["| domain code | ErrorCode |", "|---|---|"]
    lines += [f"| `{code}` | {wire} |" for code, wire in TO_WIRE.items()]
    lines.append("| any other code | ECMS-309 |")
    return "\n".join(lines) + "\n"
