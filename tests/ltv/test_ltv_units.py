"""Pure rules of issue 16: the validation-pending decision, and trust snapshots being versioned."""

from __future__ import annotations

import datetime as dt

from gateway.core.clock import FakeClock
from gateway.exchange.pending import decide
from gateway.exchange.validation import ValidationRecorder
from pki.certfactory import CertFactory

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
DEADLINE = NOW + dt.timedelta(hours=24)


def test_verified_forwards_revoked_refuses_unknown_backs_off_until_the_deadline():
    assert decide(None, now=NOW, deadline=DEADLINE, checks=3).action == "forward"
    assert decide("certificate.revoked", now=NOW, deadline=DEADLINE, checks=0).code == "certificate.revoked"
    first = decide("certificate.revocation_unknown", now=NOW, deadline=DEADLINE, checks=0)
    later = decide("certificate.revocation_unknown", now=NOW, deadline=DEADLINE, checks=4)
    assert first.action == later.action == "retry"
    assert first.next_check == NOW + dt.timedelta(seconds=30)
    assert later.next_check == NOW + dt.timedelta(seconds=480)
    capped = decide("certificate.revocation_unknown", now=NOW, deadline=DEADLINE, checks=40)
    assert capped.next_check == NOW + dt.timedelta(seconds=1800)
    near = decide("certificate.revocation_unknown", now=DEADLINE - dt.timedelta(seconds=10), deadline=DEADLINE,
                  checks=5)
    assert near.next_check == DEADLINE  # never waits past the deadline
    out = decide("certificate.revocation_unknown", now=DEADLINE, deadline=DEADLINE, checks=9)
    assert (out.action, out.code) == ("refuse", "validation.timeout")


async def test_every_change_of_anchors_or_intermediates_is_a_new_version_with_an_audit_event(pool):
    root = CertFactory.new_root("Snapshot Root")
    first, second = root.intermediate("Issuing A"), root.intermediate("Issuing B")

    class Store:  # what the recorder reads of a trust store
        anchors = (root.ca.cert,)
        intermediates = (first.ca.cert,)

    store = Store()
    rec = ValidationRecorder(pool=pool, trust=store, clock=FakeClock(NOW))  # type: ignore[arg-type]  # reads anchors and intermediates only
    v1 = await rec.snapshot()
    assert (await rec.snapshot()).version == v1.version
    store.intermediates = (first.ca.cert, second.ca.cert)
    v2 = await rec.snapshot()
    assert v2.version == v1.version + 1 and v2.sha256 != v1.sha256
    events = await pool.fetch("SELECT details FROM audit_events WHERE kind = 'trust.snapshot' ORDER BY seq")
    assert [e["details"]["version"] for e in events] == [v1.version, v2.version]
    assert events[1]["details"]["previous"] == v1.sha256 and len(events[1]["details"]["intermediates"]) == 2
    # a second process finding the same set recorded does not add a version
    again = ValidationRecorder(pool=pool, trust=store, clock=FakeClock(NOW))  # type: ignore[arg-type]  # reads anchors and intermediates only
    assert (await again.snapshot()).version == v2.version
