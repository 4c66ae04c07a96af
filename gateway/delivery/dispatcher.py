"""Dispatcher: workers that take due deliveries from the database and hand them to adapters.

Queueing
    The queue is the ``deliveries`` table. A worker claims a batch of due rows
    with ``FOR UPDATE SKIP LOCKED`` and sets a lease by moving the row's
    ``next_attempt_at`` to the lease's end while it is ``sending``. Any number of
    gateway processes claim side by side without a coordinator; a process that
    dies mid-delivery simply lets its leases run out, and the rows come due again
    for whoever claims next. Delivery is therefore at-least-once on the wire;
    every attempt carries the same delivery id so the office deduplicates, and
    the gateway's own adapters do (the folder adapter overwrites by id).
    A claimed batch goes out ``per_destination`` at a time; a delivery whose
    turn comes with too little of its lease left for a request is handed back
    untried, so that a slow office is not sent the same delivery by two
    processes at once. A claim is (worker, attempt): handing back is fenced on
    both, since the claim that replaced an expired one may carry the same
    worker name. A process holds at most ``concurrency`` claimed deliveries, so
    it never hoards due work that other processes could start.

Backoff per destination
    Each destination (office) has its state in the ``destinations`` table:
    consecutive failures, the time it started failing and, once failures reach
    ``breaker_threshold``, a ``backoff_until`` (circuit open). The claim query
    skips destinations that are backing off, so no network work is done for
    them, and their waiting deliveries are pushed past the backoff in one
    statement so the claim query does not wade through them. When the backoff
    is over (half-open), the first delivery claimed for that destination is a
    probe: the others from the same batch wait for its result and are handed
    back untried if it fails. One office that is down never slows the others:
    concurrency is bounded per destination as well as per process.

Retries per delivery
    :class:`gateway.delivery.retry.RetryPolicy` decides when a failed delivery is due
    again, or that it is dead (attempts or time to live exhausted). A
    permanent refusal (4xx) makes it dead at once. Dead letters stay visible
    and an operator can requeue them.

New local submissions wake the dispatcher at once, and so does a delivery
receipt it queued itself; otherwise it polls every ``poll_interval_s`` (other
processes' submissions, retries coming due).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import asyncpg
import structlog
import tenacity
from prometheus_client import Counter, Histogram

from adapters.base import Adapter, Delivered, OutboundDelivery, Outcome, Permanent, Retry
from gateway.core.clock import Clock
from gateway.core.directory import Directory, Route
from gateway.core.logging import log_context
from gateway.core.metrics import Metrics
from gateway.core.parts import as_signed
from gateway.core.settings import DispatchSettings
from gateway.delivery.retry import RetryPolicy
from gateway.delivery.transitions import Attempt, decide
from gateway.storage import deliveries, destinations, transitions
from gateway.storage import parts as parts_store
from gateway.storage.batching import GroupCommitter
from gateway.storage.db import TRANSIENT_ERRORS, call_with_retries
from gateway.storage.deliveries import ClaimedDelivery
from gateway.storage.receipts import Delivered as DeliveredLetter
from gateway.storage.receipts import ReceiptFactory
from gateway.storage.transitions import Transition

log = structlog.get_logger(__name__)


class _RouteMetrics(NamedTuple):
    """The dispatcher's metrics labelled with one route kind (:meth:`Dispatcher._metrics_of`)."""

    seconds: Histogram
    delivered: Counter
    latency: Histogram
    dead: Counter
    retries: Counter


def share_digests(claimed: Iterable[ClaimedDelivery]) -> None:
    """A letter's deliveries claimed together (one to each recipient) hash its forwarded bytes once.

    The first claim of a message hashes them (``forwarded_sha256``, a cached property); a later claim of
    the same message whose bytes are equal, compared byte for byte (~0.04 µs where hashing a ~14 KB
    envelope takes ~10-30), gets that digest in the slot its cached property fills. Unequal bytes keep
    their own. (Carrying intake's digest with the row would save the first hash too: a storage change.)
    """
    first: dict[int, ClaimedDelivery] = {}
    for c in claimed:
        seen = first.setdefault(c.message_pk, c)
        if seen is not c and seen.forwarded == c.forwarded:
            vars(c)["forwarded_sha256"] = seen.forwarded_sha256


