"""``create_app(settings)``: wiring only.

Each long-lived resource is acquired and released in ``cleanup_ctx``, in
order: the database (embedded server started if no URL is configured, pool,
migrations), the one shared HTTP client session, the exchange service, the
dispatcher workers. Dependencies that tests control (clock, directory, sealer,
HTTP session) can be passed in.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import structlog
import tenacity
from aiohttp import web

from gateway.audit.live import VerifyJob
from gateway.audit.wiring import audit_ctx
from gateway.core import appkeys as keys
from gateway.core.clock import Clock, SystemClock
from gateway.core.directory import Directory
from gateway.core.lists import load_lists
from gateway.core.metrics import Metrics
from gateway.core.sealing import CheckpointSigner, DigestOnlySealer, Sealer
from gateway.core.settings import Settings
from gateway.core.signing import PkiSealer, build_trust
from gateway.exchange.certificates import certificates_ctx
from gateway.exchange.search_index import search_index_ctx
from gateway.exchange.stats import stats_ctx
from gateway.http import api, console
from gateway.http.legacy_listener import legacy_listener_ctx
from gateway.http.routes import setup_routes
from gateway.http.services import build_services
from gateway.intake.limits import LoginThrottle
from gateway.storage import db

log = structlog.get_logger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    dsn = settings.database_url
    if not dsn:
        dsn = await asyncio.to_thread(db.start_embedded, settings.data_dir)
        log.info("embedded PostgreSQL running", data_dir=str(settings.data_dir / "pg"))
    app[keys.DATABASE_URL] = dsn
    pool = await _connect(settings, dsn)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    app[keys.POOL] = pool
    yield
    await pool.close()


async def _connect(settings: Settings, dsn: str) -> asyncpg.Pool:
    """The pool, waiting up to ``database_wait_s`` for a database that is not reachable yet (starting
    up, recovering, failing over), with a warning per try: an operator sees why the gateway is not
    listening yet instead of finding it exited."""
    def warn(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("database not reachable yet; retrying", attempt=state.attempt_number,
                    error=f"{type(exc).__name__}: {exc}", waited_s=round(state.seconds_since_start or 0, 1),
                    gives_up_after_s=settings.database_wait_s)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(db.TRANSIENT_ERRORS),
        wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=5.0),
        stop=tenacity.stop_after_delay(settings.database_wait_s), before_sleep=warn, reraise=True)
    async for attempt in retrying:
        with attempt:
            return await db.create_pool(dsn, min_size=settings.pool_min, max_size=settings.pool_max)
    raise AssertionError("unreachable")


async def _pki(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    trust = await asyncio.to_thread(build_trust, settings, app[keys.DIRECTORY], app[keys.METRICS],
                                    app[keys.CLOCK])
    app[keys.TRUST] = trust
    if keys.SEALER not in app:
        app[keys.SEALER] = (PkiSealer(trust.seal_signer) if trust.seal_signer is not None
                            else DigestOnlySealer())
    if keys.AUDIT_SIGNER not in app and not settings.audit_key_path and trust.seal_signer is not None:
        # Checkpoints of the audit chain are signed with the gateway's seal key: auditors verify
        # them offline with the same certificate as receipts and seals.
        app[keys.AUDIT_SIGNER] = trust.seal_signer
    yield


async def _http(app: web.Application) -> AsyncIterator[None]:
    if keys.HTTP in app:
        yield
        return
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=32, ttl_dns_cache=300)
    session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "saraban-gateway/0.1"})
    app[keys.HTTP] = session
    yield
    await session.close()


async def _exchange(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    trust = app[keys.TRUST]
    services = build_services(
        settings=settings, pool=app[keys.POOL], directory=app[keys.DIRECTORY], sealer=app[keys.SEALER],
        clock=app[keys.CLOCK], metrics=app[keys.METRICS], http=app[keys.HTTP],
        worker=settings.node_name or f"{socket.gethostname()}:{os.getpid()}",
        verifier=trust.verifier(settings), trust_store=trust.store,
        pdf_checker=trust.pdf_checker(settings) if settings.validate_pdf else None, with_admission=True)
    app[keys.EXCHANGE] = services.exchange
    app[keys.DISPATCHER] = dispatcher = services.dispatcher
    live = services.exchange.live_directory
    # the configured directory (and its file's distribution lists) synchronised into the database, then kept live
    lists = app[keys.DIRECTORY_LISTS]
    await live.start(lists=lists)
    task = asyncio.create_task(dispatcher.run()) if settings.dispatch.enabled else None
    if services.exchange.accept.validation is not None:  # a changed trust store is a new dated snapshot now
        await services.exchange.accept.validation.snapshot()
    # letters held in validation-pending (hard-fail, responders unreachable) are re-checked in the background
    pending = asyncio.create_task(services.pending.run()) if services.pending is not None else None
    yield
    if pending is not None and services.pending is not None:
        services.pending.stop()
        await pending
    await live.stop()
    if task is not None:
        await dispatcher.stop()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


#: The longest request line the HTTP layer reads (aiohttp's default is 8190 bytes). Every query parameter at
#: its documented maxLength, percent-encoded (a Thai character is 9 bytes, another up to 12), is about 25 KB:
#: a 1000-character Thai subject search must reach the API, which then answers in JSON.
REQUEST_LINE_MAX = 65536


def create_app(settings: Settings, *, clock: Clock | None = None, directory: Directory | None = None,
               sealer: Sealer | None = None, http: aiohttp.ClientSession | None = None,
               audit_signer: CheckpointSigner | None = None) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[api.error_middleware],
                          handler_args={"max_line_size": REQUEST_LINE_MAX})
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock or SystemClock()
    app[keys.DIRECTORY] = directory or Directory.load(settings.directory_path)
    app[keys.DIRECTORY_LISTS] = () if directory is not None else load_lists(settings.directory_path)
    app[keys.METRICS] = Metrics()
    if sealer is not None:
        app[keys.SEALER] = sealer
    if http is not None:
        app[keys.HTTP] = http
    if audit_signer is not None:
        app[keys.AUDIT_SIGNER] = audit_signer
    app[keys.AUDIT_VERIFY] = job = VerifyJob()
    app[keys.LOGIN_THROTTLE] = LoginThrottle()
    app.on_shutdown.append(lambda _app: job.cancel())
    app.cleanup_ctx.extend([_database, _pki, _http, _exchange, certificates_ctx, audit_ctx, stats_ctx,
                             search_index_ctx])
    setup_routes(app)  # every URL of the app, e-CMS included: gateway.http.routes
    # the legacy e-CMS listener (off unless GATEWAY_ECMS_LEGACY_* ports are set), once the facade exists
    app.cleanup_ctx.append(legacy_listener_ctx)
    console.setup(app)
    return app
