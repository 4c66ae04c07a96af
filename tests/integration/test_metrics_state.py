"""The shared-state gauges of ``/metrics`` come from the database at scrape time (gateway.core.metrics).

A letter waits for an office that is down: its queue depth and age per
destination, the destination's failing time and open circuit, and the audit
events the sealer has not chained yet are read from the database; when the
database does not answer, the scrape still answers with ``gateway_database_up 0``.
"""

from __future__ import annotations

import datetime as dt
import re

from gateway.core import appkeys as keys
from gateway.storage import gauges
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` (labels in any order), or None."""
    for m in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")) == labels:
            return float(m.group(2))
    return None


async def scrape(client) -> str:
    r = await client.get("/metrics")
    assert r.status == 200
    return await r.text()


async def test_queue_circuit_and_audit_gauges_come_from_the_database(make_client, clock):
    client = await make_client(routes={CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}},
                               audit_seal_interval_s=3600)
    client.app[keys.METRICS].state.ttl_s = 0  # every scrape reads the database (the default caches 5 s)
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="g-1"),
                          headers={"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"})
    assert r.status == 202
    clock.advance(600)
    text = await scrape(client)
    assert sample(text, "gateway_database_up") == 1
    assert sample(text, "gateway_queue_depth", destination=CMI, state="queued") == 1
    assert sample(text, "gateway_queue_oldest_seconds", destination=CMI, state="queued") == 600
    assert sample(text, "gateway_dead_letters_waiting") == 0
    assert sample(text, "gateway_queue_deliveries", state="queued") == 1
    assert sample(text, "gateway_queue_destinations", state="queued") == 1
    assert sample(text, "gateway_queue_deliveries", state="dead") == 0  # every state has a series
    assert sample(text, "gateway_destinations_circuit_open") == 0
    assert sample(text, "gateway_audit_unsealed_events") >= 1
    assert sample(text, "gateway_audit_sealing_lag_seconds") == 600

    # Chiang Mai has failed for 40 minutes and backs off for 5 more
    pool = client.app[keys.POOL]
    now = clock.now()
    await pool.execute("INSERT INTO destinations (agency, consecutive_failures, failing_since, backoff_until, "
                       "last_error, updated_at) VALUES ($1, 7, $2, $3, 'connection refused', $4)",
                       CMI, now - dt.timedelta(minutes=40), now + dt.timedelta(minutes=5), now)
    await pool.execute("UPDATE deliveries SET status = 'dead' WHERE recipient = $1", CMI)
    text = await scrape(client)
    assert sample(text, "gateway_destination_failing_seconds", destination=CMI) == 2400
    assert sample(text, "gateway_destination_circuit_open", destination=CMI) == 1
    assert sample(text, "gateway_destinations_circuit_open") == 1
    assert sample(text, "gateway_queue_depth", destination=CMI, state="dead") == 1
    assert sample(text, "gateway_dead_letters_waiting") == 1
    clock.advance(600)  # the backoff is over: half-open, still failing
    text = await scrape(client)
    assert sample(text, "gateway_destination_circuit_open", destination=CMI) == 0
    assert sample(text, "gateway_destination_failing_seconds", destination=CMI) == 3000


async def test_the_scrape_answers_when_the_database_does_not(make_client):
    client = await make_client()
    m = client.app[keys.METRICS]
    assert sample(await scrape(client), "gateway_database_up") == 1
    m.state.ttl_s = 0
    await client.app[keys.POOL].close()  # the database is away for this process
    text = await scrape(client)
    assert sample(text, "gateway_database_up") == 0
    assert "gateway_queue_depth{" not in text
    assert "# TYPE gateway_messages_accepted_total counter" in text  # the process's own counters still there


async def test_the_state_is_read_once_per_ttl(make_client):
    client = await make_client(routes={CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}})
    first = await scrape(client)
    assert sample(first, "gateway_queue_depth", destination=CMI, state="queued") is None
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="g-2"),
                          headers={"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"})
    assert r.status == 202
    # within the cache's 5 s the scrape reuses the reading; counters are live
    again = await scrape(client)
    assert sample(again, "gateway_queue_depth", destination=CMI, state="queued") is None
    assert sample(again, "gateway_messages_accepted_total", type="letter", channel="native") == 1
    client.app[keys.METRICS].state.ttl_s = 0
    assert sample(await scrape(client), "gateway_queue_depth", destination=CMI, state="queued") == 1


async def test_destinations_are_named_up_to_a_cap_per_state_totals_cover_all(make_client, clock):
    client = await make_client(routes={a: {"kind": "push", "url": "http://127.0.0.1:9/x"} for a in (CMI, KKN)})
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    for i, to in enumerate((KKN, CMI, CMI)):  # Khon Kaen's letter waits longest
        r = await client.post("/v1/messages", data=letter_bytes(recipients=(to,), message_id=f"cap-{i}"),
                              headers=headers)
        assert r.status == 202
        clock.advance(60)
    state = await gauges.read(client.app[keys.POOL], clock.now(), per_state=1)
    assert [(q.destination, q.state, q.count, q.oldest_s) for q in state.queues] == [(KKN, "queued", 1, 180)]
    assert [(t.state, t.deliveries, t.destinations) for t in state.totals] == [("queued", 3, 2)]
