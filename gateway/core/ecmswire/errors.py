"""The error of the e-CMS wire format."""

from __future__ import annotations

from gateway.core.errors import GatewayError


class EcmsError(GatewayError):
    """e-CMS input that does not follow the profile (not SOAP 1.1, no known operation, a bad date,
    code or binary), or a refusal at the e-CMS facade.

    ``code`` is the gateway's stable domain code (``ecms.not_soap``, ``ecms.invalid_date`` ...) and
    ``field`` names the place in the request. The e-CMS ErrorCode and the HTTP status a client gets
    are the edge's choice (:mod:`gateway.ecms.codes`)."""

    code = "ecms.invalid"
