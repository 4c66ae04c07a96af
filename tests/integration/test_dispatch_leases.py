"""Leases under a slow destination: what one dispatcher holds, and claims that outlive their lease.

Real database, real office on loopback, fake clock. The office holds requests
at a gate, so deliveries pile up behind the per-destination limit exactly as
they do in front of an office that takes seconds per letter.
"""

import asyncio
import datetime as dt
import uuid

import pytest

from gateway.core import appkeys as keys
from gateway.core.settings import DispatchSettings
from gateway.storage import deliveries
from tests.support import CMI, OPM, TOKENS, Office, letter_bytes, wait_for


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


class GatedOffice(Office):
    """Holds each request until ``gate`` is set."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__(name="cmi")
        self.gate = gate
        self.parked = 0

    async def handle(self, request):
        await request.read()
        self.parked += 1
        await self.gate.wait()
        return await super().handle(request)


@pytest.fixture
async def gated():
    gate = asyncio.Event()
    office = await GatedOffice(gate).start()
    yield office
    gate.set()
    await office.stop()


async def sending(pool):
    return await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'sending'")


async def test_a_dispatcher_holds_at_most_its_concurrency_in_claims(make_client, gated, pool):
    """``concurrency`` bounds deliveries held, not destination groups: a process must not hoard
    the queue (claims it cannot start soon only wait out their lease while others stand idle)."""
    client = await make_client(routes={CMI: {"kind": "push", "url": gated.url}},
                               dispatch=DispatchSettings(enabled=False, concurrency=4, batch_size=4,
                                                         per_destination=2))
    for i in range(12):
        r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id=f"m-{i}"),
                              headers=auth())
        assert r.status == 202
    d = client.app[keys.DISPATCHER]
    claimed = [await d.dispatch_once() for _ in range(6)]  # what the loop does while claims keep coming
    assert sum(claimed) == 4 and await sending(pool) == 4, claimed
    gated.gate.set()
    await d.drain()
    while await d.dispatch_once():
        await d.drain()
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'delivered' "
                               "AND recipient = $1", CMI) == 12
    assert len(gated.seen) == len(set(gated.seen)) == 12


async def test_a_destination_gets_per_destination_requests_at_once_across_claims(make_client, gated, pool):
    """Two claimed batches for one office: ``per_destination`` requests at the office at once, never
    more (the limit holds across batches) and never fewer while deliveries wait; each sent once."""
    client = await make_client(routes={CMI: {"kind": "push", "url": gated.url}},
                               dispatch=DispatchSettings(enabled=False, concurrency=16, batch_size=4,
                                                         per_destination=3))
    for i in range(7):
        r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id=f"m-{i}"),
                              headers=auth())
        assert r.status == 202
    d = client.app[keys.DISPATCHER]
    assert await d.dispatch_once() == 4
    await wait_for(lambda: gated.parked == 3, what="three deliveries of the first batch at the office")
    assert await d.dispatch_once() == 3
    await asyncio.sleep(0.3)
    assert gated.parked == 3 and await sending(pool) == 7
    gated.gate.set()
    await d.drain()
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'delivered' "
                               "AND recipient = $1", CMI) == 7
    assert len(gated.seen) == len(set(gated.seen)) == 7


async def test_a_destination_is_served_in_the_order_its_deliveries_were_claimed(make_client, gated, pool):
    """Behind a slow office a later claim waits for the earlier one: the oldest leases go first (a later
    batch served alongside would leave the earlier one's leases to run out)."""
    client = await make_client(routes={CMI: {"kind": "push", "url": gated.url}},
                               dispatch=DispatchSettings(enabled=False, concurrency=16, batch_size=3,
                                                         per_destination=1))
    for i in range(6):
        r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id=f"m-{i}"),
                              headers=auth())
        assert r.status == 202
    d = client.app[keys.DISPATCHER]
    sending_ids = "SELECT id::text FROM deliveries WHERE status = 'sending'"
    assert await d.dispatch_once() == 3
    first = {r["id"] for r in await pool.fetch(sending_ids)}
    await wait_for(lambda: gated.parked == 1, what="the first delivery at the office")
    assert await d.dispatch_once() == 3
    second = {r["id"] for r in await pool.fetch(sending_ids)} - first
    gated.gate.set()
    await d.drain()
    assert len(gated.seen) == 6
    assert set(gated.seen[:3]) == first and set(gated.seen[3:]) == second


async def test_a_claim_whose_lease_ran_out_while_waiting_is_left_to_the_process_that_took_it(
        make_client, gated, pool, clock):
    """Another process claimed the delivery after its lease ran out: the stale holder neither sends it
    nor takes it back from that process."""
    client = await make_client(routes={CMI: {"kind": "push", "url": gated.url}},
                               dispatch=DispatchSettings(enabled=False, per_destination=1, lease_s=60,
                                                         request_timeout_s=30))
    for i in range(2):
        await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id=f"m-{i}"), headers=auth())
    d = client.app[keys.DISPATCHER]
    assert await d.dispatch_once() == 2
    await wait_for(lambda: gated.parked == 1, what="the first delivery at the office")  # the second waits
    clock.advance(61)  # both leases run out; another process claims both
    other = await deliveries.claim_due(pool, now=clock.now(), limit=10, lease=dt.timedelta(seconds=60),
                                       worker="other-process")
    assert len(other) == 2
    gated.gate.set()
    await d.drain()
    assert len(gated.seen) == 1, "only the delivery already on the wire when its lease ran out went out"
    waiting = await pool.fetchrow("SELECT status::text AS status, leased_by, attempts FROM deliveries "
                                  "WHERE recipient = $1 AND id <> $2", CMI, uuid.UUID(gated.seen[0]))
    assert dict(waiting) == {"status": "sending", "leased_by": "other-process", "attempts": 2}


async def test_a_stale_claim_never_hands_back_the_claim_that_replaced_it_under_the_same_name(
        make_client, gated, pool, clock):
    """The process that re-claims an expired lease may be this very one (same worker name), or a
    restarted ``--workers`` worker that reuses its predecessor's name. A claim is (worker, attempt):
    the stale copy must not release the live one, or the row would be queued again while its live
    holder sends it, and a third party could send it as well."""
    client = await make_client(routes={CMI: {"kind": "push", "url": gated.url}},
                               dispatch=DispatchSettings(enabled=False, per_destination=1, lease_s=60,
                                                         request_timeout_s=30))
    for i in range(2):
        await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id=f"m-{i}"), headers=auth())
    d = client.app[keys.DISPATCHER]
    assert await d.dispatch_once() == 2
    await wait_for(lambda: gated.parked == 1, what="the first delivery at the office")
    clock.advance(61)
    again = await deliveries.claim_due(pool, now=clock.now(), limit=10, lease=dt.timedelta(seconds=60),
                                       worker=d.worker)
    assert len(again) == 2
    gated.gate.set()
    await d.drain()
    assert len(gated.seen) == 1
    waiting = await pool.fetchrow("SELECT status::text AS status, leased_by, attempts FROM deliveries "
                                  "WHERE recipient = $1 AND id <> $2", CMI, uuid.UUID(gated.seen[0]))
    assert dict(waiting) == {"status": "sending", "leased_by": d.worker, "attempts": 2}