class Dispatcher:
    def __init__(self, *, pool: asyncpg.Pool, directory: Directory, adapters: Mapping[str, Adapter],
                 retry: RetryPolicy, receipts: ReceiptFactory, clock: Clock, metrics: Metrics,
                 settings: DispatchSettings, worker: str) -> None:
        self.pool = pool
        self.directory = directory
        self.adapters = adapters
        self.retry = retry
        self.receipts = receipts
        self.clock = clock
        self.metrics = metrics
        self.settings = settings
        self.worker = worker
        #: Outcomes of deliveries finishing at the same time share one round trip. One write at a time:
        #: each call costs PostgreSQL a fixed share besides its rows (its statements, the commit), so two
        #: half batches in flight cost nearly twice one whole (bench/pg_delivery.py --batch; bench/e2e.py
        #: --quick, five pairs: PostgreSQL per letter 4.17 -> 3.25 ms, medians); what finishes meanwhile
        #: waits one commit.
        self.recorder: GroupCommitter[Transition, bool] = GroupCommitter(
            lambda batch: transitions.apply(self.pool, batch), lambda t: self._apply_one(t),
            max_batch=64, max_parallel=1, passthrough=TRANSIENT_ERRORS)
        self._event = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        self._held = 0  # claimed deliveries not yet finished, bounded by settings.concurrency
        self._per_destination: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.per_destination))
        self._stopping = False
        #: A request started later than this before its lease's end could outlast it (_lease_too_short)
        self._lease_margin = dt.timedelta(seconds=min(settings.request_timeout_s, settings.lease_s / 2))
        self._route_metrics: dict[str, _RouteMetrics] = {}

    def wake(self) -> None:
        self._event.set()

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        log.info("dispatcher started", worker=self.worker)
        while not self._stopping:
            # Cleared before the claim, never after it: a wake() while the claim query runs (a
            # letter committed after the query's snapshot) must send the loop round again at
            # once, not leave that letter waiting a whole poll interval.
            self._event.clear()
            try:
                claimed = await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restarting: keep the loop alive, back off a little
                log.warning("dispatch cycle failed", error=f"{type(exc).__name__}: {exc}")
                claimed = 0
                await asyncio.sleep(min(2.0, self.settings.poll_interval_s * 4))
            if claimed == 0 or len(self._inflight) >= self.settings.concurrency:
                try:
                    await asyncio.wait_for(self._event.wait(), timeout=self.settings.poll_interval_s)
                except TimeoutError:
                    pass

    async def stop(self) -> None:
        self._stopping = True
        self._event.set()
        await self.drain()
        for adapter in self.adapters.values():
            close = getattr(adapter, "close", None)
            if close is not None:  # kept connections to offices (push) go with the dispatcher
                close()

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def dispatch_once(self) -> int:
        """Claim one batch and start delivering it; returns how many were claimed."""
        # Deliveries held, not destination groups: one group can be a whole batch, and a process
        # holding more than it can start hoards due work from the others until the leases run out.
        free = self.settings.concurrency - self._held
        if free <= 0:
            return 0
        now = self.clock.now()
        claimed = await deliveries.claim_due(self.pool, now=now, limit=min(self.settings.batch_size, free),
                                             lease=dt.timedelta(seconds=self.settings.lease_s),
                                             worker=self.worker)
        self._held += len(claimed)
        share_digests(claimed)
        lease_end = now + dt.timedelta(seconds=self.settings.lease_s)
        by_destination: dict[str, list[ClaimedDelivery]] = defaultdict(list)
        for c in claimed:
            by_destination[c.recipient].append(c)
        for group in by_destination.values():
            task = asyncio.create_task(self._deliver_group(group, lease_end))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(claimed)

    # ------------------------------------------------------------------ one destination

    async def _deliver_group(self, group: list[ClaimedDelivery], lease_end: dt.datetime) -> None:
        rest: Iterable[ClaimedDelivery] = group
        if group[0].destination_failures > 0:
            # Half-open: one probe first; on failure hand the others back untried.
            ok = await self._deliver_one(group[0], lease_end)
            rest = group[1:]
            if not ok:
                try:
                    await self._release(rest)
                finally:
                    self._held -= len(rest)
                return
        await asyncio.gather(*(self._deliver_one(c, lease_end) for c in rest))

    async def _release(self, items: Iterable[ClaimedDelivery]) -> None:
        for c in items:
            try:
                due = await destinations.backoff_until(self.pool, c.recipient) or self.clock.now()
                await deliveries.release_claim(self.pool, c.id, self.worker, due, c.attempts)
            except Exception as exc:  # the lease will expire and return it anyway
                log.warning("release failed", delivery_id=str(c.id), error=str(exc))

    def _lease_too_short(self, lease_end: dt.datetime) -> bool:
        """Whether a request started now could outlast the lease (and so be sent twice).

        A batch is claimed at once but goes out ``per_destination`` at a time, so
        behind a slow office a claimed delivery can wait longer than its lease;
        by then another process may have claimed it too, and both would send it,
        doubling the load on the office that is already slow."""
        return self.clock.now() + self._lease_margin > lease_end

    def _metrics_of(self, route: str) -> _RouteMetrics:
        """The delivery metrics labelled with ``route``, looked up once (``labels()`` takes a lock and
        builds its key on every call)."""
        found = self._route_metrics.get(route)
        if found is None:
            m = self.metrics
            found = self._route_metrics[route] = _RouteMetrics(
                m.delivery_seconds.labels(route=route), m.delivered.labels(route=route),
                m.delivery_latency.labels(route=route), m.dead.labels(route=route), m.retries.labels(route=route))
        return found

    async def _deliver_one(self, c: ClaimedDelivery, lease_end: dt.datetime) -> bool:
        try:
            return await self._attempt(c, lease_end)
        finally:
            self._held -= 1

    async def _attempt(self, c: ClaimedDelivery, lease_end: dt.datetime) -> bool:
        """Make one attempt and record it; True if delivered."""
        bound = log_context(
            delivery_id=str(c.id), message_id=c.message_id, sender=c.sender, recipient=c.recipient)
        with bound:
            served = self.directory.route_of(c.recipient)  # a 'via' office: its hub's route
            if c.pinned_route is not None:  # a route-change notice to the agency's old route
                pinned = dict(c.pinned_route)
                served = (c.recipient, Route(kind=str(pinned.pop("kind", c.route)), settings=MappingProxyType(pinned)))
            started = self.clock.now()
            t0 = time.perf_counter()
            if served is None:
                outcome: Outcome | None = Permanent("recipient is no longer in the directory")
                route_kind = c.route
            else:
                route = served[1]
                route_kind = route.kind
                adapter = self.adapters.get(route_kind)
                if adapter is None:
                    outcome = Retry(f"no adapter for route {route_kind}")
                else:
                    async with self._per_destination[c.recipient]:
                        if self._lease_too_short(lease_end):
                            outcome = None
                        else:
                            try:
                                parts = (as_signed(c.forwarded, await parts_store.list_parts(self.pool, c.message_pk))
                                         if c.parts else ())
                                outcome = await adapter.deliver(OutboundDelivery(
                                    delivery_id=c.id, message_id=c.message_id, sender=c.sender,
                                    recipient=c.recipient, envelope=c.forwarded, route=route,
                                    attempt=c.attempts, parts=parts,
                                    open_part=functools.partial(parts_store.iter_chunks, self.pool,
                                                                c.message_pk) if c.parts else None,
                                    envelope_sha256=c.forwarded_sha256))
                            except Exception as exc:  # an adapter bug must not lose the letter
                                log.exception("adapter raised")
                                outcome = Retry(f"internal: {type(exc).__name__}")
                    if outcome is None:
                        # its turn came too late: hand it back untried (a no-op if it was claimed again)
                        log.info("lease ran out waiting for the destination; handed back untried")
                        await self._release([c])
                        return False
            self._metrics_of(route_kind).seconds.observe(time.perf_counter() - t0)
            if outcome is None:  # (handed back above; the branches that leave it None return)
                return False
            try:
                return await self._record_durably(c, route_kind, outcome, started)
            except Exception as exc:  # lease expiry brings it back; the office deduplicates
                log.error("could not record delivery outcome", error=f"{type(exc).__name__}: {exc}")
                return isinstance(outcome, Delivered)

    async def _record_durably(self, c: ClaimedDelivery, route: str, outcome: Outcome,
                              started: dt.datetime) -> bool:
        """Record the outcome; while the database is away (restart, failover) keep trying for half
        the lease, so a short outage delays the next step by seconds rather than a whole lease. If
        the commit landed but its answer was lost, the retry fails on the attempt's key and stops:
        the state is already right."""
        return await call_with_retries(
            lambda: self._record(c, route, outcome, started),
            lambda: tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS),
                wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=2.0),
                stop=tenacity.stop_after_delay(self.settings.lease_s / 2), reraise=True))

    async def _apply_one(self, t: Transition) -> bool:
        return (await transitions.apply(self.pool, [t]))[0]

    async def _record(self, c: ClaimedDelivery, route: str, outcome: Outcome, started: dt.datetime) -> bool:
        """Decide what ``outcome`` makes of the delivery (pure), then apply it with whatever else is
        finishing now (one round trip for the batch)."""
        now = self.clock.now()
        receipt, receipt_message = b"", None
        if isinstance(outcome, Delivered):
            receipt, receipt_message = self.receipts.make(DeliveredLetter(
                delivery_id=c.id, message_pk=c.message_pk, message_id=c.message_id,
                conversation_id=c.conversation_id, message_type=c.message_type, sender=c.sender,
                recipient=c.recipient, forwarded_sha256=c.forwarded_sha256), at=now, ack=outcome.ack)
        t = decide(outcome, c, self.retry, Attempt(self.worker, started, now),
                   breaker_threshold=self.settings.breaker_threshold, receipt=receipt,
                   receipt_message=receipt_message)
        applied = await self.recorder.submit(t)
        m = self._metrics_of(route)
        if t.outcome == "delivered":
            if not applied:
                log.warning("delivered after the lease was lost; the office deduplicates")
                return True
            if receipt_message is not None and receipt_message.deliveries:
                self.wake()  # its delivery receipt is queued: claim it now, not at the next poll
            m.delivered.inc()
            m.latency.observe(max(0.0, (now - c.created_at).total_seconds()))
            log.info("delivered", attempt=c.attempts)
            return True
        if t.outcome == "dead":
            m.dead.inc()
            log.warning("dead letter", reason=t.reason, attempts=c.attempts)
        else:
            m.retries.inc()
            log.info("delivery will be retried", reason=t.reason, attempt=c.attempts,
                     next_attempt_at=str(t.due_at))
        return False
