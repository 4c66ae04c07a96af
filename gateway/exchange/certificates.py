"""Certificate expiry watch: the Prometheus gauge and the daily log line, inside ``gateway serve``.

:class:`CertificateWatch` reads the directory in force with
:func:`gateway.core.certexpiry.expiring` and sets
``gateway_agency_certificates_expiring{within="expired|7d|30d|60d"}``: once at
start, again every ``interval_s`` (so a certificate that crosses into a bucket
overnight is counted without any directory change), and at once whenever the
directory is replaced (an operator who retires an expired certificate sees the
gauge drop on the next scrape). Once a day (and at start) it logs one line,
event ``certificates expiring``, with the counts and the soonest agencies: a
warning when any certificate is expired or within 7 days, info otherwise.

Each gateway process runs its own watch: the gauge is per process like every
other metric, and the work is a scan of the in-memory directory (about 11 ms for
8,000 agencies with two certificates each), not a query. The clock is passed in; tests call :meth:`check`
after moving a fake clock instead of waiting for the loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.certexpiry import BUCKETS, ExpiryReport, expiring
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.metrics import Metrics

log = structlog.get_logger(__name__)

#: How many of the soonest certificates the daily log line names.
LOG_SOONEST = 5


class CertificateWatch:
    """Keeps the expiry gauge current and logs the daily summary (see the module docstring)."""

    def __init__(self, directory: Directory, clock: Clock, metrics: Metrics, *, interval_s: float = 3600.0,
                 log_every: dt.timedelta = dt.timedelta(days=1), logger: Any = None) -> None:
        """
        :param interval_s: seconds between two checks of the gauge (the directory is also watched).
        :param log_every: time between two log lines, by ``clock``.
        :param logger: a structlog logger (default: this module's).
        """
        self.directory = directory
        self.clock = clock
        self.metrics = metrics
        self.interval_s = interval_s
        self.log_every = log_every
        self.log = logger or log
        #: The last report computed (the console could show it; None before the first check).
        self.last: ExpiryReport | None = None
        self._logged_at: dt.datetime | None = None
        self._stop = asyncio.Event()
        self._listening = False

    def refresh(self) -> ExpiryReport:
        """Recompute the report at the clock's time and set the gauge (no log line)."""
        report = expiring(self.directory, self.clock.now())
        gauge = self.metrics.certificates_expiring
        for bucket in BUCKETS:
            gauge.labels(within=bucket).set(report.counts[bucket])
        self.last = report
        return report

    def check(self) -> ExpiryReport:
        """Refresh the gauge; log the summary if none was logged in the last ``log_every``."""
        report = self.refresh()
        if self._logged_at is None or report.at - self._logged_at >= self.log_every:
            self._logged_at = report.at
            self._log(report)
        return report

    def _log(self, report: ExpiryReport) -> None:
        c = report.counts
        urgent = c["expired"] > 0 or c["7d"] > 0
        emit = self.log.warning if urgent else self.log.info
        emit("certificates expiring", expired=c["expired"], within_7d=c["7d"], within_30d=c["30d"],
             within_60d=c["60d"], expired_agencies=report.agencies("expired")[:20],
             soonest=report.soonest(LOG_SOONEST), directory_version=report.directory_version)

    def follow(self) -> None:
        """Refresh the gauge whenever the directory is replaced (once registered, until :meth:`stop`)."""
        if not self._listening:
            self.directory.on_change(self._on_directory_change)
            self._listening = True

    def _on_directory_change(self, _directory: Directory) -> None:
        if not self._stop.is_set():
            self.refresh()

    async def run(self) -> None:
        """Check now, then every ``interval_s`` until :meth:`stop`; follow directory changes meanwhile."""
        self.follow()
        first = self.last is None  # certificates_ctx checks before serving; then the loop waits first
        while not self._stop.is_set():
            if not first:
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
                    break
                except TimeoutError:
                    pass
            first = False
            try:
                self.check()
            except Exception:  # a bug here must not end the watch: log it and try again next time
                self.log.exception("certificate expiry check failed")

    def stop(self) -> None:
        self._stop.set()


async def certificates_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: start the watch (its first check runs before the app serves), stop it at exit."""
    watch = CertificateWatch(app[keys.DIRECTORY], app[keys.CLOCK], app[keys.METRICS])
    watch.check()  # the gauge and the first log line are there before the first scrape
    task = asyncio.create_task(watch.run())
    yield
    watch.stop()
    await task
