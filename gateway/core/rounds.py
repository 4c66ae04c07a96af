"""Background jobs that work in rounds inside ``gateway serve`` (the audit sealer, the statistics
rollup, the search filler, the validation-pending re-check).

Each has the same life: run a round; if the round says more work is waiting, run the next at
once; otherwise wait ``interval_s`` or until the job is stopped. A round that fails is logged
and tried again after the interval: the database being away (a failover, a restart) is an
expected warning, anything else is a bug logged with its traceback. Only cancellation ends the
loop early.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

#: Failures a job expects now and then: the database or the network away for a while.
TRANSIENT = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; whether the job is stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def run_rounds(round_: Callable[[], Awaitable[bool]], stop: asyncio.Event, *, interval_s: float,
                     what: str, log: Any) -> None:
    """Call ``round_`` (``True``: more is waiting) until ``stop`` is set; ``what`` names the job in logs."""
    while not stop.is_set():
        more = False
        try:
            more = await round_()
        except asyncio.CancelledError:
            raise
        except TRANSIENT as exc:
            log.warning(f"{what} failed; retrying", error=f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception(f"{what} failed; retrying")
        if not more and await pause(stop, interval_s):
            return
