"""Every URL the gateway serves, in one table (as aiohttp-demos' ``routes.py``).

=============================  ==============================================================
``/v1/messages...``            native API, agencies (:mod:`gateway.http.api`)
``/v1/inbox...``               pull inbox, agencies (:mod:`gateway.http.api`)
``/healthz`` ``/readyz``       operations: liveness, readiness, Prometheus metrics, the OpenAPI
``/metrics`` ``/v1/openapi``   document (:mod:`gateway.http.api`)
``/v1/audit/...``              auditor API (:mod:`gateway.http.auditor_api`)
``/v1/deliveries/...``         operator API: dead letters, requeue, queues
``/v1/queues``                 (:mod:`gateway.http.auditor_api`)
``/v1/directory/...``          the agency directory (:mod:`gateway.http.directory_api`)
``/v1/stats/...``              statistics and service levels (:mod:`gateway.http.stats_api`)
``/ecms-ws01/service2``        the e-CMS SOAP 1.1 facade (:mod:`gateway.ecms.endpoint`); with a URL key:
``/ecms/{key}/ecms-ws01/...``  ``/ecms/<key>/ecms-ws01/service2`` (TLS only)
``/console...``                the staff console, server-rendered (:mod:`gateway.http.console.views`);
                               its statistics pages (:mod:`gateway.http.console.stats`)
=============================  ==============================================================

Each handler's docstring names the roles it admits; ``tests/audit/test_roles.py``
checks every route here against them, and ``tests/unit/test_openapi.py`` checks
that ``openapi.json`` documents exactly the API routes.
"""

from __future__ import annotations

from functools import partial

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from gateway.ecms import endpoint as ecms
from gateway.http import api, auditor_api, directory_api, stats_api
from gateway.http.console import certificates as console_certificates
from gateway.http.console import directory as console_directory
from gateway.http.console import stats as console_stats
from gateway.http.console import views as console


async def expect_handler(request: web.Request) -> None:
    """``Expect: 100-continue`` is answered as aiohttp does; any other expectation is ignored.

    RFC 9110 (10.1.1) lets a server answer 417 to an expectation it does not know, or serve the
    request; aiohttp's default answered 417 with a plain-text body that no operation documents, to
    any client (or probe) that sent a stray ``Expect``. Serving the request keeps every answer one
    the OpenAPI document names."""
    if request.version == HttpVersion11 and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


class _Router:
    """``app.router`` with :func:`expect_handler` on every route."""

    def __init__(self, router: web.UrlDispatcher) -> None:
        self.add_get = partial(router.add_get, expect_handler=expect_handler)
        self.add_post = partial(router.add_post, expect_handler=expect_handler)
        self.add_put = partial(router.add_put, expect_handler=expect_handler)


def setup_routes(app: web.Application) -> None:
    router = _Router(app.router)

    # native API: letters (agencies)
    router.add_post("/v1/messages", api.submit_message)
    router.add_get("/v1/messages/{message_id}", api.message_status)
    router.add_post("/v1/messages/{message_id}/withdraw", api.withdraw_message)
    router.add_get("/v1/messages/{message_id}/stamped/{recipient}", api.stamped_letter)
    # native API: pull inbox (agencies)
    router.add_get("/v1/inbox", api.inbox)
    router.add_get("/v1/inbox/{delivery_id}", api.inbox_item)
    router.add_get("/v1/inbox/{delivery_id}/parts/{content_id}", api.inbox_part)
    router.add_post("/v1/inbox/{delivery_id}/ack", api.inbox_ack)
    # operations (public)
    router.add_get("/healthz", api.healthz)
    router.add_get("/readyz", api.readyz)
    router.add_get("/metrics", api.metrics)
    router.add_get("/v1/openapi.json", api.openapi)

    # auditor API (auditors and admins read; operators see queues and requeue)
    router.add_get("/v1/audit/letters", auditor_api.audit_letters)
    router.add_get("/v1/audit/letters/export", auditor_api.audit_letters_export)
    router.add_get("/v1/audit/events", auditor_api.audit_events)
    router.add_get("/v1/audit/events/export", auditor_api.audit_events_export)
    router.add_get("/v1/audit/status", auditor_api.audit_status)
    router.add_get("/v1/audit/letters/{pk:\\d+}/evidence.zip", auditor_api.evidence)
    router.add_get("/v1/deliveries/dead", auditor_api.dead)
    router.add_post("/v1/deliveries/{delivery_id}/requeue", auditor_api.requeue)
    router.add_get("/v1/queues", auditor_api.queues)

    # the directory: search and show (every participant), history (staff), change (admin)
    router.add_get("/v1/directory/agencies", directory_api.agencies)
    router.add_get("/v1/directory/agencies/{code}", directory_api.agency)
    router.add_put("/v1/directory/agencies/{code}", directory_api.put_agency)
    router.add_get("/v1/directory/agencies/{code}/history", directory_api.agency_history)

    # e-CMS SOAP 1.1 facade, for saraban systems that speak e-CMS (agencies). Its EcmsFacade is built
    # once the exchange exists, in a cleanup context of the app (unless a test put one in already).
    router.add_post(ecms.ECMS_PATH, ecms.handle)
    # ... and with an agency's URL key in the path, over TLS only (gateway.core.admission; never logged)
    router.add_post(ecms.KEYED_PATH, ecms.handle_keyed)
    if ecms.FACADE_KEY not in app:
        app.cleanup_ctx.append(ecms.facade_context(None))

    # staff console (sessions; see gateway.http.console)
    router.add_get("/console/login", console.login_page)
    router.add_post("/console/login", console.login)
    router.add_post("/console/logout", console.logout)
    router.add_get("/console", console.index)
    router.add_get("/console/", console.index)
    router.add_get("/console/letters", console.letters_page)
    router.add_get("/console/letters/{pk:\\d+}", console.letter_page)
    router.add_get("/console/queues", console.queues_page)
    router.add_get("/console/dead", console.dead_page)
    router.add_post("/console/deliveries/{delivery_id}/requeue", console.requeue)
    router.add_get("/console/directory", console_directory.directory_page)
    router.add_get("/console/directory/{code}", console_directory.agency_page)
    router.add_post("/console/directory/{code}", console_directory.agency_edit)
    router.add_get("/console/certificates", console_certificates.certificates_page)
    router.add_get("/console/audit", console.audit_page)
    router.add_post("/console/audit/verify", console.audit_verify)

    # statistics and service levels, from the rollups (agencies: their own subtree; staff: all)
    router.add_get("/v1/stats/volumes", stats_api.volumes)
    router.add_get("/v1/stats/service-levels", stats_api.service_levels)
    router.add_get("/v1/stats/failures", stats_api.failures)
    router.add_get("/console/stats", console_stats.volumes_page)
    router.add_get("/console/stats/service", console_stats.service_page)
    router.add_get("/console/stats/failures", console_stats.failures_page)
