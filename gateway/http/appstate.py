"""Typed access to the services :func:`gateway.http.app.create_app` puts on the application.

:mod:`gateway.core.appkeys` declares the keys of services from layers above the core as
``object`` (the core may not import them). The HTTP layer, which stands above all of them,
reads those keys here and checks the type once, so handlers get an :class:`Exchange`, not an
``object``, and a wiring mistake fails loudly at the first request instead of deep in a handler.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from gateway.audit.live import VerifyJob
from gateway.core import appkeys as keys
from gateway.exchange.service import Exchange
from gateway.exchange.stats import StatsJob
from gateway.intake.limits import LoginThrottle

T = TypeVar("T")


def _get(app: web.Application, key: web.AppKey[object], kind: type[T]) -> T:
    value = app[key]
    if not isinstance(value, kind):
        raise TypeError(f"app[{key!r}] holds a {type(value).__name__}, not a {kind.__name__}")
    return value


def exchange(app: web.Application) -> Exchange:
    return _get(app, keys.EXCHANGE, Exchange)


def login_throttle(app: web.Application) -> LoginThrottle:
    return _get(app, keys.LOGIN_THROTTLE, LoginThrottle)


def verify_job(app: web.Application) -> VerifyJob:
    return _get(app, keys.AUDIT_VERIFY, VerifyJob)


def stats_job(app: web.Application) -> StatsJob:
    return _get(app, keys.STATS_JOB, StatsJob)
