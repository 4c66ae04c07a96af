"""Settings of the e-CMS facade, and how the gateway's settings decide them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from gateway.core.settings import Settings

ECMS_PATH = "/ecms-ws01/service2"
BANGKOK = dt.timezone(dt.timedelta(hours=7), "Asia/Bangkok")


@dataclass(frozen=True)
class EcmsSettings:
    """Settings of the e-CMS facade. Under ``create_app`` the signature policy comes from the
    gateway's settings (``GATEWAY_ECMS_ACCEPT_UNSIGNED``, ``GATEWAY_ECMS_ALLOW_LEGACY_SHA1``,
    ``GATEWAY_ECMS_REQUIRE_TRUSTED_SIGNATURE``), tokens from the profile; the defaults here
    serve a facade built directly."""

    max_bytes: int = 64 * 1024 * 1024
    """Largest SOAP request read, in bytes (letters carry base64 PDFs)."""
    accept_unsigned: bool = True
    """Accept letters without a legacy ds:Signature (most e-CMS clients never sign)."""
    allow_legacy_sha1: bool = False
    """Legacy profile: accept rsa-sha1 / sha1 signatures over #Letter."""
    require_trusted_signature: bool = False
    """Refuse a present signature whose certificate is not trusted for the sending agency
    (otherwise it is recorded as untrusted and the letter is treated like an unsigned one).
    Trusted: validated by the facade's trust store when it has one (create_app passes the
    gateway's), else pinned to the agency in the directory."""
    allow_tokens: bool = True
    """Accept development bearer tokens (off in the production profile: certificates only)."""
    allow_url_token: bool = True
    """Accept the development token as ``?token=`` so that clients change only the URL."""
    lowercase_process_id_alias: bool = True
    """Also emit ``processID`` (same value, right after ``ProcessID``) in the answers that carry an item's
    ProcessID: outbound-notifier answers and inbound answers (``CorrespondenceLetterInboundRequest`` /
    ``InboundSpecialRequest``, a letter or a notifier). BOI-DMS reads ``SelectSingleNode("processID")``
    after sending Accept/Reject/Invalid/InvalidAcceptID notifiers and after pulling Reject and
    InvalidAcceptID notifiers (``gateway/ecms/CODES.md``)."""
    public_url: str = ""
    """The gateway's e-CMS URL, advertised as ECMS-URL by GetOrganizationList."""
    zone: dt.tzinfo = BANGKOK
    """Zone of ProcessTime / ECMSTime."""
    inbox_scan: int = 200
    """How many queued items InboundSpecialRequest looks through."""


def from_gateway(s: EcmsSettings, gw: Settings) -> EcmsSettings:
    """``s`` under the gateway's settings: the signature policy is the gateway's (GATEWAY_ECMS_*),
    never the facade's defaults; tokens only outside production; the smaller body limit."""
    return replace(s, allow_tokens=gw.profile != "production",
                   max_bytes=min(s.max_bytes, gw.max_body_bytes),
                   public_url=s.public_url or (gw.public_url.rstrip("/") + ECMS_PATH
                                               if gw.public_url else ""),
                   accept_unsigned=bool(gw.ecms_accept_unsigned),
                   allow_legacy_sha1=bool(gw.ecms_allow_legacy_sha1),
                   require_trusted_signature=gw.ecms_require_trusted_signature)
