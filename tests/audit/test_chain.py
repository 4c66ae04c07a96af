"""The chain in the database: sealing, gaps, concurrency and tampering named by the verifier."""

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest
import structlog.testing

from gateway.audit import live
from gateway.audit.chain import chain_hash, leaf_hash
from gateway.audit.sealer import ChainSealer, SealerSettings
from gateway.core.clock import FakeClock
from gateway.storage import audit

AT = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


async def add(pool, n, kind="test.event", **details):
    for i in range(n):
        await audit.append(pool, at=AT + dt.timedelta(seconds=i), actor="test", kind=kind,
                           message_pk=i, delivery_id=uuid.uuid4(), details={"i": i, "หัวข้อ": "ทดสอบ", **details})


async def test_seals_in_seq_order_and_checkpoints_verify(pool, sealer, signer):
    await add(pool, 12)
    head = await sealer.seal_until(await pool.fetchval("SELECT max(seq) FROM audit_events"))
    assert head == 12
    st = await live.status(pool)
    assert (st.head_seq, st.count, st.unsealed) == (12, 12, 0)
    assert st.last_checkpoint_seq is not None
    rep = await live.verify_database(pool, signer.certificate)
    assert rep.ok, rep.summary()
    assert rep.events == 12 and rep.checkpoints >= 1


async def test_rolled_back_numbers_are_gaps_linked_over(pool, sealer, signer):
    await add(pool, 2)
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        await audit.append(conn, at=AT, actor="test", kind="rolled.back")
        await tr.rollback()
    await add(pool, 2)
    await sealer.seal_until(5)
    prevs = [tuple(r) for r in await pool.fetch("SELECT seq, prev_seq FROM audit_chain ORDER BY seq")]
    assert prevs == [(1, 0), (2, 1), (4, 2), (5, 4)]
    assert (await live.verify_database(pool, signer.certificate)).ok


async def test_an_open_transaction_holding_a_lower_seq_holds_the_head_back(pool, signer):
    """The flaw of the xmin-only rule: seq 2's writer is older than seq 1's holder."""
    sealer = ChainSealer(pool, clock=FakeClock(), signer=signer)
    async with pool.acquire() as older, pool.acquire() as holder:
        t_older = older.transaction()
        await t_older.start()
        await older.execute("SELECT pg_current_xact_id()")  # older xid, no seq yet
        t_holder = holder.transaction()
        await t_holder.start()
        await audit.append(holder, at=AT, actor="test", kind="held")      # seq 1, still open
        await audit.append(older, at=AT, actor="test", kind="committed")  # seq 2
        await t_older.commit()
        for _ in range(3):
            r = await sealer.seal_once()
            assert r.head_seq == 0, "sealed past a number an open transaction holds"
        await t_holder.commit()
    assert await sealer.seal_until(2) == 2
    assert [r["seq"] for r in await pool.fetch("SELECT seq FROM audit_chain ORDER BY seq")] == [1, 2]


async def test_a_write_transaction_in_another_database_does_not_hold_the_head_back(pool, sealer, pg_admin_dsn):
    """Only this database's writers can hold an audit number: a long write transaction of another database
    on the same server (a batch job, a migration) must not stall sealing until it ends."""
    other = await asyncpg.connect(pg_admin_dsn)
    try:
        t_other = other.transaction()
        await t_other.start()
        await other.execute("SELECT pg_current_xact_id()")  # an xid, held open, in the server's other database
        await add(pool, 3)
        assert await sealer.seal_until(3, timeout=3) == 3
        await t_other.rollback()
    finally:
        await other.close()


async def test_an_open_transaction_that_holds_no_audit_number_does_not_hold_the_head_back(pool, sealer):
    """A transaction of this database with an xid and no audit number (say a console job that wrote
    elsewhere) cannot commit an event numbered at or below the sequence's value read now: any number it
    takes later is higher. It must not stall sealing; one that holds a number still does (above)."""
    async with pool.acquire() as idle:
        t_idle = idle.transaction()
        await t_idle.start()
        await idle.execute("SELECT pg_current_xact_id()")
        await add(pool, 3)
        assert await sealer.seal_until(3, timeout=3) == 3
        await audit.append(idle, at=AT, actor="test", kind="late")  # seq 4: its number is above the head
        await t_idle.commit()
    assert await sealer.seal_until(4, timeout=3) == 4
    assert [r["seq"] for r in await pool.fetch("SELECT seq FROM audit_chain ORDER BY seq")] == [1, 2, 3, 4]


