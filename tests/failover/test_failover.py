"""The gateway keeps its promise when the PostgreSQL primary is lost and a synchronous standby takes over.

Two ``gateway serve`` processes on a primary and a synchronous standby (one
multi-host URL with ``target_session_attrs=read-write``); clients submit
letters under load; the primary gets SIGKILL mid-load; five seconds later the
standby is promoted; the clients retry with the same message ids. See
:mod:`tests.failover.scenario` for the books. ``bench/failover.py`` runs the
same scenario longer and prints figures.
"""

from __future__ import annotations

import pytest

from tests.failover.scenario import RECOVERY_LIMIT_S, FailoverWorld, failover_scenario

pytestmark = pytest.mark.slow


async def test_a_failover_to_a_synchronous_standby_loses_no_accepted_letter_and_delivers_each_once() -> None:
    world = FailoverWorld(processes=2)
    try:
        await world.open()
        r = await failover_scenario(world, before_s=4.0, down_s=5.0, after_s=5.0, clients=6,
                                    settle_timeout_s=60.0)
        why = f"{r}\n{world.logs_tail()}"
        # the failover really happened under load: letters were accepted before it, and the outage outlasted
        # the gateway's own retry of an accept (3 s), so senders were answered 503 and sent the same letter again
        assert r.accepted_before_kill > 10, why
        assert r.retries.get("503", 0) > 0, "no sender was ever told to come back: " + why
        # the gateway takes letters again within 30 s of the promotion
        assert r.recover_s < RECOVERY_LIMIT_S and r.accepted_after_promotion > 0, why
        # no 202 for a letter the new primary does not hold; every accepted letter delivered exactly once
        assert r.missing_in_db == 0, why
        assert r.lost == 0 and r.delivered == r.expected, why
        assert r.duplicates == 0, why
        assert r.dead == 0 and not r.refused and r.unresolved == 0, why
        assert r.receipts == r.expected and r.receipt_duplicates == 0, why
        # and the audit chain verifies across the failover
        assert r.audit_problems == [] and r.audit_events > r.accepted, why
        print(f"\nfailover: {r}")
    finally:
        await world.close()
