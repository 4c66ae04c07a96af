"""Prometheus metrics: counters summed across worker processes, shared state read from the database.

Three kinds of figures, kept three ways:

- **Counters and histograms** are updated where things happen, in the process
  that did the work. With one process (tests run several apps in one process,
  each with its own registry) they live in :attr:`Metrics.registry`. Under
  ``gateway serve --workers N`` a scrape reaches one worker at random, so each
  worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
  (prometheus_client's multiprocess mode; the supervisor makes a fresh
  directory per serve run, see :func:`prepare_multiprocess_dir`) and whichever
  worker answers the scrape sums every worker's files, those of exited workers
  included (a counter never goes back).
- **Gauges of shared state** (queue depth and age per destination, dead letters,
  failing destinations and open circuits, audit sealing lag, whether the
  database answers) are what the database knows, not a process: the scrape
  reads them with a few cheap queries (``queries_gauges.sql``) into a
  :class:`SharedState`, cached for :data:`STATE_TTL_S` so several Prometheus
  servers do not multiply the load, and rendered by :func:`render_state`.
  Any worker gives the same answer.
- **Certificates expiring** is computed by each process from the directory in
  force (:mod:`gateway.exchange.certificates`); across workers the most recent
  computation of a live worker wins (``livemostrecent``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

#: The environment variable prometheus_client reads, at import, to switch to multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The open states of a delivery, as gateway_queue_* label them.
QUEUE_STATES = ("queued", "sending", "retry_wait", "inbox", "dead")
#: Seconds a scrape reuses the last reading of the database's shared state.
STATE_TTL_S = 5.0


#: This process's id, kept current across ``fork()`` by :func:`_forked` (the value prometheus_client's
#: multiprocess files are named by).
_PID = os.getpid()


def _forked() -> None:
    global _PID
    _PID = os.getpid()


def _process_id() -> int:
    """The process identifier of multiprocess mode without a system call: prometheus_client's default
    (``os.getpid``) asks the kernel on every increment (five times a delivery, ~0.2 µs each) to notice
    a fork; :func:`os.register_at_fork` tells this process instead, in the child, before any Python
    code runs there (``os.fork``, multiprocessing's fork, a ``preexec_fn``)."""
    return _PID


os.register_at_fork(after_in_child=_forked)
if getattr(values.ValueClass, "_multiprocess", False):
    # Multiprocess mode was chosen at prometheus_client's import (PROMETHEUS_MULTIPROC_DIR set): the
    # same value class, asking _process_id. Every metric of the gateway is made after this
    # (Metrics.__init__, below), so every value and file uses it; a fork still gives the child its own
    # files (tests/unit/test_metrics_fork.py).
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        #: Where the workers' files are (multiprocess mode), or None (this process's registry only).
        self.multiprocess_dir: str | None = os.environ.get(MULTIPROC_ENV) or None
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
            "(gateway.core.certexpiry)", ["within"], registry=r, multiprocess_mode="livemostrecent")
        self.state = StateCache()
        # The last state rendered and its text: with thousands of destinations waiting, rendering is
        # ~0.1 s of Python (bench/metrics.py), so it is done once per database reading, not per scrape.
        self._state_text: tuple[SharedState, bytes] | None = None

    def render(self, state: SharedState | None = None) -> bytes:
        """The exposition text: this process's (or every worker's) metrics, then the shared state."""
        if self.multiprocess_dir:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=self.multiprocess_dir)
            text = generate_latest(merged)
        else:
            text = generate_latest(self.registry)
        if state is None:
            return text
        if self._state_text is None or self._state_text[0] is not state:  # rendered once per reading
            self._state_text = (state, render_state(state))
        return text + self._state_text[1]


# ---------------------------------------------------------------------------- shared state


@dataclass(frozen=True)
class QueueFigure:
    destination: str
    """The receiving agency's code."""
    state: str
    """queued, sending, retry_wait, inbox or dead."""
    count: int
    oldest_s: float
    """Seconds since the oldest of these deliveries was created (its letter accepted)."""


@dataclass(frozen=True)
class QueueTotal:
    state: str
    deliveries: int
    """Deliveries in this state, every destination."""
    destinations: int
    """Destinations with at least one delivery in this state."""


@dataclass(frozen=True)
class DestinationFigure:
    destination: str
    failures: int
    """Consecutive failed attempts (the destination is failing while above 0)."""
    failing_s: float
    """Seconds since the first of those failures."""
    circuit_open: bool
    """Backing off as a whole now (no attempts until the backoff ends)."""


@dataclass(frozen=True)
class SharedState:
    """What the database says at one instant; ``database_up`` False and nothing else when it did not answer."""

    database_up: bool
    queues: tuple[QueueFigure, ...] = ()
    """Per state, the destinations waiting longest (capped: gateway.storage.gauges.PER_STATE)."""
    totals: tuple[QueueTotal, ...] = ()
    destinations: tuple[DestinationFigure, ...] = ()
    audit_unsealed: int = 0
    """Audit events written but not yet chained by the sealer (capped at 1,000,000 so the count stays cheap)."""
    audit_lag_s: float = 0.0
    """Age of the oldest unsealed audit event (0 when every event is chained)."""
    validation_pending: int = 0
    """Letters held in validation-pending (their author's revocation status not established yet)."""
    validation_oldest_s: float = 0.0
    unstamped: int = 0
    """Seals and receipts not yet covered by an RFC 3161 time-stamp (capped at 1,000,000)."""
    unstamped_oldest_s: float = 0.0


