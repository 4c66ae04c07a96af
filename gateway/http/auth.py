"""Who is calling: an agency (its own letters only), operator, auditor or admin.

Agencies authenticate with a client certificate (mutual TLS, bound to the
agency in the directory) or, in the development profile only, a bearer token
whose SHA-256 is in the directory. Every route states the role it needs;
:func:`require` refuses every other role with 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.clientcert import agency_of_client
from gateway.core.errors import AuthError
from gateway.storage import users

AGENCY = "agency"
OPERATOR = "operator"
AUDITOR = "auditor"
ADMIN = "admin"
ROLES = (AGENCY, OPERATOR, AUDITOR, ADMIN)


@dataclass(frozen=True)
class Principal:
    role: str
    """agency, operator, auditor or admin."""
    agency: str | None
    """The agency code, for the agency role."""
    subject: str
    """Who, for logs and the audit log (never a secret)."""
    method: str
    """How they authenticated: token, certificate, session."""


#: A bearer token is printable ASCII (RFC 6750's token68 and then some); anything else, bytes that
#: are not UTF-8 included (aiohttp reads them as surrogates, which cannot be hashed), is no token we issued.
_TOKEN = re.compile(r"[!-~]{1,4096}")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = value.strip()
    if not token:
        return None
    if not _TOKEN.fullmatch(token):
        raise AuthError("unknown token", code="auth.invalid_token")
    return token


PRINCIPAL = web.RequestKey("principal", Principal)


def _peer_certificate(request: web.Request) -> bytes | None:
    """The DER of the TLS client certificate the connection presented, if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True) or None


async def _from_certificate(request: web.Request, der: bytes) -> Principal:
    """The agency named by a verified TLS client certificate (chain checked by the TLS layer
    against the trust anchors, then validity and revocation by the trust store, cached per
    certificate, and the agency's registered TLS certificates, if it registers any:
    :func:`gateway.core.certexpiry.check_tls_client`)."""
    agency = await agency_of_client(der, request.app[keys.DIRECTORY], request.app[keys.TRUST].store)
    return Principal(role=AGENCY, agency=agency, subject=f"agency:{agency}", method="certificate")


#: The principal of an agency's development bearer token, per agency (a frozen value, the same for
#: every request: built once, not per request). Bounded: cleared past this many agencies.
_TOKEN_AGENCIES: dict[str, Principal] = {}
_TOKEN_AGENCIES_MAX = 10_000


def _token_agency(agency: str) -> Principal:
    principal = _TOKEN_AGENCIES.get(agency)
    if principal is None:
        if len(_TOKEN_AGENCIES) >= _TOKEN_AGENCIES_MAX:
            _TOKEN_AGENCIES.clear()
        principal = _TOKEN_AGENCIES[agency] = Principal(role=AGENCY, agency=agency, subject=f"agency:{agency}",
                                                        method="token")
    return principal


async def authenticate(request: web.Request) -> Principal:
    # (an empty request state holds no principal: Mapping.get would raise and catch a KeyError to say so)
    cached = request.get(PRINCIPAL) if len(request) else None
    if cached is not None:
        return cached
    app = request.app
    directory = app[keys.DIRECTORY]
    settings = app[keys.SETTINGS]
    der = _peer_certificate(request)
    if der is not None:
        by_certificate = await _from_certificate(request, der)
        request[PRINCIPAL] = by_certificate
        return by_certificate
    principal: Principal | None = None
    token = _bearer(request)
    if token is not None:
        # Agency bearer tokens are a development convenience; staff API tokens (users table,
        # stored as SHA-256) are valid in every profile.
        agency = directory.agency_for_token(token)
        if agency is not None:
            if settings.profile == "production":
                raise AuthError("bearer tokens are off in the production profile; use a client certificate",
                                code="auth.token_disabled")
            principal = _token_agency(agency)
        else:
            user = await users.user_for_token(app[keys.POOL], token)
            if user is None:
                raise AuthError("unknown token", code="auth.invalid_token")
            if user.role is users.Role.AGENCY and settings.profile == "production":
                # An agency acts through its client certificate in production, whoever holds a token.
                raise AuthError("agency tokens are off in the production profile; use a client certificate",
                                code="auth.token_disabled")
            principal = Principal(role=user.role.value, agency=user.agency, subject=f"user:{user.username}",
                                  method="token")
    if principal is None:
        raise AuthError("authentication required (client certificate or bearer token)", code="auth.required")
    request[PRINCIPAL] = principal
    return principal


async def require(request: web.Request, *roles: str) -> Principal:
    principal = await authenticate(request)
    if principal.role not in roles:
        raise AuthError(f"this needs the role {' or '.join(roles)}", code="auth.forbidden")
    return principal


async def require_agency(request: web.Request) -> str:
    """The calling agency's code (role agency): the routes that act for an agency need it. (:func:`require`
    inlined for the one role: a coroutine less on every letter, the same refusal.)"""
    principal = await authenticate(request)
    if principal.role != AGENCY:
        raise AuthError(f"this needs the role {AGENCY}", code="auth.forbidden")
    if principal.agency is None:  # an agency-role user added without an agency code
        raise AuthError(f"{principal.subject} acts for no agency", code="auth.no_agency")
    return principal.agency
