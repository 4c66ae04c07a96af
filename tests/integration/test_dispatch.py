"""The dispatcher on a real database, real office servers on loopback and a fake clock."""

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from gateway.core import appkeys as keys
from gateway.core.settings import DispatchSettings
from gateway.storage import deliveries
from tests.support import CMI, KKN, OPM, TOKENS, Office, letter_bytes, wait_for


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


@pytest.fixture
async def offices():
    made = []

    async def make(**kw):
        o = await Office(**kw).start()
        made.append(o)
        return o

    yield make
    for o in made:
        await o.stop()


async def cycle(client):
    """One dispatcher pass, waiting for every delivery it started."""
    d = client.app[keys.DISPATCHER]
    n = await d.dispatch_once()
    await d.drain()
    return n


async def statuses(pool):
    return {r["recipient"]: (r["status"], r["attempts"]) for r in
            await pool.fetch("SELECT recipient, status::text, attempts FROM deliveries d JOIN messages m "
                             "ON m.pk = d.message_pk WHERE m.message_type = 'letter'")}


async def test_push_delivery_carries_headers_and_issues_a_receipt(make_client, offices, pool):
    cmi = await offices(name="cmi")
    client = await make_client(routes={CMI: {"kind": "push", "url": cmi.url}})
    data = letter_bytes(recipients=(CMI,), message_id="m-push")
    assert (await client.post("/v1/messages", data=data, headers=auth())).status == 202
    assert await cycle(client) == 1
    assert list(cmi.received.values()) == [data]
    assert await statuses(pool) == {CMI: ("delivered", 1)}
    # the delivery receipt waits in the sender's pull inbox, with the office's ack kept as evidence
    items = (await (await client.get("/v1/inbox", headers=auth(OPM))).json())["items"]
    assert [i["type"] for i in items] == ["receipt"]
    ack = await pool.fetchval("SELECT ack FROM receipts_full WHERE kind = 'delivery'")
    assert next(iter(cmi.received)).encode() in ack


async def test_failing_office_backs_off_while_a_healthy_one_is_served(make_client, offices, pool, clock):
    healthy = await offices(name="cmi")
    down = await offices(name="kkn", fail_first=4)
    client = await make_client(routes={CMI: {"kind": "push", "url": healthy.url},
                                       KKN: {"kind": "push", "url": down.url}},
                               dispatch=DispatchSettings(enabled=False, breaker_threshold=2))
    for i in range(3):
        await client.post("/v1/messages", data=letter_bytes(recipients=(CMI, KKN), message_id=f"m-{i}"),
                          headers=auth())
    await cycle(client)
    assert len(healthy.received) == 3, "the healthy office got everything in the first pass"
    # KKN: 3 failures in the first pass (probe logic only applies once failures are recorded)
    state = await pool.fetchrow("SELECT consecutive_failures, backoff_until FROM destinations WHERE agency = $1", KKN)
    assert state["consecutive_failures"] >= 2 and state["backoff_until"] > clock.now()
    # while backing off nothing is attempted, however often the dispatcher runs
    before = down.attempts
    assert await cycle(client) == 0
    assert down.attempts == before
    # after the backoff: half-open probe first; the office fails once more, the rest are handed back untried
    clock.advance(3600)
    await cycle(client)
    assert down.attempts == before + 1
    clock.advance(3600)
    await cycle(client)
    clock.advance(3600)
    await cycle(client)
    assert len(down.received) == 3
    assert {s for s, _ in (await statuses(pool)).values()} == {"delivered"}
    assert await pool.fetchval("SELECT count(*) FROM destinations WHERE consecutive_failures > 0") == 0


async def test_a_4xx_is_permanent_and_an_operator_can_requeue(make_client, offices, pool):
    office = await offices(name="cmi", fail_first=1, fail_status=400)
    client = await make_client(routes={CMI: {"kind": "push", "url": office.url}})
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="m-4xx"), headers=auth())
    await cycle(client)
    assert await statuses(pool) == {CMI: ("dead", 1)}
    status = await (await client.get("/v1/messages/m-4xx", headers=auth())).json()
    assert status["recipients"][0]["status"] == "dead" and "400" in status["recipients"][0]["last_error"]
    delivery_id = status["recipients"][0]["delivery_id"]

    await client.app[keys.EXCHANGE].operators.requeue(uuid.UUID(delivery_id), actor="operator:test")
    await cycle(client)
    assert await statuses(pool) == {CMI: ("delivered", 1)}
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM audit_events WHERE kind NOT IN "
                                                 "('directory.changed', 'trust.snapshot') ORDER BY seq")]
    assert kinds[:4] == ["message.accepted", "delivery.dead", "delivery.requeued", "delivery.delivered"]


async def test_gives_up_after_the_last_attempt(make_client, offices, pool, clock):
    office = await offices(name="cmi", fail_first=100)
    client = await make_client(routes={CMI: {"kind": "push", "url": office.url}},
                               dispatch=DispatchSettings(enabled=False, breaker_threshold=100))
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="m-dead"), headers=auth())
    for _ in range(6):
        await cycle(client)
        clock.advance(60)
    assert await statuses(pool) == {CMI: ("dead", 4)}  # max_attempts=4 in these tests
    attempts = await pool.fetch("SELECT attempt, outcome FROM delivery_attempts ORDER BY attempt")
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "failed"),
                                                                 (4, "failed")]


