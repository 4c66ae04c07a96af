"""How an e-CMS client is let in (การรับเข้าระบบ), including old clients that send no credential.

e-CMS has no credential of its own, and the clients in service cannot be changed beyond their
URL. Each way in is a *mode*; the gateway names the mode of every request and records it on the
letter (:meth:`Caller.facts`, an audit fact), so an auditor reads how each letter came in:

========================  ==================================================  =============================
mode                      what identifies the agency                          where
========================  ==================================================  =============================
``certificate``           its TLS client certificate (:mod:`.clientcert`)     main listener (TLS)
``token``                 a development bearer token (never in production)    main listener
``url_key``               a per-agency secret in the URL path,                TLS only: main listener or the
                          ``/ecms/<key>/ecms-ws01/service2``                  legacy TLS listener
``network``               the TCP peer address, inside a source network       legacy listener only (plain
                          registered for the agency                           HTTP or TLS)
========================  ==================================================  =============================

A URL key never travels in clear: over plain HTTP it is refused (and, if it was a valid key, the
operator is told to rotate it). The source network is taken from the TCP peer address, never from
a header such as ``X-Forwarded-For``. Letters marked ลับ or ลับมาก are refused over plain HTTP
(:func:`check_letter_transport`).

The two modes that need no credential are off unless the agency's directory entry names them
(``ecms_admission``: :class:`EcmsAdmission`): the modes allowed, the URL keys (SHA-256 digests of
256-bit random keys, each with its issue and retirement time, so that during a rotation the old
and the new key both work until the old one retires) and the source networks (CIDRs). The key
itself is shown once, when it is issued, and is kept nowhere; :func:`redact_path` takes it out of
any path that is logged, and the e-CMS endpoint out of the request kept as the letter's evidence
(clients write their configured URL, key and all, into ``wsa:To``: ``gateway.ecms.endpoint.without_key``).

Repeated unknown keys from one address are slowed down (:class:`KeyThrottle`): a valid key is
still admitted (keys have 256 bits; a neighbour behind the same address must not lock an agency
out), an unknown one gets ``auth.too_many_attempts`` until the window passes.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import enum
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.errors import AuthError, ConfigError, GatewayError, NotFound

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Mode(enum.StrEnum):
    """How the calling agency was identified."""

    CERTIFICATE = "certificate"
    TOKEN = "token"
    URL_KEY = "url_key"
    NETWORK = "network"


#: The modes an agency's directory entry may allow (certificates and tokens follow the gateway's settings).
DIRECTORY_MODES = (Mode.URL_KEY.value, Mode.NETWORK.value)


class Listener(enum.StrEnum):
    """Which listener a request came in on."""

    MAIN = "main"
    LEGACY = "legacy"


#: Thai labels first (a person reads them on the letter's page and in the audit log).
MODE_LABELS: Mapping[Mode, str] = {
    Mode.CERTIFICATE: "ใบรับรองของหน่วยงาน (client certificate)",
    Mode.TOKEN: "โทเค็นสำหรับการพัฒนา (token)",
    Mode.URL_KEY: "กุญแจใน URL (URL key)",
    Mode.NETWORK: "เครือข่ายต้นทางที่ลงทะเบียน (source network)",
}

_KEY_ID = re.compile(r"^[0-9a-f]{8}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: What a URL key looks like (``secrets.token_urlsafe(32)``: 43 characters); anything else is unknown at once.
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
#: A path with a URL key in it, for :func:`redact_path`.
_KEYED_PATH = re.compile(r"^/ecms/[^/]*/")


def key_digest(key: str) -> str:
    """SHA-256 (hex) of a URL key: what the directory keeps."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UrlKey:
    """One URL key of an agency, as the directory keeps it (its digest, never the key)."""

    id: str
    """A short name for the key (the first 8 hex digits of its digest), to revoke it and to see in the audit
    log which key a letter came with."""
    sha256: str
    """SHA-256 (hex) of the key."""
    issued_at: dt.datetime
    retired_at: dt.datetime | None = None
    """From when it is refused: revoking retires it at once, rotating after an overlap."""

    def accepted(self, now: dt.datetime) -> bool:
        return self.retired_at is None or now < self.retired_at

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "sha256": self.sha256, "issued_at": self.issued_at.isoformat()}
        if self.retired_at is not None:
            out["retired_at"] = self.retired_at.isoformat()
        return out


def new_url_key(now: dt.datetime) -> tuple[str, UrlKey]:
    """A fresh key (256 random bits, URL-safe) and its directory record. Show the key once; keep the record."""
    key = secrets.token_urlsafe(32)
    digest = key_digest(key)
    return key, UrlKey(id=digest[:8], sha256=digest, issued_at=now)


