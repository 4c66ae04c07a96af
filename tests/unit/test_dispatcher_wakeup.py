"""The dispatcher loop never loses a wake-up.

Found by the chaos harness's latency measurement: a letter committed while the
dispatcher's claim query was running (after the query's snapshot) woke the
dispatcher, the claim found nothing, and the loop then cleared the wake-up and
slept a whole poll interval (0.25 s by default) with that letter due. Only the
claim is replaced here; the loop is the real one, and nothing waits on time:
the poll interval is an hour, so only a kept wake-up can bring the second claim.
"""

from __future__ import annotations

import asyncio

from gateway.core.settings import DispatchSettings
from gateway.delivery.dispatcher import Dispatcher


class _ClaimWokenMidway(Dispatcher):
    """A dispatcher whose first claim is overtaken by a submission's wake-up."""

    def __init__(self) -> None:
        # nothing but the loop runs: no database, directory or adapters are reached
        super().__init__(pool=None, directory=None, adapters={}, retry=None, receipts=None, clock=None,
                         metrics=None, settings=DispatchSettings(poll_interval_s=3600.0), worker="test")
        self.claims = 0
        self.claimed_again = asyncio.Event()

    async def dispatch_once(self) -> int:
        self.claims += 1
        if self.claims == 1:
            await asyncio.sleep(0)  # the claim query is in flight ...
            self.wake()  # ... when a letter commits and wakes the dispatcher
            return 0  # the query's snapshot did not see that letter
        self.claimed_again.set()
        return 0


async def test_a_wake_up_during_a_claim_makes_the_dispatcher_claim_again_at_once():
    d = _ClaimWokenMidway()
    task = asyncio.create_task(d.run())
    try:
        await asyncio.wait_for(d.claimed_again.wait(), timeout=10)
        assert d.claims == 2
    finally:
        await d.stop()
        await asyncio.wait_for(task, timeout=10)


async def test_without_a_wake_up_the_dispatcher_waits_for_the_poll():
    d = _ClaimWokenMidway()
    d.claims = 1  # the first claim behaves as later ones do (no wake-up): nothing more to do
    task = asyncio.create_task(d.run())
    try:
        # the loop claimed once (setting claimed_again) and now sleeps on the hour-long poll
        await asyncio.wait_for(d.claimed_again.wait(), timeout=10)
        for _ in range(100):
            await asyncio.sleep(0)  # let the loop run, were it spinning
        assert d.claims == 2
    finally:
        await d.stop()
        await asyncio.wait_for(task, timeout=10)
