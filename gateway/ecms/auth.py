"""Who is calling the e-CMS facade.

e-CMS clients send no credential of their own (the protocol has none), so the gateway adds one
they can carry without code changes: the agency's TLS client certificate, admitted exactly as the
native API admits it (:func:`gateway.core.clientcert.agency_of_client`: chain, validity, revocation,
the agency named in the certificate, its registered TLS certificates), or (outside production) a
bearer token, also accepted as ``?token=`` in the URL, which is all a client lets its operator change.
A certificate that is presented and refused is not passed over for a token: the caller is unknown.
"""

from __future__ import annotations

import hashlib

import structlog
from aiohttp import web

from gateway.core.clientcert import agency_of_client
from gateway.core.directory import Directory
from gateway.core.errors import AuthError
from gateway.ecms.settings import EcmsSettings
from pki.trust import TrustStore

log = structlog.get_logger(__name__)


async def identify_caller(request: web.Request, directory: Directory, settings: EcmsSettings,
                          trust: TrustStore | None = None) -> str | None:
    """The calling agency: its TLS client certificate (as the native API admits it; without a trust
    store, a certificate pinned in the directory), else a bearer token (header, or ``?token=`` when
    allowed: e-CMS clients can change only the URL)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        if der and trust is not None:
            try:
                return await agency_of_client(der, directory, trust)
            except AuthError as exc:
                log.info("e-CMS client certificate refused", code=exc.code, reason=exc.message)
                return None
        if der:
            agency = directory.agency_for_fingerprint(hashlib.sha256(der).hexdigest())
            if agency is not None:
                return agency
    if not settings.allow_tokens:
        return None
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if token is None and settings.allow_url_token:
        token = request.query.get("token")
    if token:
        return directory.agency_for_token(token)
    return None
