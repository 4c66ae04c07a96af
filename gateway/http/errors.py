"""The native API's one translation table: domain error codes to HTTP statuses.

Domain errors (:class:`gateway.core.errors.GatewayError`, :class:`pki.errors.PkiError`,
:class:`adapters.errors.AdapterError`) carry a stable code and no HTTP status:
what a code means on the wire is this edge's business. A code is looked up
whole, then by its family (the text before the first dot); a code of a known
family answers that family's status. ``tests/unit/test_error_edges.py`` checks
that every code raised anywhere in the tree has an entry here, so no domain
error answers 500. Anything that is not a domain error is a bug: it answers
500, is logged with its traceback and counted (``gateway_unhandled_errors``).
"""

from __future__ import annotations

from typing import Final

from adapters.errors import AdapterError
from gateway.core.errors import GatewayError, lookup_keys, translate
from pki.errors import PkiError

#: The roots of the domain errors of the three packages: stable codes, no wire form.
DOMAIN_ERRORS: Final = (GatewayError, PkiError, AdapterError)
DomainError = GatewayError | PkiError | AdapterError

#: Code, family or kind -> HTTP status. Families are keys ending with a dot ("envelope."), kinds
#: start with one (".too_large": any document too large, whatever it is: envelope, ack, ...).
STATUS: Final[dict[str, int]] = {
    # any document the gateway reads (the parser names the document: envelope., ack., ecms. ...)
    ".not_xml": 400,
    ".dtd_forbidden": 400,
    ".too_large": 413,
    ".schema_invalid": 400,
    ".encoding_unsupported": 400,
    # the request itself
    "request.": 400,
    "request.timeout": 408,
    "request.too_large": 413,
    "request.unsupported_media_type": 415,
    "not_found": 404,
    "method_not_allowed": 405,
    # the envelope: unreadable or invalid (400), readable but refused (422), too large (413)
    "envelope.": 400,
    "envelope.too_large": 413,
    "envelope.structure": 422,
    "envelope.type_mismatch": 422,
    "envelope.receipt_not_submittable": 422,
    "envelope.unknown_recipient": 422,
    "envelope.registry_number_missing": 422,
    "policy.": 422,
    "recipient.": 400,
    "attachment.": 422,
    "attachment.too_large": 413,
    "attachment.part_too_large": 413,
    "attachment.too_many": 413,
    # who signed it
    "signature.": 422,
    "signature.required": 400,
    "signature.untrusted": 400,
    "certificate.": 422,
    "certificate.wrong_agency": 403,
    "pdf.": 422,
    "pdf.wrong_agency": 403,
    "pdf.font_missing": 500,
    "ack.": 422,
    "pki.": 422,
    "pki.config": 500,
    "key.": 500,
    # who asks
    "auth.": 401,
    "auth.forbidden": 403,
    "auth.csrf": 403,
    "auth.wrong_sender": 403,
    "auth.too_many_attempts": 429,
    "throttled": 429,
    "throttled.": 429,
    # what they ask about
    "message.": 409,
    "message.not_found": 404,
    "agency.not_found": 404,
    "letter.": 404,
    "letter.sent_otherwise": 409,
    "inbox.": 404,
    "inbox.not_pending": 409,
    "delivery.": 409,
    "stamp.": 404,
    "user.": 400,
    "user.exists": 409,
    "user.not_found": 404,
    "audit.": 409,
    "conflict": 409,
    "ecms.": 400,
    "ecms.not_supported": 501,
    # the gateway
    "unavailable": 503,
    "unavailable.": 503,
    "config.": 500,
    "internal": 500,
}

#: What a code of no known family answers: a domain error is the client's to fix unless listed.
DEFAULT_STATUS: Final = 400


def status_for(code: str) -> int:
    """The HTTP status of a domain error code: the code's own entry, else its kind's, else its family's."""
    return translate(STATUS, code, DEFAULT_STATUS)


def known(code: str) -> bool:
    """Whether ``code``, its kind or its family has an entry (the test of every raised code uses this)."""
    return any(key in STATUS for key in lookup_keys(code))