@dataclass(frozen=True)
class EcmsAdmission:
    """An agency's ways into the e-CMS endpoint that need no credential (directory field ``ecms_admission``)."""

    modes: tuple[str, ...] = ()
    """Which of :data:`DIRECTORY_MODES` the agency may use; none: neither (the default)."""
    keys: tuple[UrlKey, ...] = ()
    """Its URL keys, current and retired (kept for the record)."""
    networks: tuple[IPNetwork, ...] = ()
    """Source networks the legacy listener admits it from."""

    def allows(self, mode: Mode) -> bool:
        return mode.value in self.modes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"modes": list(self.modes)}
        if self.keys:
            out["keys"] = [k.to_dict() for k in self.keys]
        if self.networks:
            out["networks"] = [str(n) for n in self.networks]
        return out


def zoned_time(raw: Mapping[str, Any], name: str, where: str, code: str) -> dt.datetime | None:
    """``raw[name]`` as an ISO 8601 time with a zone (None when absent); else a ConfigError naming the field."""
    value = raw.get(name)
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(f"directory: agency {code}: {name} {value!r} must be an ISO 8601 time with a zone",
                          field=f"{where}.{name}")
    return when


def _url_key(raw: Any, where: str, code: str) -> UrlKey:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"directory: agency {code}: a URL key must be an object", field=where)
    sha = str(raw.get("sha256", "")).lower()
    if not _DIGEST.match(sha):
        raise ConfigError(f"directory: agency {code}: a URL key's sha256 must be 64 hex digits", field=f"{where}.sha256")
    key_id = str(raw.get("id") or sha[:8])
    if not _KEY_ID.match(key_id):
        raise ConfigError(f"directory: agency {code}: a URL key's id must be 8 hex digits", field=f"{where}.id")
    issued = zoned_time(raw, "issued_at", where, code)
    if issued is None:
        raise ConfigError(f"directory: agency {code}: a URL key needs issued_at", field=f"{where}.issued_at")
    return UrlKey(id=key_id, sha256=sha, issued_at=issued, retired_at=zoned_time(raw, "retired_at", where, code))


def _network(raw: Any, where: str, code: str) -> IPNetwork:
    try:
        net = ipaddress.ip_network(str(raw), strict=True)
    except ValueError:
        raise ConfigError(f"directory: agency {code}: {str(raw)[:60]!r} is not a network in CIDR form "
                          "(e.g. 10.20.0.0/16, host bits zero)", field=where) from None
    if net.prefixlen == 0:
        raise ConfigError(f"directory: agency {code}: {net} would admit every address", field=where)
    return net


def with_new_key(current: EcmsAdmission | None, now: dt.datetime, *,
                 retire_others_at: dt.datetime | None = None) -> tuple[str, EcmsAdmission]:
    """A new URL key (shown once) and the admission that holds its digest, with URL keys allowed.
    ``retire_others_at``: the other keys still in force retire then (a rotation's overlap)."""
    adm = current or EcmsAdmission()
    key, record = new_url_key(now)
    kept = tuple(k if k.retired_at is not None or retire_others_at is None
                 else UrlKey(k.id, k.sha256, k.issued_at, retire_others_at) for k in adm.keys)
    modes = adm.modes if Mode.URL_KEY.value in adm.modes else (*adm.modes, Mode.URL_KEY.value)
    return key, EcmsAdmission(modes=modes, keys=(*kept, record), networks=adm.networks)


def with_key_revoked(current: EcmsAdmission | None, key_id: str, now: dt.datetime) -> EcmsAdmission:
    """The admission with key ``key_id`` refused from ``now`` on."""
    adm = current or EcmsAdmission()
    if not any(k.id == key_id for k in adm.keys):
        raise NotFound(f"no URL key {key_id[:16]!r}", code="not_found", field="key_id")
    keys = tuple(UrlKey(k.id, k.sha256, k.issued_at, now) if k.id == key_id and k.accepted(now) else k
                 for k in adm.keys)
    return EcmsAdmission(modes=adm.modes, keys=keys, networks=adm.networks)


def with_networks(current: EcmsAdmission | None, networks: Iterable[str], code: str) -> EcmsAdmission:
    """The admission with these source networks (none: the network mode is turned off)."""
    adm = current or EcmsAdmission()
    nets = tuple(dict.fromkeys(_network(n, "networks", code) for n in networks))
    modes = tuple(m for m in adm.modes if m != Mode.NETWORK.value) + ((Mode.NETWORK.value,) if nets else ())
    return EcmsAdmission(modes=modes, keys=adm.keys, networks=nets)


