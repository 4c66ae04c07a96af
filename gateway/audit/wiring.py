"""The audit sealer inside ``gateway serve``: one background task per process, the leader seals
(``gateway.audit.sealer``)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

from gateway.audit.renewal import RenewalPolicy, renew
from gateway.audit.sealer import ChainSealer, SealerSettings, TimeStamper
from gateway.audit.signing import PemSigner
from gateway.audit.stamping import StampingJob, StampSettings
from gateway.audit.tsa import http_digest_stamper, http_timestamper
from gateway.core import appkeys as keys
from gateway.core.sealing import CheckpointSigner
from gateway.core.settings import Settings
from pki.ers import parse_weak_hashes, strong_hash
from pki.ltv_tsa import augmenting

log = structlog.get_logger(__name__)


def signer_from_settings(settings: Settings) -> PemSigner | None:
    if settings.audit_key_path and settings.audit_cert_path:
        return PemSigner(settings.audit_key_path, settings.audit_cert_path)
    return None


async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    signer: CheckpointSigner | None = app.get(keys.AUDIT_SIGNER) or signer_from_settings(settings)
    if signer is None:
        log.warning("no audit checkpoint key configured (GATEWAY_AUDIT_KEY_PATH): "
                    "the chain is kept but not signed")
    timestamper: TimeStamper | None = None
    if settings.audit_tsa_url:
        timestamper = http_timestamper(app[keys.HTTP], settings.audit_tsa_url)
    if signer is not None:
        app[keys.AUDIT_SIGNER] = signer
    dsn = app[keys.DATABASE_URL]

    async def connect() -> asyncpg.Connection:
        # TCP keepalives on the server's side of the leader's connection: a leader whose machine vanishes
        # (power, network) is noticed in ~25 s and its lock dropped, not after the OS default of 2 h
        # (ignored on a Unix socket, where the server sees a dead process at once)
        return await asyncpg.connect(dsn, server_settings={
            "application_name": "saraban-gateway audit sealer", "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"})

    sealer = ChainSealer(app[keys.POOL], clock=app[keys.CLOCK], signer=signer, timestamper=timestamper,
                         connect=connect,
                         settings=SealerSettings(interval_s=settings.audit_seal_interval_s,
                                                 checkpoint_events=settings.audit_checkpoint_events,
                                                 checkpoint_seconds=settings.audit_checkpoint_seconds))
    app[keys.AUDIT_SEALER] = sealer
    task = asyncio.create_task(sealer.run())
    stamping = stamping_job(app, settings)
    stamp_task = asyncio.create_task(stamping.run()) if stamping is not None else None
    yield
    sealer.stop()
    await task
    if stamping is not None and stamp_task is not None:
        stamping.stop()
        await stamp_task


def stamping_job(app: web.Application, settings: Settings) -> StampingJob | None:
    """The job that time-stamps seals and receipts and renews their records (needs ``audit_tsa_url``)."""
    if not settings.audit_tsa_url:
        return None
    weak = parse_weak_hashes(settings.weak_hashes)
    # every token keeps its TSA certificate's revocation data (pki.ltv_tsa), renewals' tokens too
    stamper = augmenting(http_digest_stamper(app[keys.HTTP], settings.audit_tsa_url), session=app[keys.HTTP],
                         on_error=lambda exc: log.warning("the TSA certificate's revocation data could not be kept",
                                                          error=f"{type(exc).__name__}: {exc}"))
    pool, clock = app[keys.POOL], app[keys.CLOCK]
    policy = RenewalPolicy(weak=weak, alg=strong_hash(settings.er_hash, weak),
                           margin=dt.timedelta(days=settings.er_renew_days))

    async def renewer() -> object:
        return await renew(pool, clock=clock, stamper=stamper, policy=policy)

    return StampingJob(pool, clock=clock, stamper=stamper, renewer=renewer,
                       settings=StampSettings(interval_s=settings.er_stamp_interval_s,
                                              batch=settings.er_stamp_batch, alg=policy.alg))