async def test_an_expired_lease_comes_due_again(make_client, offices, pool, clock):
    office = await offices(name="cmi")
    client = await make_client(routes={CMI: {"kind": "push", "url": office.url}})
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="m-lease"), headers=auth())
    # a worker that claims and then dies
    claimed = await deliveries.claim_due(pool, now=clock.now(), limit=10, lease=dt.timedelta(seconds=60),
                                         worker="dead-worker")
    assert len(claimed) == 1
    assert await cycle(client) == 0, "still leased"
    clock.advance(61)
    assert await cycle(client) == 1
    assert await statuses(pool) == {CMI: ("delivered", 2)}
    assert list(office.seen) == [str(claimed[0].id)]


async def test_concurrent_claims_never_overlap(make_client, database_url, clock):
    client = await make_client(routes={CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}})
    for i in range(40):
        await client.post("/v1/messages", data=letter_bytes(recipients=(CMI, KKN), message_id=f"m-{i}"),
                          headers=auth())
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(
            deliveries.claim_due(c, now=clock.now(), limit=15, lease=dt.timedelta(seconds=60), worker=f"w{i}")
            for i, c in enumerate(conns)))
    finally:
        for c in conns:
            await c.close()
    ids = [d.id for batch in results for d in batch]
    assert len(ids) == len(set(ids)) == 40  # 40 push deliveries to CMI; KKN is a pull office


async def test_folder_drop_writes_one_file_per_delivery(make_client, pool, workdir):
    target = workdir / "drop"
    client = await make_client(routes={CMI: {"kind": "folder", "path": str(target)}})
    data = letter_bytes(recipients=(CMI,), message_id="m-folder")
    await client.post("/v1/messages", data=data, headers=auth())
    await cycle(client)
    files = list(target.glob("*.xml"))
    assert len(files) == 1 and files[0].read_bytes() == data
    assert not list(target.glob(".*.part"))
    assert await statuses(pool) == {CMI: ("delivered", 1)}


async def test_a_delivery_whose_lease_runs_out_while_it_waits_for_a_slow_office_is_handed_back_untried(
        make_client, pool, clock):
    """Found by the chaos harness: a slow office got the same delivery from two processes.

    A batch is claimed at once but goes out ``per_destination`` at a time; behind
    a slow office the last of the batch waited past its lease, another process
    claimed it too, and both sent it. Now a delivery whose turn comes with less
    than a request's worth of lease left is handed back untried.
    """
    let_go = asyncio.Event()
    requests: list[str] = []
    slow = Office(name="cmi")

    async def held(request):  # the office answers only when the test lets it
        requests.append(request.headers["X-Saraban-Delivery-Id"])
        await let_go.wait()
        return await Office.handle(slow, request)

    slow.handle = held
    await slow.start()
    try:
        client = await make_client(routes={CMI: {"kind": "push", "url": slow.url}},
                                   dispatch=DispatchSettings(enabled=False, per_destination=1, lease_s=60,
                                                             request_timeout_s=30))
        for i in range(2):
            data = letter_bytes(recipients=(CMI,), message_id=f"m-slow-{i}")
            assert (await client.post("/v1/messages", data=data, headers=auth())).status == 202
        d = client.app[keys.DISPATCHER]
        assert await d.dispatch_once() == 2
        await wait_for(lambda: len(requests) == 1, what="the first delivery at the slow office")
        clock.advance(31)  # the second, still waiting its turn, now has 29 s of its 60 s lease left
        let_go.set()
        await d.drain()
        assert len(requests) == 1, "the second delivery was sent although its lease could run out mid-request"
        rows = await pool.fetch("SELECT d.status::text, d.attempts, d.leased_by FROM deliveries d JOIN messages m "
                                "ON m.pk = d.message_pk WHERE m.message_type = 'letter'")
        assert sorted((r["status"], r["attempts"], r["leased_by"]) for r in rows) == [
            ("delivered", 1, None), ("retry_wait", 0, None)]
        # handed back due at once: the next pass sends it
        assert await cycle(client) == 1
        assert len(requests) == 2 and len(set(requests)) == 2
        assert await statuses(pool) == {CMI: ("delivered", 1)}
        assert await pool.fetchval("SELECT count(*) FROM deliveries d JOIN messages m ON m.pk = d.message_pk "
                                   "WHERE m.message_type = 'letter' AND d.status = 'delivered'") == 2
    finally:
        await slow.stop()


async def test_stopping_the_dispatcher_closes_the_kept_office_connections(make_client, offices):
    cmi = await offices(name="cmi")
    client = await make_client(routes={CMI: {"kind": "push", "url": cmi.url}})
    assert (await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="m-keep"),
                               headers=auth())).status == 202
    assert await cycle(client) == 1
    dispatcher = client.app[keys.DISPATCHER]
    wire = dispatcher.adapters["push"].wire
    kept = [c for idle in wire._idle.values() for c in idle]
    assert kept and all(not c.transport.is_closing() for c in kept)
    await dispatcher.stop()
    assert not wire._idle and all(c.transport.is_closing() for c in kept)