def admission_from_dict(raw: Any, where: str, code: str) -> EcmsAdmission:
    """An agency's ``ecms_admission`` from its file form; a :class:`ConfigError` names the field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"directory: agency {code}: ecms_admission must be an object", field=where)
    unknown = set(raw) - {"modes", "keys", "networks"}
    if unknown:
        raise ConfigError(f"directory: agency {code}: ecms_admission has no field {sorted(unknown)[0]!r}",
                          field=f"{where}.{sorted(unknown)[0]}")
    modes = raw.get("modes") or []
    if not isinstance(modes, list) or any(m not in DIRECTORY_MODES for m in modes):
        raise ConfigError(f"directory: agency {code}: ecms_admission.modes must be among {DIRECTORY_MODES}",
                          field=f"{where}.modes")
    keys = raw.get("keys") or []
    nets = raw.get("networks") or []
    if not isinstance(keys, list) or not isinstance(nets, list):
        raise ConfigError(f"directory: agency {code}: ecms_admission keys and networks must be lists", field=where)
    parsed = tuple(_url_key(k, f"{where}.keys[{i}]", code) for i, k in enumerate(keys))
    if len({k.id for k in parsed}) != len(parsed):
        raise ConfigError(f"directory: agency {code}: two URL keys share an id", field=f"{where}.keys")
    networks = tuple(dict.fromkeys(_network(n, f"{where}.networks[{i}]", code) for i, n in enumerate(nets)))
    return EcmsAdmission(modes=tuple(dict.fromkeys(str(m) for m in modes)), keys=parsed, networks=networks)


@dataclass(frozen=True)
class AdmissionIndex:
    """The directory's look-ups by URL key digest and by source network (built with each snapshot)."""

    by_key: Mapping[str, tuple[str, UrlKey]] = field(default_factory=dict)
    networks: tuple[tuple[IPNetwork, str], ...] = ()
    """(network, agency), longest prefix first."""

    @classmethod
    def of(cls, admissions: Iterable[tuple[str, EcmsAdmission]]) -> AdmissionIndex:
        by_key: dict[str, tuple[str, UrlKey]] = {}
        nets: dict[IPNetwork, str] = {}
        for code, adm in admissions:
            if adm.allows(Mode.URL_KEY):
                for k in adm.keys:
                    if k.sha256 in by_key and by_key[k.sha256][0] != code:
                        raise ConfigError(f"directory: a URL key of {code} is also {by_key[k.sha256][0]}'s",
                                          field="ecms_admission.keys")
                    by_key[k.sha256] = (code, k)
            if adm.allows(Mode.NETWORK):
                for n in adm.networks:
                    if nets.get(n, code) != code:
                        raise ConfigError(f"directory: network {n} is registered for both {nets[n]} and {code}; "
                                          "an address must name one agency", field="ecms_admission.networks")
                    nets[n] = code
        ordered = sorted(nets.items(), key=lambda item: -item[0].prefixlen)
        return cls(by_key, tuple(ordered))

    def agency_for_key(self, key: str, now: dt.datetime) -> tuple[str, UrlKey] | None:
        """The agency a URL key admits now, and which of its keys it is.

        A dict look-up by the key's SHA-256 (as tokens are looked up), then the digests compared in
        constant time; the key itself is never compared with anything."""
        if not _KEY_SHAPE.match(key):
            return None
        digest = key_digest(key)
        found = self.by_key.get(digest)
        if found is None or not hmac.compare_digest(found[1].sha256, digest) or not found[1].accepted(now):
            return None
        return found

    def agency_for_address(self, address: str) -> str | None:
        """The agency whose registered network holds ``address`` (the longest prefix wins)."""
        ip = peer_ip(address)
        if ip is None:
            return None
        for net, code in self.networks:
            if ip.version == net.version and ip in net:
                return code
        return None


def peer_ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The TCP peer address as an IP (an IPv4 address mapped into IPv6 as IPv4); None if it is not one."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class Caller:
    """The calling agency and how it was let in (an audit fact on each letter it sends)."""

    agency: str
    mode: Mode
    listener: Listener = Listener.MAIN
    tls: bool = True
    """The request came over TLS."""
    peer: str | None = None
    """The TCP peer address (never a forwarded-for header)."""
    key_id: str | None = None
    """Which URL key (its id, never the key)."""

    def note(self) -> str:
        """One line a person reads: Thai first."""
        where = ("ช่องทางเดิม (legacy listener)" if self.listener is Listener.LEGACY else "ช่องทางหลัก (main listener)")
        transport = "HTTPS" if self.tls else "HTTP"
        peer = f" จาก (from) {self.peer}" if self.peer else ""
        return f"รับทาง{where} {transport}{peer} โดย{MODE_LABELS[self.mode]}"

    def facts(self) -> dict[str, str]:
        """The audit facts of a letter sent by this caller: the mode and the peer address, and only what
        differs from the usual (``listener: legacy``, ``transport: http``, the URL key's id), since
        every letter carries them (:meth:`note` says it in words)."""
        out = {"admission": self.mode.value}
        if self.listener is not Listener.MAIN:
            out["listener"] = self.listener.value
        if not self.tls:
            out["transport"] = "http"
        if self.peer:
            out["peer"] = self.peer
        if self.key_id:
            out["url_key_id"] = self.key_id
        return out


