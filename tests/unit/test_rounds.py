"""gateway.core.rounds: the life every background job of ``gateway serve`` shares."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog.testing

from gateway.core.rounds import pause, run_rounds


async def test_more_runs_at_once_failures_wait_and_stop_ends_the_loop() -> None:
    stop = asyncio.Event()
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    script = [True, True, asyncpg.CannotConnectNowError("away"), ValueError("a bug"), False]

    async def round_() -> bool:
        calls.append(loop.time())
        step = script[len(calls) - 1] if len(calls) <= len(script) else False
        if len(calls) == len(script):
            stop.set()
        if isinstance(step, Exception):
            raise step
        return step

    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(run_rounds(round_, stop, interval_s=0.2, what="test job",
                                          log=structlog.get_logger()), timeout=5)
    assert len(calls) == len(script)
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[0] < 0.1 and gaps[1] < 0.1  # more waiting: the next round at once
    assert gaps[2] >= 0.19 and gaps[3] >= 0.19  # a failed round waits the interval, then tries again
    assert [(e["log_level"], e["event"]) for e in logs] == [("warning", "test job failed; retrying"),
                                                           ("error", "test job failed; retrying")]
    assert "CannotConnectNowError: away" in logs[0]["error"] and logs[1].get("exc_info")


async def test_pause_says_whether_the_job_is_stopping() -> None:
    stop = asyncio.Event()
    assert await pause(stop, 0.01) is False
    stop.set()
    assert await pause(stop, 10) is True
