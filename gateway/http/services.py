"""The services built complete in one place: the exchange and the dispatcher, with their adapters.

Shared by the app (``create_app``) and the CLI. The dispatcher is built first so
the exchange can wake it when a letter is queued; neither is changed afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from adapters.base import Adapter
from adapters.ecms_node import EcmsNodeAdapter
from adapters.folder import FolderAdapter
from adapters.pull import PullAdapter
from adapters.push import AckVerifier, PushAdapter
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.metrics import Metrics
from gateway.core.sealing import Sealer
from gateway.core.settings import Settings
from gateway.delivery.dispatcher import Dispatcher
from gateway.delivery.retry import RetryPolicy
from gateway.exchange.pending import PendingChecks
from gateway.exchange.service import Exchange, build_exchange
from gateway.exchange.validation import ValidationRecorder
from gateway.intake.checks import Intake, Verifier
from gateway.intake.limits import Admission
from gateway.storage import deliveries
from gateway.storage.receipts import ReceiptFactory
from pki.trust import TrustStore


@dataclass(frozen=True)
class Services:
    exchange: Exchange
    dispatcher: Dispatcher
    #: Re-checks letters held in validation-pending (None when that state cannot arise).
    pending: PendingChecks | None = None


def build_services(*, settings: Settings, pool: asyncpg.Pool, directory: Directory, sealer: Sealer,
                   clock: Clock, metrics: Metrics, http: aiohttp.ClientSession | None, worker: str,
                   verifier: Verifier | None = None, pdf_checker: Any = None,
                   trust_store: TrustStore | None = None, with_admission: bool = False) -> Services:
    """``trust_store`` verifies offices' signed acknowledgements; without it a signed ack is refused,
    never kept unverified. ``http`` ``None`` (the CLI): only the pull and folder adapters."""
    # what each signed letter's and ack's validation relied on is kept (issue 16) where signatures are checked
    validation = ValidationRecorder(pool=pool, trust=trust_store, clock=clock, directory=directory) \
        if trust_store is not None and verifier is not None else None
    acks = AckVerifier(trust_store, record=validation.record_ack if validation is not None else None)
    adapters: dict[str, Adapter] = {"pull": PullAdapter(), "folder": FolderAdapter()}
    if http is not None:
        adapters["push"] = PushAdapter(http, timeout_s=settings.dispatch.request_timeout_s, acks=acks)
        adapters["ecms"] = EcmsNodeAdapter(http, timeout_s=settings.dispatch.request_timeout_s)
    retry = RetryPolicy.from_settings(settings.retry)
    receipts = ReceiptFactory(sealer=sealer, directory=directory, adapters=adapters, ttl_s=retry.ttl_s)
    dispatcher = Dispatcher(pool=pool, directory=directory, adapters=adapters, retry=retry, receipts=receipts,
                            clock=clock, metrics=metrics, settings=settings.dispatch, worker=worker)
    admission = Admission(
        rate_per_agency=settings.rate_per_agency, burst=settings.rate_burst,
        max_queue_depth=settings.max_queue_depth,
        depth=lambda: deliveries.outbound_depth(pool), workers=settings.workers) if with_admission else None
    exchange = build_exchange(
        pool=pool, directory=directory,
        intake=Intake(directory, max_bytes=settings.max_body_bytes, max_part_bytes=settings.max_part_bytes,
                      verifier=verifier, pdf_checker=pdf_checker),
        sealer=sealer, adapters=adapters, receipts=receipts, acks=acks, ttl_s=retry.ttl_s, clock=clock,
        metrics=metrics, wake=dispatcher.wake, gateway_code=settings.gateway_code,
        stamp_received=settings.stamp_received, admission=admission,
        validation=validation,
        pending_s=settings.validation_pending_hours * 3600 if settings.revocation == "hard-fail" else 0.0)
    pending = None
    accept = exchange.accept
    if accept.pending_s > 0 and trust_store is not None:
        pending = PendingChecks(pool=pool, trust=trust_store, recorder=accept.validation, clock=clock,
                                directory=directory, adapters=adapters, sealer=sealer,
                                gateway_code=settings.gateway_code, ttl_s=retry.ttl_s, wake=dispatcher.wake,
                                allow_sha1=settings.allow_sha1,
                                first_s=settings.validation_recheck_s, pdf_checker=pdf_checker)
    return Services(exchange=exchange, dispatcher=dispatcher, pending=pending)
