"""Records the exchange answers with, for the e-CMS facade above it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LetterRef:
    """What ``Status.find_letter`` returns: the native letter a notifier answers."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class OutboundItem:
    """One row of ``Status.outbound``: a sent item and its overall state."""

    message_id: str
    letter_number: str
    status: str
