"""Delivery: claiming due deliveries, calling the recipient's adapter, retrying, dead letters.

Dispatcher workers claim with ``FOR UPDATE SKIP LOCKED`` under a lease, any
number of gateway processes side by side (``dispatcher``). Each destination
has its own backoff and circuit breaker. Which outcomes retry and when is a
small frozen policy (``retry``).
"""
