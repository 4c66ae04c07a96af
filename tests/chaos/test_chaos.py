"""A short chaos run as a test: two SIGKILLs, one PostgreSQL crash, five unruly offices.

The same harness as ``bench/chaos.py`` (see :mod:`tests.chaos.harness`), in a
bounded scenario. It crashes PostgreSQL, so it never uses the session's shared
server: the world brings its own embedded server and stops it by pid.
"""

from __future__ import annotations

import pytest

from tests.chaos.harness import UNRULY, World, crash_scenario, office_scenario

pytestmark = pytest.mark.slow


async def test_kills_and_a_database_crash_lose_nothing_and_unruly_offices_get_everything_after_recovery():
    world = World(processes=2)
    try:
        await world.open()
        crash = await crash_scenario(world, seconds=14.0, clients=6, kill_every_s=5.0, pg_restarts=1,
                                     pg_down_s=1.0, settle_timeout_s=60.0)
        why = f"{crash}\n{world.logs_tail()}"
        # the chaos really happened, under load
        assert crash.kills >= 2 and crash.pg_restarts == 1, why
        assert crash.accepted > 20, why
        assert crash.retries.get("connection", 0) > 0, "no client ever saw a gateway die: " + why
        # and nothing accepted was lost, held back, or delivered twice
        assert crash.missing_in_db == 0, why
        assert crash.lost == 0 and crash.delivered == crash.expected, why
        assert crash.duplicates == 0, why
        assert crash.dead == 0 and not crash.refused and crash.unresolved == 0, why
        assert crash.receipts == crash.expected and crash.receipt_duplicates == 0, why
        assert crash.audit_problems == [] and crash.audit_events > crash.accepted, why

        offices = await office_scenario(world, window_s=3.0, pairs=1, rate=8.0)
        why = f"{offices}\n{world.logs_tail()}"
        assert offices.letters >= 40 and offices.samples[0] > 0 and offices.samples[1] > 0, why
        # the unruly offices really refused: each was tried more often than there were letters
        for kind in ("error", "reset", "hang"):
            assert offices.attempts[kind] > offices.letters, why
        # and after recovery every letter reached every office, once by delivery id
        assert offices.undelivered == 0 and offices.duplicates == 0 and offices.dead == 0, why
        assert set(offices.attempts) == set(UNRULY)
        print(f"\ncrash: {crash}\noffices: {offices} latency x{offices.ratio:.3f}")
    finally:
        await world.close()