async def test_a_transaction_holding_the_head_back_is_named_in_the_log(pool, signer):
    """The operator paged at night for the sealing lag finds which session holds it back (its pid, its
    application, since when) in the sealer's warning, not only in a gauge."""
    sealer = ChainSealer(pool, clock=FakeClock(), signer=signer, settings=SealerSettings(held_warning_s=0))
    async with pool.acquire() as holder:
        t_holder = holder.transaction()
        await t_holder.start()
        await audit.append(holder, at=AT, actor="test", kind="held")  # seq 1, still open
        pid = await holder.fetchval("SELECT pg_backend_pid()")
        await add(pool, 1)
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                assert (await sealer.seal_once()).head_seq == 0
        held = [e for e in logs if e["event"].startswith("audit sealing is held back")]
        assert held and held[-1]["log_level"] == "warning"
        assert [h["pid"] for h in held[-1]["holders"]] == [pid]
        assert held[-1]["fence_seq"] == 2
        await t_holder.commit()
    with structlog.testing.capture_logs() as logs:
        assert await sealer.seal_until(2) == 2
    assert not [e for e in logs if e["event"].startswith("audit sealing is held back")]


async def test_concurrent_writers_and_sealers_give_one_chain(pool, signer):
    sealers = [ChainSealer(pool, clock=FakeClock(), signer=signer,
                           settings=SealerSettings(interval_s=0.01, checkpoint_events=50)) for _ in range(3)]
    tasks = [asyncio.create_task(s.run()) for s in sealers]

    async def writer(w):
        for i in range(60):
            async with pool.acquire() as conn:
                tr = conn.transaction()
                await tr.start()
                await audit.append(conn, at=AT, actor=f"w{w}", kind="x", details={"i": i})
                if i % 7 == 3:
                    await tr.rollback()
                else:
                    await asyncio.sleep(0.001 * (i % 3))  # interleave commit order with seq order
                    await tr.commit()

    await asyncio.gather(*(writer(w) for w in range(6)))
    expected = await pool.fetchval("SELECT count(*) FROM audit_events")
    last = await pool.fetchval("SELECT max(seq) FROM audit_events")
    deadline = asyncio.get_running_loop().time() + 10
    while (await live.status(pool)).head_seq < last:
        assert asyncio.get_running_loop().time() < deadline, "sealing did not catch up"
        await asyncio.sleep(0.02)
    for s in sealers:
        s.stop()
    await asyncio.gather(*tasks)
    chain = await pool.fetch("SELECT seq, prev_seq FROM audit_chain ORDER BY seq")
    assert len(chain) == expected
    assert all(b["prev_seq"] == a["seq"] for a, b in zip(chain, chain[1:], strict=False)), "fork or gap in the chain"
    await ChainSealer(pool, clock=FakeClock(), signer=signer).seal_once(force_checkpoint=True)
    rep = await live.verify_database(pool, signer.certificate)
    assert rep.ok, rep.summary()


TAMPER = [
    ("edit", "UPDATE audit_events SET details = '{\"i\": 99}' WHERE seq = 4", {(4, "edited")}),
    ("delete", "DELETE FROM audit_events WHERE seq = 4", {(4, "deleted")}),
    ("delete with chain row", "DELETE FROM audit_events WHERE seq = 4; DELETE FROM audit_chain WHERE seq = 4",
     {(4, "deleted")}),
    ("swap", "UPDATE audit_events e SET details = o.details FROM audit_events o "
             "WHERE (e.seq, o.seq) IN ((4, 5), (5, 4))", {(4, "edited"), (5, "edited")}),
    ("insert", "INSERT INTO audit_events (seq, at, actor, kind, details) "
               "VALUES (3000, now(), 'mallory', 'x', '{}'); UPDATE audit_chain_head SET seq = 4000",
     {(3000, "inserted")}),
]


@pytest.mark.parametrize("name,sql,expected", TAMPER, ids=[t[0] for t in TAMPER])
async def test_tampering_in_the_database_is_named(pool, sealer, signer, name, sql, expected):
    await add(pool, 10)
    await sealer.seal_until(10)
    await sealer.seal_once(force_checkpoint=True)
    await pool.execute(sql)
    rep = await live.verify_database(pool, signer.certificate)
    assert not rep.ok
    assert expected <= rep.codes(), rep.summary()


async def test_rehashed_chain_is_caught_by_the_signed_checkpoint(pool, sealer, signer):

    await add(pool, 10)
    await sealer.seal_until(10)
    await sealer.seal_once(force_checkpoint=True)
    await pool.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    prev = bytes(await pool.fetchval("SELECT hash FROM audit_chain WHERE seq = 2"))
    for r in await pool.fetch("SELECT * FROM audit_events WHERE seq >= 3 ORDER BY seq"):
        leaf = leaf_hash(r)
        prev = chain_hash(prev, leaf)
        await pool.execute("UPDATE audit_chain SET leaf = $2, hash = $3 WHERE seq = $1", r["seq"], leaf, prev)
    rep = await live.verify_database(pool, signer.certificate)
    assert any(p.code == "checkpoint" and p.seq == 10 for p in rep.problems), rep.summary()


async def test_a_forged_checkpoint_signature_is_named(pool, sealer, signer):
    await add(pool, 6)
    await sealer.seal_until(6)
    await sealer.seal_once(force_checkpoint=True)
    await pool.execute("UPDATE audit_checkpoints SET signature = overlay(signature placing '\\x00'::bytea from 5)")
    rep = await live.verify_database(pool, signer.certificate)
    assert any(p.code == "checkpoint" and "signature" in p.message for p in rep.problems), rep.summary()
