"""The pure delivery decision: every outcome x attempt count x time to live, no database."""

import datetime as dt
import itertools
import random
import uuid

import pytest

from adapters.base import Delivered, Permanent, Retry
from gateway.delivery.retry import RetryPolicy
from gateway.delivery.transitions import Attempt, decide
from gateway.storage.deliveries import ClaimedDelivery

NOW = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
OUTCOMES = [Delivered(), Delivered(ack=b"<Ack/>", facts={"signed": True}), Retry("HTTP 503"),
            Retry("HTTP 429", retry_after=600.0), Retry("timeout", retry_after=10_000.0), Permanent("HTTP 400")]
TTLS = [dt.timedelta(seconds=1), dt.timedelta(minutes=5), dt.timedelta(hours=1), dt.timedelta(days=3)]


def claim(attempts: int, ttl: dt.timedelta, failures: int = 0) -> ClaimedDelivery:
    return ClaimedDelivery(id=uuid.UUID(int=attempts), message_pk=7, recipient="1550100000", route="push",
                           attempts=attempts, created_at=NOW - dt.timedelta(minutes=1), expires_at=NOW + ttl,
                           message_id="m-1", sender="0100000000", message_type="letter", forwarded=b"<E/>",
                           parts=0, destination_failures=failures, conversation_id="c-1")


def policy() -> RetryPolicy:
    return RetryPolicy(initial_delay_s=30, multiplier=2, max_delay_s=3600, jitter=0.2, max_attempts=6,
                       rng=random.Random(1))


@pytest.mark.parametrize("outcome,attempts,ttl", list(itertools.product(OUTCOMES, range(1, 9), TTLS)))
def test_every_outcome_attempt_and_time_to_live(outcome, attempts, ttl):
    c = claim(attempts, ttl)
    p = policy()
    t = decide(outcome, c, p, Attempt("w1", NOW - dt.timedelta(seconds=2), NOW), breaker_threshold=3,
               receipt=b"<R/>")
    assert (t.delivery_id, t.worker, t.attempt, t.at, t.actor) == (c.id, "w1", attempts, NOW, "gateway")
    assert t.started_at == NOW - dt.timedelta(seconds=2) and t.details["recipient"] == c.recipient
    if isinstance(outcome, Delivered):
        assert (t.outcome, t.reason, t.receipt, t.ack, t.reset_destination) == (
            "delivered", None, b"<R/>", outcome.ack, True)
        assert t.details["sha256"] == c.forwarded_sha256.hex()
        assert t.details.get("signed") == (True if outcome.facts else None)
        return
    if isinstance(outcome, Permanent):  # refused: dead at once, whatever the budget left; the office is up
        assert (t.outcome, t.permanent, t.reason, t.reset_destination) == ("dead", True, "HTTP 400", True)
        return
    expected = policy().next_attempt(attempts=attempts, now=NOW, expires_at=c.expires_at,
                                     retry_after_s=outcome.retry_after)
    assert t.reset_destination is False and t.permanent is False and t.reason == outcome.reason
    if attempts >= p.max_attempts or expected is None:
        assert (t.outcome, t.due_at) == ("dead", None)
        assert t.details == {"recipient": c.recipient, "reason": outcome.reason, "attempts": attempts}
    else:
        assert t.outcome == "retry" and t.due_at is not None and NOW < t.due_at < c.expires_at
        assert t.due_at - NOW >= dt.timedelta(seconds=min(outcome.retry_after or 0, p.max_delay_s))
        assert t.details["next_attempt_at"] == t.due_at.isoformat()


@pytest.mark.parametrize("failures,threshold,step", [(0, 3, 1), (2, 3, 1), (3, 3, 2), (9, 3, 8), (0, 1, 1)])
def test_a_failure_carries_the_backoff_its_destination_gets_past_the_threshold(failures, threshold, step):
    p = RetryPolicy(initial_delay_s=30, multiplier=2, max_delay_s=3600, jitter=0, max_attempts=6)
    t = decide(Retry("HTTP 502"), claim(1, dt.timedelta(days=1), failures), p, Attempt("w", NOW, NOW),
               breaker_threshold=threshold)
    assert (t.breaker_threshold, t.backoff_s) == (threshold, p.delay(step))


def test_the_decision_reads_no_clock_and_repeats_with_the_same_random_source():
    c = claim(2, dt.timedelta(days=1))
    a = decide(Retry("x"), c, policy(), Attempt("w", NOW, NOW), breaker_threshold=3)
    b = decide(Retry("x"), c, policy(), Attempt("w", NOW, NOW), breaker_threshold=3)
    assert a == b
