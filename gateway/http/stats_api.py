"""Statistics as JSON (``/v1/stats/...``), for agencies' own reporting and for staff.

The same questions and answers as the console's statistics pages (:mod:`gateway.http.stats_query`),
read from the rollups (:mod:`gateway.storage.stats`): never a scan of the letters. Figures lag the
letters by one round of the rollup job (a few seconds).
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway.core import appkeys as keys
from gateway.http import auth, params, stats_query
from gateway.http.stats_query import Question

EVERYONE = (auth.AGENCY, auth.OPERATOR, auth.AUDITOR, auth.ADMIN)


def _json(data: object) -> web.Response:
    return web.json_response(data, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


async def _question(request: web.Request, default_side: str = "sender") -> Question:
    principal = await auth.require(request, *EVERYONE)
    app = request.app
    return await stats_query.read(request.query, pool=app[keys.POOL], today=stats_query.today(app[keys.CLOCK].now()),
                                  role=principal.role, agency=principal.agency, default_side=default_side)


async def volumes(request: web.Request) -> web.Response:
    """Role: agency (its own subtree), operator, auditor, admin. Letters accepted, deliveries completed,
    dead letters and registry answers per day or hour, for a scope and period."""
    qn = await _question(request)
    return _json(await stats_query.volumes(request.app[keys.POOL], qn))


async def service_levels(request: web.Request) -> web.Response:
    """Role: agency (its own subtree), operator, auditor, admin. Time from acceptance to delivery and from
    delivery to the registry's answer (p50/p90/p99) per agency (the ``limit`` busiest); the slowest; those
    that never answer."""
    qn = await _question(request, default_side="recipient")
    limit = params.limit(request.query, default=100, top=10_000)
    return _json(await stats_query.service_levels(request.app[keys.POOL], qn, request.app[keys.DIRECTORY],
                                                  limit=limit))


async def failures(request: web.Request) -> web.Response:
    """Role: agency (its own subtree), operator, auditor, admin. Open circuits and dead letters (since when),
    the dead-letter trend, refused submissions by code per sending agency."""
    qn = await _question(request, default_side="recipient")
    return _json(await stats_query.failures(request.app[keys.POOL], qn, request.app[keys.DIRECTORY]))
