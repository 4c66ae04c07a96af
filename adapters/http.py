"""What the HTTP adapters (push, e-CMS node) share: the table of HTTP statuses worth retrying,
reading Retry-After, and the table of transport failures that mean "try again later" (timeouts,
refused or reset connections)."""

from __future__ import annotations

import asyncio

import aiohttp

from adapters.base import Retry

#: Exceptions of one attempt that are the network's or the office's fault, never the letter's.
TRANSPORT_ERRORS = (asyncio.TimeoutError, aiohttp.ClientError, OSError)


#: Statuses that mean "try again later"; every other 4xx is permanent.
RETRYABLE_4XX = frozenset({408, 425, 429})


def classify_http_status(status: int) -> str:
    """``ok`` (2xx), ``retry`` (408/425/429/5xx) or ``permanent`` (other 4xx, 3xx, 1xx)."""
    if 200 <= status < 300:
        return "ok"
    if status in RETRYABLE_4XX or status >= 500:
        return "retry"
    return "permanent"


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header in its delta-seconds form (HTTP-dates are ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def transport_retry(exc: BaseException) -> Retry:
    if isinstance(exc, asyncio.TimeoutError):
        return Retry("timeout")
    if isinstance(exc, aiohttp.ClientError):
        return Retry(f"connection: {type(exc).__name__}: {exc}"[:300])
    return Retry(f"connection: {exc}"[:300])
