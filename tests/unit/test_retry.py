import datetime as dt
import random

import pytest

from adapters.http import classify_http_status
from gateway.delivery.retry import RetryPolicy

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
FAR = NOW + dt.timedelta(days=30)


@pytest.mark.parametrize("status,verdict", [
    (200, "ok"), (202, "ok"), (400, "permanent"), (403, "permanent"), (404, "permanent"), (409, "permanent"),
    (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (301, "permanent")])
def test_which_statuses_back_off(status, verdict):
    assert classify_http_status(status) == verdict


def test_delays_grow_and_are_capped():
    p = RetryPolicy(initial_delay_s=2, multiplier=2, max_delay_s=60, jitter=0)
    assert [p.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_jitter_stays_within_bounds_and_varies():
    p = RetryPolicy(initial_delay_s=10, multiplier=1, jitter=0.2, rng=random.Random(7))
    delays = [p.delay(1) for _ in range(200)]
    assert all(8 <= d <= 12 for d in delays)
    assert len({round(d, 3) for d in delays}) > 50


def test_gives_up_after_the_last_attempt():
    p = RetryPolicy(max_attempts=3, jitter=0)
    assert p.next_attempt(attempts=2, now=NOW, expires_at=FAR) == NOW + dt.timedelta(seconds=4)
    assert p.next_attempt(attempts=3, now=NOW, expires_at=FAR) is None


def test_gives_up_when_the_time_to_live_runs_out():
    p = RetryPolicy(initial_delay_s=100, jitter=0)
    assert p.next_attempt(attempts=1, now=NOW, expires_at=NOW + dt.timedelta(seconds=50)) is None


def test_retry_after_is_honoured_when_longer():
    p = RetryPolicy(initial_delay_s=1, jitter=0)
    assert p.next_attempt(attempts=1, now=NOW, expires_at=FAR, retry_after_s=30) == NOW + dt.timedelta(seconds=30)
