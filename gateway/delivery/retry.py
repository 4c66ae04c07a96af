"""Retry policy: which outcomes back off, and when to try again or give up.

A small frozen object with one method, :meth:`RetryPolicy.next_attempt`, that
answers "retry at this time" or "give up" (``None``). Which outcomes are worth
retrying is an explicit table (:func:`adapters.http.classify_http_status`): a 4xx from a
receiver is permanent (the letter will not become acceptable by resending),
408/425/429 and 5xx back off, and so do timeouts and connection errors (the
adapters classify those).

Delays grow exponentially from ``initial_delay_s`` by ``multiplier`` up to
``max_delay_s``, each scaled by a random factor in ``[1-jitter, 1+jitter]`` so
that offices coming back after an outage are not hit by a synchronised storm.
The random source is passed in so tests are deterministic. A receiver's
``Retry-After`` is honoured when it asks for longer than the schedule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass, field

from gateway.core.settings import RetrySettings


@dataclass(frozen=True)
class RetryPolicy(RetrySettings):
    """The configured schedule (:class:`gateway.core.settings.RetrySettings`) with its random source."""

    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    """Random source for jitter (seeded in tests)."""

    @classmethod
    def from_settings(cls, s: RetrySettings, rng: random.Random | None = None) -> RetryPolicy:
        return cls(**dataclasses.asdict(s), rng=rng or random.Random())

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts (1-based)."""
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempts - 1))
        factor = 1.0 + self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0
        return max(0.0, base * factor)

    def next_attempt(self, *, attempts: int, now: dt.datetime, expires_at: dt.datetime,
                     retry_after_s: float | None = None) -> dt.datetime | None:
        """When to try again after ``attempts`` failed attempts, or ``None`` to give up."""
        if attempts >= self.max_attempts:
            return None
        wait = self.delay(attempts)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_delay_s))
        at = now + dt.timedelta(seconds=wait)
        if at >= expires_at:
            return None
        return at
