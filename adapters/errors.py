"""One root exception for the adapters, each subclass a family of stable codes.

An adapter reports a delivery's outcome as a value (:mod:`adapters.base`), never
by raising: these errors are what the adapters' helpers raise to the gateway
when an office's answer cannot be taken (a DeliveryAck that does not verify),
with a stable code and no wire form; each edge translates the code.
"""

from __future__ import annotations


class AdapterError(Exception):
    """Root of every error raised by :mod:`adapters`."""

    code: str = "adapter.error"

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


class AckRefused(AdapterError):
    """A DeliveryAck that is not a valid acknowledgement (signature, agency or digest)."""

    code = "ack.signature_invalid"
