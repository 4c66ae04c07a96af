"""One root exception for the gateway, each subclass a family of stable codes.

A :class:`GatewayError` carries a stable, machine-readable ``code`` (documented
in the README), the ``field`` of the input at fault when one applies, and a
readable ``message``. It carries no HTTP status or any other wire form: each
edge translates codes with its one table (``gateway.http.errors`` for the
native API, ``gateway.http.console.errors`` for the console,
``gateway.ecms.codes`` for the e-CMS endpoint, ``gateway.cli.main`` for exit
statuses). Anything that is not a domain error (this root, ``pki.errors.PkiError``
or ``adapters.errors.AdapterError``) is a bug: every edge answers it as a
server error after logging it with its traceback and counting it; bad input
must never take that path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup_keys(code: str) -> tuple[str, ...]:
    """The keys an edge's table is searched by, most specific first: the code itself, its kind
    (``".too_large"`` for ``ack.too_large``) and its family (``"ack."``)."""
    family, _, kind = code.partition(".")
    return (code, f".{kind}", f"{family}.") if kind else (code, f"{family}.")


def translate(table: Mapping[str, T], code: str, default: T) -> T:
    """``code``'s entry in an edge's translation table (:func:`lookup_keys` order), else ``default``."""
    return next((table[key] for key in lookup_keys(code) if key in table), default)


class GatewayError(Exception):
    """Root of every error the gateway reports to a client or operator."""

    #: Default stable code of this family.
    code: str = "gateway.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, field={self.field!r}, message={self.message!r})"


class EnvelopeError(GatewayError):
    """The submitted envelope (or the request carrying it) is unreadable, invalid or refused by policy."""

    code = "envelope.invalid"


class AuthError(GatewayError):
    """The client is not authenticated, or not allowed to do this."""

    code = "auth.required"


class NotFound(GatewayError):
    code = "not_found"


class Conflict(GatewayError):
    code = "conflict"


class LetterSentOtherwise(Conflict):
    """A guarded letter (``Acceptance.submit(resend_guard=...)``) whose number and date already went to
    :attr:`recipient` as another, live letter: that one must be withdrawn first."""

    code = "letter.sent_otherwise"

    def __init__(self, message: str, *, recipient: str) -> None:
        super().__init__(message, field="Letter/Number")
        self.recipient = recipient


class Unavailable(GatewayError):
    """The gateway cannot take the request now (database down, overloaded): retry later."""

    code = "unavailable"
    #: Seconds a client should wait before trying again (``Retry-After``).
    retry_after: int = 2


class ConfigError(GatewayError):
    """Configuration or directory is wrong; raised at start-up, never per request."""

    code = "config.invalid"
