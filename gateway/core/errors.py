"""One root exception for the gateway, each subclass a family of stable codes.

The HTTP API and the e-CMS facade turn a :class:`GatewayError` into a body with
``code`` (stable, machine-readable, documented in the README), ``field`` (where
in the input the fault is, when one applies) and a readable ``message``.
Anything that is not a ``GatewayError`` is a bug and is answered with 500 after
being logged; bad input must never take that path.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway reports to a client or operator."""

    #: HTTP status the API answers with.
    status: int = 400
    #: Default stable code of this family.
    code: str = "gateway.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, field={self.field!r}, message={self.message!r})"


class EnvelopeError(GatewayError):
    """The submitted envelope is unreadable, invalid or refused by policy."""

    status = 400
    code = "envelope.invalid"


class AuthError(GatewayError):
    """The client is not authenticated (401) or not allowed to do this (403)."""

    status = 401
    code = "auth.required"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class LetterSentOtherwise(Conflict):
    """A guarded letter (``Exchange.submit(resend_guard=...)``) whose number and date already went to
    :attr:`recipient` as another, live letter: that one must be withdrawn first."""

    code = "letter.sent_otherwise"

    def __init__(self, message: str, *, recipient: str) -> None:
        super().__init__(message, field="Letter/Number")
        self.recipient = recipient


class Unavailable(GatewayError):
    """The gateway cannot take the request now (database down, overloaded)."""

    status = 503
    code = "unavailable"


class ConfigError(GatewayError):
    """Configuration or directory is wrong; raised at start-up, never per request."""

    status = 500
    code = "config.invalid"
