"""Typed application keys, in one place."""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web

from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.metrics import Metrics
from gateway.core.sealing import Sealer
from gateway.core.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DIRECTORY = web.AppKey("directory", Directory)
METRICS = web.AppKey("metrics", Metrics)
POOL = web.AppKey("pool", asyncpg.Pool)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SEALER = web.AppKey("sealer", Sealer)
EXCHANGE = web.AppKey("exchange", object)  # gateway.exchange.service.Exchange (import cycle otherwise)
DISPATCHER = web.AppKey("dispatcher", object)  # gateway.delivery.dispatcher.Dispatcher
DATABASE_URL = web.AppKey("database_url", str)
TRUST = web.AppKey("trust", object)  # gateway.core.signing.Trust
AUDIT_SIGNER = web.AppKey("audit_signer", object)  # gateway.audit.signing.CheckpointSigner
AUDIT_SEALER = web.AppKey("audit_sealer", object)  # gateway.audit.sealer.ChainSealer
SESSION_KEY = web.AppKey("session_key", bytes)
AUDIT_VERIFY = web.AppKey("audit_verify", object)  # gateway.audit.live.VerifyJob
LOGIN_THROTTLE = web.AppKey("login_throttle", object)  # gateway.intake.limits.LoginThrottle
