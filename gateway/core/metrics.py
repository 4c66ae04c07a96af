"""Prometheus metrics, one registry per app (tests run several apps in one process).

Counters and histograms are updated where things happen; queue depth per
destination is read from the database at scrape time, because it is the
database, not a process, that knows it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.accepted = Counter("gateway_messages_accepted", "Messages accepted", ["type", "channel"], registry=r)
        self.duplicates = Counter("gateway_messages_duplicate", "Repeated submissions answered with the "
                                  "original receipt", registry=r)
        self.rejected = Counter("gateway_messages_rejected", "Submissions refused, by error code", ["code"],
                                registry=r)
        self.delivered = Counter("gateway_deliveries_delivered", "Deliveries completed", ["route"], registry=r)
        self.retries = Counter("gateway_delivery_retries", "Delivery attempts that will be retried", ["route"],
                               registry=r)
        self.dead = Counter("gateway_dead_letters", "Deliveries that became dead letters", ["route"], registry=r)
        self.requeued = Counter("gateway_deliveries_requeued", "Dead or waiting deliveries requeued by an "
                                "operator", registry=r)
        self.queue_depth = Gauge("gateway_queue_depth", "Deliveries per destination and state", ["destination",
                                 "state"], registry=r)
        self.submit_seconds = Histogram("gateway_submit_seconds", "Time to accept a submission",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.delivery_seconds = Histogram("gateway_delivery_attempt_seconds", "Time of one delivery attempt",
                                          ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.unhandled = Counter("gateway_unhandled_errors", "Exceptions that are not domain errors (bugs), "
                                 "answered as internal errors and logged with their traceback, by edge",
                                 ["edge"], registry=r)
        self.input_safety_net = Counter("gateway_input_safety_net", "Requests whose input the database refused "
                                        "(DataError) after the edge let it through: answered 400, logged as a "
                                        "warning; each hit is a parameter gateway.http.params should check",
                                        ["edge"], registry=r)
        self.delivery_latency = Histogram("gateway_delivery_latency_seconds", "Acceptance to delivery",
                                          ["route"], buckets=_LATENCY_BUCKETS + (60, 300, 3600), registry=r)
        self.pki_fetches = Counter("gateway_pki_fetches", "Revocation fetches (OCSP, CRL) and refusals to fetch "
                                   "(issuer: never fetched), by outcome: ok, error, timeout, refused_host, "
                                   "refused_untrusted, refused_budget", ["kind", "outcome"], registry=r)
        self.certificates_expiring = Gauge(
            "gateway_agency_certificates_expiring", "Accepted agency certificates that expire within 7d, 30d, "
            "60d (cumulative) or have expired (within=\"expired\"), from the directory in force "
            "(gateway.core.certexpiry)", ["within"], registry=r)

    def set_queue_depth(self, rows: list[dict]) -> None:
        self.queue_depth.clear()
        for row in rows:
            self.queue_depth.labels(destination=row["recipient"], state=row["status"]).set(row["n"])

    def render(self) -> bytes:
        return generate_latest(self.registry)
