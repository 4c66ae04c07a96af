"""One process seals at a time: the leader holds a session advisory lock; a standby takes over when it goes."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg

from gateway.audit import live
from gateway.audit.sealer import LEADER_LOCK, ChainSealer, SealerSettings
from gateway.core.clock import FakeClock
from gateway.storage import db
from tests.audit.test_chain import add

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.05


def _sealer(pool, dsn, signer=None, interval=INTERVAL):
    async def connect():
        return await asyncpg.connect(dsn)
    return ChainSealer(pool, clock=FakeClock(), signer=signer, connect=connect,
                       settings=SealerSettings(interval_s=interval))


async def _holder(pool):
    """The backend pid holding the leader lock, if any (a bigint key is classid:objid, objsubid 1)."""
    return await pool.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND classid::bigint = $1 AND objid::bigint = $2", LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFF_FFFF)


async def _until(what, check, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)


async def _no_holder(pool):
    return await _holder(pool) is None


async def _sealed_through(pool, seq):
    return (await live.status(pool)).head_seq >= seq


async def test_one_leader_and_the_lock_moves_on_when_its_connection_is_killed(pool, database_url, signer):
    other = await db.create_pool(database_url, min_size=1, max_size=4)  # a second process, as the database sees it
    sealers = [_sealer(pool, database_url, signer), _sealer(other, database_url, signer)]
    tasks = [asyncio.create_task(s.run()) for s in sealers]

    async def one_leader(not_pid=None):
        pid = await _holder(pool)
        leaders = [s for s in sealers if s.leading]
        return (pid is not None and pid != not_pid and len(leaders) == 1
                and leaders[0]._lock_conn.get_server_pid() == pid)

    try:
        await _until("nobody leads", one_leader)
        await asyncio.sleep(5 * INTERVAL)  # the standby has asked again meanwhile
        assert await one_leader()
        await add(pool, 5)
        await _until("the leader did not seal", lambda: _sealed_through(pool, 5))

        pid = await _holder(pool)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        # either sealer may win the lock now (the old leader reconnects), but only one
        await _until("nobody took over", lambda: one_leader(not_pid=pid), timeout=5)
        await add(pool, 5)
        await _until("sealing stopped with the old lock connection", lambda: _sealed_through(pool, 10))
        await asyncio.sleep(5 * INTERVAL)
        assert await one_leader(not_pid=pid)
    finally:
        for s in sealers:
            s.stop()
        await asyncio.gather(*tasks)
        await other.close()
    # the server ends the session (and drops its locks) just after the client has closed it
    await _until("stopping did not release the leader lock", lambda: _no_holder(pool))
    rep = await live.verify_database(pool, signer.certificate)
    assert rep.ok and rep.events == 10, rep.summary()


CHILD = textwrap.dedent("""
    import asyncio, sys
    import asyncpg
    from gateway.audit.sealer import ChainSealer, SealerSettings
    from gateway.core.clock import SystemClock
    from gateway.storage import db

    async def main(dsn):
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        async def connect():
            return await asyncpg.connect(dsn)
        await ChainSealer(pool, clock=SystemClock(), connect=connect,
                          settings=SealerSettings(interval_s=0.05)).run()

    asyncio.run(main(sys.argv[1]))
""")


async def test_a_killed_leader_process_is_replaced_within_a_round(pool, database_url, signer):
    child = subprocess.Popen([sys.executable, "-c", CHILD, database_url], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        await _until("the child process did not become the leader", lambda: _holder(pool), timeout=30)
        await add(pool, 4)
        await _until("the child did not seal", lambda: _sealed_through(pool, 4))
        sealer = _sealer(pool, database_url, signer)
        task = asyncio.create_task(sealer.run())
        try:
            await asyncio.sleep(5 * INTERVAL)
            assert not sealer.leading, "two leaders at once"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await _until("no takeover after the leader was killed", lambda: asyncio.sleep(0, sealer.leading))
            took = loop.time() - killed_at
            await add(pool, 4)
            await _until("sealing did not go on", lambda: _sealed_through(pool, 8))
        finally:
            sealer.stop()
            await task
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert took < 2.0, f"took over after {took:.2f} s"
    rep = await live.verify_database(pool, signer.certificate)
    assert rep.ok and rep.events == 8, rep.summary()


async def test_one_off_rounds_still_run_while_a_leader_holds_its_lock(pool, database_url, sealer, signer):
    """``gateway audit export --checkpoint`` next to a running ``gateway serve``."""
    leader = _sealer(pool, database_url, signer, interval=3600)  # leads, then sleeps: the one-off round is alone
    task = asyncio.create_task(leader.run())
    try:
        await _until("nobody leads", lambda: asyncio.sleep(0, leader.leading))
        await add(pool, 3)
        assert await sealer.seal_until(3) == 3  # the first checkpoint, at 3
        await add(pool, 2)
        assert await sealer.seal_until(5) == 5  # not due yet at 5 (every 5 events)
        r = await sealer.seal_once(force_checkpoint=True)
        assert r.locked and r.checkpoint_id is not None and r.head_seq == 5
    finally:
        leader.stop()
        await task


async def test_a_standby_still_seals_now_and_then_when_the_lock_is_held_by_no_sealer(pool, database_url, signer):
    """A session left holding the leader lock (a transaction-mode pooler keeps it on a server connection)."""
    stuck = await asyncpg.connect(database_url)
    assert await stuck.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK)

    async def connect():
        return await asyncpg.connect(database_url)
    sealer = ChainSealer(pool, clock=FakeClock(), signer=signer, connect=connect,
                         settings=SealerSettings(interval_s=INTERVAL, standby_round_every=4))
    task = asyncio.create_task(sealer.run())
    try:
        await add(pool, 3)
        await _until("nobody sealed while the lock was stuck", lambda: _sealed_through(pool, 3), timeout=5)
        assert not sealer.leading
    finally:
        sealer.stop()
        await task
        await stuck.close()
