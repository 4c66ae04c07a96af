import asyncio

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.http.api import error_middleware
from gateway.http.errors import status_for
from gateway.intake.limits import Admission, LoginThrottle, Throttled, TokenBucket


class Time:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_token_bucket_allows_a_burst_then_the_rate():
    t = Time()
    b = TokenBucket(rate=10, burst=3, now=t)
    assert [b.take() for _ in range(3)] == [0, 0, 0]
    assert b.take() == pytest.approx(0.1)
    t.t += 0.1
    assert b.take() == 0


async def test_per_agency_limit_is_per_agency_and_says_when_to_retry():
    t = Time()
    a = Admission(rate_per_agency=1, burst=2, max_queue_depth=0, depth=None, now=t)
    await a.admit("A")
    await a.admit("A")
    with pytest.raises(Throttled) as e:
        await a.admit("A")
    assert status_for(e.value.code) == 429 and e.value.code == "throttled.agency" and e.value.retry_after == 1
    await a.admit("B")  # another agency is unaffected


async def test_queue_depth_limit_reads_the_database_at_most_once_a_second():
    t = Time()
    reads = []

    async def depth():
        reads.append(t.t)
        return 11

    a = Admission(rate_per_agency=0, burst=1, max_queue_depth=10, depth=depth, now=t)
    with pytest.raises(Throttled) as e:
        await a.admit("A")
    assert e.value.code == "throttled.queue_full"
    for _ in range(5):
        with pytest.raises(Throttled):
            await a.admit("A")
    await asyncio.sleep(0)
    assert len(reads) == 1


def test_login_throttle_stops_guessing_per_user_and_per_address():

    t = [1000.0]
    throttle = LoginThrottle(per_user=3, per_address=5, window_s=60, now=lambda: t[0])
    for _ in range(3):
        throttle.check("somchai", "10.0.0.1")
        throttle.failed("somchai", "10.0.0.1")
    with pytest.raises(Throttled) as e:
        throttle.check("somchai", "10.0.0.2")  # from anywhere: the username is what is guessed
    assert e.value.code == "auth.too_many_attempts" and 1 <= e.value.retry_after <= 60
    throttle.check("malee", "10.0.0.3")  # other users are unaffected
    for name in ("a", "b"):
        throttle.failed(name, "10.0.0.1")
    with pytest.raises(Throttled):
        throttle.check("c", "10.0.0.1")  # one address spraying usernames
    t[0] += 61  # the window passes
    throttle.check("somchai", "10.0.0.1")
    throttle.failed("malee", "10.0.0.9")
    throttle.succeeded("malee")
    throttle.check("malee", "10.0.0.9")


async def test_a_database_restart_is_answered_503_not_500():


    async def crashing(request):  # what a backend says while PostgreSQL restarts after a crash
        raise asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another server process")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/x", crashing)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/x")
        assert r.status == 503 and (await r.json())["code"] == "unavailable.database"
        assert int(r.headers["Retry-After"]) >= 1