class StateCache:
    """The last :class:`SharedState` read, reused for ``ttl_s`` seconds (monotonic time)."""

    def __init__(self, ttl_s: float = STATE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._state: SharedState | None = None
        self._read_at = 0.0

    async def get(self, read: Callable[[], Awaitable[SharedState]]) -> SharedState:
        now = time.monotonic()
        if self._state is None or now - self._read_at >= self.ttl_s:
            self._state = await read()
            self._read_at = now
        return self._state


def _families(s: SharedState) -> Iterator[GaugeMetricFamily]:
    yield GaugeMetricFamily("gateway_database_up", "1 when the database answered the scrape's queries, else 0 "
                            "(the other shared-state gauges are then absent)", value=1 if s.database_up else 0)
    if not s.database_up:
        return
    depth = GaugeMetricFamily("gateway_queue_depth", "Deliveries per destination and state, for the "
                              "destinations waiting longest in each state (from the database)",
                              labels=["destination", "state"])
    oldest = GaugeMetricFamily("gateway_queue_oldest_seconds", "Age of the oldest delivery per destination and "
                               "state: how long its letter has waited since acceptance (the destinations "
                               "waiting longest in each state)", labels=["destination", "state"])
    for q in s.queues:
        depth.add_metric([q.destination, q.state], q.count)
        oldest.add_metric([q.destination, q.state], q.oldest_s)
    yield depth
    yield oldest
    deliveries = GaugeMetricFamily("gateway_queue_deliveries", "Deliveries per state, every destination",
                                   labels=["state"])
    destinations = GaugeMetricFamily("gateway_queue_destinations", "Destinations with deliveries in this state",
                                     labels=["state"])
    totals = {t.state: t for t in s.totals}
    for state in QUEUE_STATES:  # every state, 0 when empty, so graphs and alerts have a series
        t = totals.get(state)
        deliveries.add_metric([state], t.deliveries if t else 0)
        destinations.add_metric([state], t.destinations if t else 0)
    yield deliveries
    yield destinations
    yield GaugeMetricFamily("gateway_dead_letters_waiting", "Dead letters in the database waiting for an "
                            "operator (all destinations)", value=totals["dead"].deliveries if "dead" in totals else 0)
    failing = GaugeMetricFamily("gateway_destination_failing_seconds", "Seconds a failing destination has "
                                "failed without a success in between (only failing destinations)",
                                labels=["destination"])
    circuit = GaugeMetricFamily("gateway_destination_circuit_open", "1 while a failing destination is backing "
                                "off as a whole (circuit open), 0 while its next attempt is a probe (half-open)",
                                labels=["destination"])
    for d in s.destinations:
        failing.add_metric([d.destination], d.failing_s)
        circuit.add_metric([d.destination], 1 if d.circuit_open else 0)
    yield failing
    yield circuit
    yield GaugeMetricFamily("gateway_destinations_circuit_open", "Destinations backing off now (circuit open)",
                            value=sum(d.circuit_open for d in s.destinations))
    yield GaugeMetricFamily("gateway_audit_unsealed_events", "Audit events not yet chained by the sealer",
                            value=s.audit_unsealed)
    yield GaugeMetricFamily("gateway_audit_sealing_lag_seconds", "Age of the oldest audit event not yet "
                            "chained (0 when all are)", value=s.audit_lag_s)
    yield GaugeMetricFamily("gateway_validation_pending", "Letters held in validation-pending (their author's "
                            "revocation status could not be established yet)", value=s.validation_pending)
    yield GaugeMetricFamily("gateway_validation_pending_oldest_seconds", "Age of the oldest letter in "
                            "validation-pending, seconds (0 when none)", value=s.validation_oldest_s)
    yield GaugeMetricFamily("gateway_timestamp_pending", "Seals and receipts not yet covered by an RFC 3161 "
                            "time-stamp (a TSA outage makes this grow; intake goes on)", value=s.unstamped)
    yield GaugeMetricFamily("gateway_timestamp_pending_oldest_seconds", "Age of the oldest seal or receipt "
                            "not yet time-stamped, seconds (0 when none)", value=s.unstamped_oldest_s)


class _StateCollector:
    def __init__(self, state: SharedState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return _families(self.state)


def render_state(state: SharedState) -> bytes:
    registry = CollectorRegistry()
    registry.register(_StateCollector(state))
    return generate_latest(registry)


# ---------------------------------------------------------------------------- multiprocess mode


def prepare_multiprocess_dir(data_dir: Path, port: int) -> Path:
    """A fresh, empty directory for one serve run's worker metrics (set as ``PROMETHEUS_MULTIPROC_DIR`` in
    the workers' environment): the operator's own ``PROMETHEUS_MULTIPROC_DIR`` if set, else
    ``DATA_DIR/metrics/PORT``. Files of an earlier run are removed, so counters start from zero with
    the run (Prometheus reads that as a counter reset)."""
    configured = os.environ.get(MULTIPROC_ENV)
    path = Path(configured) if configured else data_dir / "metrics" / str(port)
    if path.exists():
        for child in path.iterdir():  # only the files prometheus_client writes, never anything else
            if child.is_file() and child.suffix == ".db":
                child.unlink()
            elif child.is_dir() and not configured:
                shutil.rmtree(child)
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_exited(pid: int, path: Path) -> None:
    """Forget an exited worker's live gauges (its counters stay: they are part of the run's totals)."""
    mark_process_dead(pid, str(path))
