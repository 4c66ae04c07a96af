"""The legacy e-CMS listener (ช่องทางสำหรับระบบสารบรรณรุ่นเก่า): off unless configured.

Saraban systems in service were configured with ``http://…/ecms-ws01/service2`` URLs, and older
.NET Framework clients offer nothing newer than TLS 1.0 unless someone reconfigures them. For
them the gateway can open a second listener, bound to an address on the government network
(``GATEWAY_ECMS_LEGACY_HOST``), on a plain-HTTP port and/or a TLS port with an RSA certificate
offering TLS 1.0/1.1 with RSA key exchange and CBC suites (``GATEWAY_ECMS_LEGACY_*``).

It serves the e-CMS endpoint and nothing else: every other path is refused (404) before any
handler of the main app could see it, so the native API, the console and ``/metrics`` are never
reachable over it. Who is calling is decided as :mod:`gateway.core.admission` says: the source
network of the TCP peer address (plain HTTP or TLS), or a URL key (TLS only). The facade, its
exchange and the unknown-key throttle are the main app's: the same rules, the same database.

It is started by the app's cleanup context (:func:`legacy_listener_ctx`, wired by ``create_app``), so
``gateway serve`` and every worker it supervises open it (with ``SO_REUSEPORT`` like the main port).
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import AsyncIterator
from typing import Final

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.core import appkeys as keys
from gateway.core.admission import Listener
from gateway.core.errors import ConfigError
from gateway.core.settings import Settings
from gateway.ecms import endpoint
from gateway.ecms.settings import ECMS_PATH

log = structlog.get_logger(__name__)

#: The running legacy sites of an app: (scheme, host, port) each, for banners and tests.
LEGACY_SITES = web.AppKey("ecms_legacy_sites", list)
_VERSIONS: Final = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2}
_REFUSED = ("ช่องทางนี้รับเฉพาะ e-CMS ที่ " + ECMS_PATH + ": this listener serves only the e-CMS endpoint "
            + ECMS_PATH + "\n").encode()


def enabled(settings: Settings) -> bool:
    return bool(settings.ecms_legacy_http_port or settings.ecms_legacy_tls_port)


def legacy_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of the legacy TLS port: an RSA certificate, the configured oldest version and suites."""
    cert, key = settings.ecms_legacy_tls_cert, settings.ecms_legacy_tls_key
    if cert is None or key is None:
        raise ConfigError("the legacy TLS port needs GATEWAY_ECMS_LEGACY_TLS_CERT and GATEWAY_ECMS_LEGACY_TLS_KEY "
                          "(an RSA certificate)", field="GATEWAY_ECMS_LEGACY_TLS_CERT")
    try:
        public_key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GATEWAY_ECMS_LEGACY_TLS_CERT {cert}: {exc}", field="GATEWAY_ECMS_LEGACY_TLS_CERT") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ConfigError("GATEWAY_ECMS_LEGACY_TLS_CERT must carry an RSA key: the clients this port exists for "
                          "offer only RSA suites", field="GATEWAY_ECMS_LEGACY_TLS_CERT")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: offering them is this port's purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _VERSIONS[settings.ecms_legacy_tls_min_version]
    try:
        ctx.set_ciphers(settings.ecms_legacy_tls_ciphers)
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"the legacy TLS port cannot use its certificate or cipher list: {exc}",
                          field="GATEWAY_ECMS_LEGACY_TLS_CIPHERS") from None
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


@web.middleware
async def _only_ecms(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every path but the e-CMS endpoint is refused, whatever its method; so is any method but POST."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return web.Response(status=exc.status, body=_REFUSED, content_type="text/plain", charset="utf-8")
        raise


def legacy_app(main: web.Application) -> web.Application:
    """The legacy listener's app: the e-CMS routes only, with the main app's facade and throttle."""
    settings = main[keys.SETTINGS]
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_only_ecms])
    app[keys.SETTINGS] = settings
    app[endpoint.LISTENER_KEY] = Listener.LEGACY
    app[endpoint.FACADE_KEY] = main[endpoint.FACADE_KEY]
    app[endpoint.THROTTLE_KEY] = main[endpoint.THROTTLE_KEY]
    app.router.add_post(ECMS_PATH, endpoint.handle)
    app.router.add_post(endpoint.KEYED_PATH, endpoint.handle_keyed)
    return app


async def legacy_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the legacy listener's ports (if configured) once the main app's facade exists; close them last."""
    settings = app[keys.SETTINGS]
    app[LEGACY_SITES] = []
    if not enabled(settings):
        yield
        return
    if not settings.ecms_legacy_host:
        raise ConfigError("the legacy e-CMS listener needs GATEWAY_ECMS_LEGACY_HOST", field="GATEWAY_ECMS_LEGACY_HOST")
    ssl_context = legacy_ssl_context(settings) if settings.ecms_legacy_tls_port else None
    runner = web.AppRunner(legacy_app(app), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        host, reuse = settings.ecms_legacy_host, settings.reuse_port or None
        for scheme, port, ctx in (("http", settings.ecms_legacy_http_port, None),
                                  ("https", settings.ecms_legacy_tls_port, ssl_context)):
            if port:
                site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_address=True, reuse_port=reuse)
                await site.start()
                app[LEGACY_SITES].append((scheme, host, port))
                log.info("legacy e-CMS listener open", url=f"{scheme}://{host}:{port}{ECMS_PATH}")
        yield
    finally:
        await runner.cleanup()