def describe_admission(facts: Mapping[str, Any]) -> str | None:
    """The words of a letter's admission facts (:meth:`Caller.facts`), Thai first; None without them."""
    try:
        mode = Mode(str(facts.get("admission")))
    except ValueError:
        return None
    return Caller("", mode, Listener(str(facts.get("listener", "main"))), tls=facts.get("transport") != "http",
                  peer=str(facts["peer"]) if facts.get("peer") else None).note()


class SecretOverPlainHttp(GatewayError):
    """A letter marked ลับ or ลับมาก came over plain HTTP, where anyone on the path reads it."""

    code = "policy.secret_over_plain_http"


#: Secrecy values (``gateway.core.envelope.Secrecy``) never taken over plain HTTP: ลับ, ลับมาก.
_NOT_IN_CLEAR = {"confidential": "ลับ", "secret": "ลับมาก"}


def check_letter_transport(caller: Caller | None, secrecy: str | None) -> None:
    """Refuse a letter marked ลับ or ลับมาก that came over the legacy listener's plain HTTP (ลับที่สุด is
    refused everywhere). The main listener without TLS is a development set-up (or sits behind a proxy
    that terminated TLS), which this rule does not judge."""
    if caller is not None and caller.listener is Listener.LEGACY and not caller.tls and secrecy in _NOT_IN_CLEAR:
        raise SecretOverPlainHttp(f"หนังสือชั้นความลับ {_NOT_IN_CLEAR[secrecy]} ไม่รับทาง HTTP ที่ไม่เข้ารหัส: "
                                  f"a letter marked {secrecy} is refused over plain HTTP; send it over HTTPS",
                                  field="CorrespondenceLetter/SecretCode")


#: The caller of the request being handled, for the exchange to record (set by the e-CMS endpoint).
_ADMITTED: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("gateway_admitted", default=None)


@contextlib.contextmanager
def admitted_as(caller: Caller | None) -> Iterator[None]:
    """Within this block (one request), :func:`admitted` is ``caller``.

    The e-CMS facade speaks to the exchange in agency codes; how the agency was let in travels
    beside the call, so that every letter it stores carries the fact without each operation of the
    facade passing it on."""
    token = _ADMITTED.set(caller)
    try:
        yield
    finally:
        _ADMITTED.reset(token)


def admitted() -> Caller | None:
    """The caller of the request being handled, if an edge said so (:func:`admitted_as`)."""
    return _ADMITTED.get()


def redact_path(path: str) -> str:
    """``path`` fit to log: a URL key in it replaced by ``***``."""
    return _KEYED_PATH.sub("/ecms/***/", path) if path.startswith("/ecms/") else path


class KeyThrottle:
    """Unknown URL keys per client address, in a sliding window (per process, like the login throttle).

    After ``limit`` unknown keys from one address within ``window_s`` seconds, further unknown keys
    from it are refused with ``auth.too_many_attempts`` (and not logged one by one) until the oldest
    leaves the window."""

    def __init__(self, *, limit: int = 20, window_s: float = 60.0, now: Callable[[], float] = time.monotonic,
                 max_addresses: int = 100_000) -> None:
        self.limit, self.window_s, self._now, self.max_addresses = limit, window_s, now, max_addresses
        self._misses: dict[str, list[float]] = {}

    def _recent(self, address: str) -> list[float]:
        cutoff = self._now() - self.window_s
        times = [t for t in self._misses.get(address, ()) if t > cutoff]
        if times:
            self._misses[address] = times
        else:
            self._misses.pop(address, None)
        return times

    def check(self, address: str) -> None:
        """Raise if ``address`` sent too many unknown keys lately."""
        times = self._recent(address)
        if len(times) >= self.limit:
            wait = max(1, round(times[0] + self.window_s - self._now()))
            raise AuthError(f"มีการใช้กุญแจที่ไม่รู้จักจากที่อยู่นี้มากเกินไป ลองใหม่ใน {wait} วินาที: too many unknown "
                            f"URL keys from {address}; retry in {wait} s", code="auth.too_many_attempts",
                            field="url")

    def missed(self, address: str) -> bool:
        """Count an unknown key from ``address``; True if this one reached the limit (log it once)."""
        self._misses.setdefault(address, []).append(self._now())
        if len(self._misses) > self.max_addresses:  # bounded memory under a spray of addresses
            for old in list(self._misses)[: self.max_addresses // 2]:
                self._recent(old)
        return len(self._misses.get(address, ())) == self.limit
