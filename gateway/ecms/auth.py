"""Who is calling the e-CMS facade, and how it was let in (:class:`gateway.core.admission.Caller`).

e-CMS clients send no credential of their own (the protocol has none), so the gateway adds ways
in they can use without code changes (the modes and where each is allowed:
:mod:`gateway.core.admission`):

* on the main listener, the agency's TLS client certificate, admitted exactly as the native API
  admits it (:func:`gateway.core.clientcert.agency_of_client`: chain, validity, revocation, the
  agency named in the certificate, its registered TLS certificates), or (outside production) a
  bearer token, also accepted as ``?token=`` in the URL, which is all a client lets its operator
  change. A certificate that is presented and refused is not passed over for a token;
* a URL key, ``/ecms/<key>/ecms-ws01/service2``, over TLS only (main or legacy TLS listener);
* on the legacy listener, the source network of the TCP peer address.

An unknown key, network or certificate is a refusal with a stable code (``auth.*``: ErrorCode
ECMS-200) that tells the client what to fix; the key is never logged nor echoed.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import structlog
from aiohttp import web

from gateway.core.admission import Caller, KeyThrottle, Listener, Mode
from gateway.core.clientcert import agency_of_client
from gateway.core.directory import Directory
from gateway.core.errors import AuthError
from gateway.ecms.settings import EcmsSettings
from pki.trust import TrustStore

log = structlog.get_logger(__name__)


def peer_of(request: web.Request) -> str | None:
    """The TCP peer address of the connection (never a header a client or proxy wrote)."""
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peername, (tuple, list)) and peername:
        return str(peername[0])
    return None


def _tls(request: web.Request) -> bool:
    return bool(request.transport and request.transport.get_extra_info("ssl_object") is not None)


async def identify_caller(request: web.Request, directory: Directory, settings: EcmsSettings,
                          trust: TrustStore | None = None, *, key: str | None = None,
                          listener: Listener = Listener.MAIN, throttle: KeyThrottle | None = None,
                          now: dt.datetime | None = None) -> Caller | None:
    """The calling agency and its mode, or None (no credential at all: the facade answers
    ``auth.required``). Raises :class:`AuthError` for a credential that is refused.

    ``key``: the URL key of a ``/ecms/<key>/...`` request. On the legacy listener only a URL key
    (over TLS) or the peer's source network admits; on the main listener a client certificate
    (as the native API admits it; without a trust store, a certificate pinned in the directory),
    a URL key over TLS, else a bearer token (header, or ``?token=`` when allowed)."""
    tls, peer = _tls(request), peer_of(request)
    at = now or dt.datetime.now(dt.UTC)
    if key is not None:
        return _by_key(directory, key, tls=tls, peer=peer, listener=listener, throttle=throttle, now=at)
    if listener is Listener.LEGACY:
        return _by_network(directory, peer, tls=tls)
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        if der and trust is not None:
            try:
                agency = await agency_of_client(der, directory, trust)
            except AuthError as exc:
                log.info("e-CMS client certificate refused", code=exc.code, reason=exc.message)
                return None
            return Caller(agency, Mode.CERTIFICATE, Listener.MAIN, tls=True, peer=peer)
        if der:
            pinned = directory.agency_for_fingerprint(hashlib.sha256(der).hexdigest())
            if pinned is not None:
                return Caller(pinned, Mode.CERTIFICATE, Listener.MAIN, tls=True, peer=peer)
    if not settings.allow_tokens:
        return None
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if token is None and settings.allow_url_token:
        token = request.query.get("token")
    if token:
        by_token = directory.agency_for_token(token)
        return Caller(by_token, Mode.TOKEN, Listener.MAIN, tls=tls, peer=peer) if by_token else None
    return None


def _by_key(directory: Directory, key: str, *, tls: bool, peer: str | None, listener: Listener,
            throttle: KeyThrottle | None, now: dt.datetime) -> Caller:
    found = directory.admission.agency_for_key(key, now)
    if not tls:
        if found is not None:  # it travelled in clear: whoever was on the path may hold it now
            log.warning("a URL key was sent over plain HTTP; issue a new one (gateway ecms-key rotate)",
                        agency=found[0], url_key_id=found[1].id, peer=peer)
        raise AuthError("กุญแจใน URL ใช้ได้เฉพาะทาง HTTPS: a URL key is accepted over HTTPS only (it would travel "
                        "in clear); use https:// and ask the gateway's operator for a new key",
                        code="auth.key_over_plain_http", field="url")
    if found is not None:
        return Caller(found[0], Mode.URL_KEY, listener, tls=True, peer=peer, key_id=found[1].id)
    address = peer or "?"
    if throttle is not None:
        throttle.check(address)
        if throttle.missed(address):
            log.warning("unknown URL keys from one address: slowed down", peer=address)
    log.info("unknown URL key refused", peer=address)
    raise AuthError("ไม่รู้จักกุญแจใน URL: the key in the URL is not issued to any agency, or was revoked",
                    code="auth.unknown_key", field="url")


def _by_network(directory: Directory, peer: str | None, *, tls: bool) -> Caller:
    agency = directory.admission.agency_for_address(peer or "")
    if agency is None:
        log.info("legacy listener: address in no registered network", peer=peer)
        raise AuthError(f"ที่อยู่ {peer} ไม่อยู่ในเครือข่ายที่ลงทะเบียนไว้: the address {peer} is not in a source "
                        "network registered for an agency in the directory", code="auth.unknown_network",
                        field="peer")
    return Caller(agency, Mode.NETWORK, Listener.LEGACY, tls=tls, peer=peer)
