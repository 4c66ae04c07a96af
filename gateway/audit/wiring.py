"""The audit sealer inside ``gateway serve``: one background task per process (any may seal)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.audit.sealer import ChainSealer, SealerSettings, TimeStamper
from gateway.audit.signing import PemSigner
from gateway.audit.tsa import http_timestamper
from gateway.core import appkeys as keys
from gateway.core.sealing import CheckpointSigner
from gateway.core.settings import Settings

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
    sealer = ChainSealer(app[keys.POOL], clock=app[keys.CLOCK], signer=signer, timestamper=timestamper,
                         settings=SealerSettings(interval_s=settings.audit_seal_interval_s,
                                                 checkpoint_events=settings.audit_checkpoint_events,
                                                 checkpoint_seconds=settings.audit_checkpoint_seconds))
    app[keys.AUDIT_SEALER] = sealer
    task = asyncio.create_task(sealer.run())
    yield
    sealer.stop()
    await task
