"""Typed application keys, in one place.

A key whose value's type lives in a layer above the core (the exchange service, the dispatcher,
the audit sealer and verification job, the login throttle) is declared with ``object`` here:
the core may not import those layers. The HTTP layer reads them through the typed accessors of
:mod:`gateway.http.appstate`.
"""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web

from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.lists import DistributionList
from gateway.core.metrics import Metrics
from gateway.core.sealing import CheckpointSigner, Sealer
from gateway.core.settings import Settings
from gateway.core.signing import Trust

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DIRECTORY = web.AppKey("directory", Directory)
#: The distribution lists of the directory file (none when the directory was given as an object).
DIRECTORY_LISTS: web.AppKey[tuple[DistributionList, ...]] = web.AppKey("directory_lists")
METRICS = web.AppKey("metrics", Metrics)
POOL = web.AppKey("pool", asyncpg.Pool)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SEALER = web.AppKey("sealer", Sealer)
EXCHANGE = web.AppKey("exchange", object)  # gateway.exchange.service.Exchange (a layer above the core)
DISPATCHER = web.AppKey("dispatcher", object)  # gateway.delivery.dispatcher.Dispatcher (likewise)
DATABASE_URL = web.AppKey("database_url", str)
TRUST = web.AppKey("trust", Trust)
AUDIT_SIGNER = web.AppKey("audit_signer", CheckpointSigner)
AUDIT_SEALER = web.AppKey("audit_sealer", object)  # gateway.audit.sealer.ChainSealer (a layer above the core)
SESSION_KEY = web.AppKey("session_key", bytes)
AUDIT_VERIFY = web.AppKey("audit_verify", object)  # gateway.audit.live.VerifyJob (likewise)
LOGIN_THROTTLE = web.AppKey("login_throttle", object)  # gateway.intake.limits.LoginThrottle (likewise)
STATS_JOB = web.AppKey("stats_job", object)  # gateway.exchange.stats.StatsJob (likewise)
