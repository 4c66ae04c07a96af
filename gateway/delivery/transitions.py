"""Decide purely what an attempt's outcome means for a claimed delivery.

:func:`decide` turns an adapter's outcome (:mod:`adapters.base`: delivered,
retry, permanent refusal), the claim and the retry policy into a
:class:`gateway.storage.transitions.Transition`: delivered, retry at T, or
dead with the reason. It reads no clock, database or network (the policy's
jitter comes from its seeded random source), so it is tested over every
outcome, attempt count and time to live without a database. The dispatcher
applies a batch of such transitions with one storage call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from adapters.base import Delivered, Outcome, Permanent
from gateway.delivery.retry import RetryPolicy
from gateway.storage.deliveries import ClaimedDelivery
from gateway.storage.messages import NewMessage
from gateway.storage.transitions import Transition, transition


@dataclass(frozen=True)
class Attempt:
    """The attempt that produced an outcome: who held the claim, when it started and ended."""

    worker: str
    started: dt.datetime
    finished: dt.datetime


def decide(outcome: Outcome, claim: ClaimedDelivery, policy: RetryPolicy, attempt: Attempt, *,
           breaker_threshold: int, receipt: bytes = b"",
           receipt_message: NewMessage | None = None) -> Transition:
    """The transition ``outcome`` makes of ``claim``.

    ``receipt`` and ``receipt_message`` (a delivered outcome): the signed delivery receipt and the
    message carrying it back to the sender, made beforehand by the caller (signing is not pure)."""
    if isinstance(outcome, Delivered):  # the usual outcome: one Transition made, not a base and a replace(),
        # its fields set at once (storage.transitions.transition)
        return transition(delivery_id=claim.id, outcome="delivered", at=attempt.finished,
                          message_pk=claim.message_pk, recipient=claim.recipient, actor="gateway",
                          details={"recipient": claim.recipient, "sha256": claim.forwarded_sha256.hex(),
                                   **(outcome.facts or {})},
                          worker=attempt.worker, attempt=claim.attempts, started_at=attempt.started,
                          reset_destination=True, receipt=receipt, ack=outcome.ack, receipt_message=receipt_message)
    base = Transition(delivery_id=claim.id, outcome="delivered", at=attempt.finished,
                      message_pk=claim.message_pk,
                      recipient=claim.recipient, actor="gateway", details={}, worker=attempt.worker,
                      attempt=claim.attempts, started_at=attempt.started, reset_destination=True)
    if isinstance(outcome, Permanent):
        return replace(base, outcome="dead", reason=outcome.reason, permanent=True,
                       details={"recipient": claim.recipient, "reason": outcome.reason,
                                "attempts": claim.attempts, "permanent": True})
    # A failure: the office did not answer usefully. The backoff its destination gets, should this
    # failure open the circuit: the step is how far past the threshold its consecutive failures are.
    step = max(1, claim.destination_failures + 1 - breaker_threshold + 1)
    failed = replace(base, reason=outcome.reason, reset_destination=False,
                     breaker_threshold=breaker_threshold, backoff_s=policy.delay(step))
    due = policy.next_attempt(attempts=claim.attempts, now=attempt.finished, expires_at=claim.expires_at,
                              retry_after_s=outcome.retry_after)
    if due is None:
        return replace(failed, outcome="dead",
                       details={"recipient": claim.recipient, "reason": outcome.reason,
                                "attempts": claim.attempts})
    return replace(failed, outcome="retry", due_at=due,
                   details={"recipient": claim.recipient, "reason": outcome.reason, "attempt": claim.attempts,
                            "next_attempt_at": due.isoformat()})
