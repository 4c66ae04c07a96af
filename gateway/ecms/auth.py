"""Who is calling the e-CMS facade.

e-CMS clients send no credential of their own (the protocol has none), so the gateway adds one
they can carry without code changes: a client certificate pinned to the agency in the directory,
or (outside production) a bearer token, also accepted as ``?token=`` in the URL, which is all a
client lets its operator change.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from gateway.core.directory import Directory
from gateway.ecms.settings import EcmsSettings


def identify_caller(request: web.Request, directory: Directory, settings: EcmsSettings) -> str | None:
    """The calling agency: mutual-TLS certificate pinned in the directory, else a bearer
    token (header, or ``?token=`` when allowed: e-CMS clients can change only the URL)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
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
