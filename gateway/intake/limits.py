"""Back-pressure: refuse new work early and politely, never drop accepted work.

Two limits answer 429 with ``Retry-After`` before a submission is even parsed:

* **per agency**: a token bucket per sending agency (``rate_per_agency``
  letters a second, bursts up to ``rate_burst``), so one runaway sender cannot
  take the gateway from the others. Buckets are per process; with N worker
  processes each gets ``1/N`` of the rate, so the total holds.
* **queue depth**: when the deliveries waiting to go out (queued, sending,
  retry-wait) exceed ``max_queue_depth``, new submissions wait. The depth is
  read from the database at most once a second by whoever asks first (one
  indexed count), never per request.

Pull inboxes do not count towards the queue: an office that is slow to fetch
holds its own letters, not the gateway's outbound capacity.

A request body has a deadline (:func:`body_deadline_s`), so a client that
trickles its body (slowloris) cannot hold a connection for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.errors import GatewayError
from gateway.core.settings import Settings


class Throttled(GatewayError):
    status = 429
    code = "throttled"

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after + 0.999))


@dataclass
class TokenBucket:
    rate: float
    burst: float
    now: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.stamp = self.now()

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        t = self.now()
        self.tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Admission:
    def __init__(self, *, rate_per_agency: float, burst: float, max_queue_depth: int,
                 depth: Callable[[], Awaitable[int]] | None, now: Callable[[], float] = time.monotonic,
                 workers: int = 1) -> None:
        self.rate = rate_per_agency / max(1, workers)
        self.burst = max(1.0, burst / max(1, workers))
        self.max_queue_depth = max_queue_depth
        self._depth_source = depth
        self._now = now
        self._buckets: dict[str, TokenBucket] = {}
        self._depth = 0
        self._depth_at = float("-inf")
        self._refresh: asyncio.Future[None] | None = None

    async def check_queue(self) -> None:
        """Only the queue-depth limit (before a large body is read; :meth:`admit` follows once it is)."""
        if self.max_queue_depth > 0 and self._depth > self.max_queue_depth:
            raise Throttled(f"the outbound queue holds {self._depth} deliveries; try again shortly",
                            code="throttled.queue_full", retry_after=5)

    async def admit(self, agency: str) -> None:
        if self.rate > 0:
            bucket = self._buckets.get(agency)
            if bucket is None:
                bucket = self._buckets[agency] = TokenBucket(self.rate, self.burst, self._now)
            wait = bucket.take()
            if wait:
                raise Throttled(f"agency {agency} is sending faster than its limit", code="throttled.agency",
                                retry_after=wait)
        if self.max_queue_depth > 0 and self._depth_source is not None:
            if self._now() - self._depth_at > 1.0 and (self._refresh is None or self._refresh.done()):
                first = self._refresh is None
                self._depth_at = self._now()
                self._refresh = asyncio.ensure_future(self._read_depth())
                if first:  # no depth known yet: wait for it once; later reads refresh in the background
                    await self._refresh
            if self._depth > self.max_queue_depth:
                raise Throttled(f"the outbound queue holds {self._depth} deliveries; try again shortly",
                                code="throttled.queue_full", retry_after=5)

    async def _read_depth(self) -> None:
        if self._depth_source is None:
            return
        try:
            self._depth = await self._depth_source()
        except Exception:  # the database answers elsewhere with 503; keep the last known depth
            pass


class LoginThrottle:
    """Failed console logins per username and per client address, in a sliding window.

    After ``per_user`` failures for one username (or ``per_address`` from one address) within
    ``window_s``, further attempts are refused with 429 until the oldest failure leaves the window,
    whatever the password: guessing stops even when a guess would have been right. A success
    clears that username's failures. Per process, like the token buckets.
    """

    def __init__(self, *, per_user: int = 5, per_address: int = 20, window_s: float = 900.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.per_user, self.per_address, self.window_s, self._now = per_user, per_address, window_s, now
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        cutoff = self._now() - self.window_s
        times = [t for t in self._failures.get(key, ()) if t > cutoff]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def check(self, username: str, address: str) -> None:
        for key, limit in ((("user", username), self.per_user), (("address", address), self.per_address)):
            times = self._recent(key)
            if len(times) >= limit:
                raise Throttled("too many failed logins; wait before trying again", code="auth.too_many_attempts",
                                retry_after=times[0] + self.window_s - self._now())

    def failed(self, username: str, address: str) -> None:
        now = self._now()
        for key in (("user", username), ("address", address)):
            self._failures.setdefault(key, []).append(now)
        if len(self._failures) > 100_000:  # bounded memory under a spray of usernames
            for key in list(self._failures)[:50_000]:
                self._recent(key)

    def succeeded(self, username: str) -> None:
        self._failures.pop(("user", username), None)


def body_deadline_s(app: web.Application, content_length: int | None, largest: int) -> float:
    """Seconds a request body may take: ``GATEWAY_BODY_TIMEOUT_S`` plus its declared size (else
    ``largest``) at ``GATEWAY_BODY_MIN_RATE``; the defaults for an app built without settings (an
    e-CMS facade on its own). Shared by the native API and the e-CMS endpoint."""
    settings = app.get(keys.SETTINGS)
    timeout_s = settings.body_timeout_s if settings is not None else Settings.body_timeout_s
    min_rate = settings.body_min_rate if settings is not None else Settings.body_min_rate
    return timeout_s + (content_length if content_length is not None else largest) / min_rate
