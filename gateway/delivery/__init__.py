"""Delivery: claiming due deliveries, calling the recipient's adapter, retrying, dead letters.

Dispatcher workers claim with ``FOR UPDATE SKIP LOCKED`` under a lease, any
number of gateway processes side by side (``dispatcher``). Each destination
has its own backoff and circuit breaker. Which outcomes retry and when is a
small frozen policy (``retry``).

Outcomes are decided purely and applied once: ``transitions.decide`` turns an
adapter's outcome, the claim and the policy into a transition (delivered,
retry at T, dead, with the reason), with no clock, database or network; the
dispatcher applies the transitions finishing together with one storage call
(:func:`gateway.storage.transitions.apply`, one round trip, audit events and
delivery receipts included).
"""
