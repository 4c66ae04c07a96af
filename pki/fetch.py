"""Outbound fetches for revocation checking: to whom, for how long, and what happened.

A certificate names URLs (AIA ``caIssuers`` and OCSP, CRL distribution points) chosen by whoever
made it. A letter signed by a certificate nobody trusts must not make the gateway connect anywhere
(server-side request forgery), and a responder that never answers must not hold a submission. So
pyHanko-certvalidator fetches through the fetchers of this module (its ``Fetchers`` API), never
through its own HTTP fetchers:

* **No issuer fetching.** ``caIssuers`` URLs are never followed: paths are built from the configured
  anchors and intermediates (and the certificates the signer sent) only. When the path builder asks
  for an issuer it does not have, the request is refused (``refused_untrusted``). pyHanko checks
  revocation only on a path it has built up to a trust anchor, so a chain that does not end in a
  configured anchor causes no OCSP or CRL request either.
* **An allow-list** (:class:`FetchPolicy`). Only ``http``/``https`` URLs without credentials, to a
  host (any port) or ``host:port`` on the list, are fetched; redirects are not followed (they could
  lead off the list) and no proxy is taken from the environment. The default list
  (:func:`allow_list_of`) is the hosts the configured CA certificates themselves name in their AIA
  and CRL distribution point fields.
* **Time limits.** One request may take ``timeout`` seconds (connection, headers and body together),
  one validation ``budget`` seconds of fetching in all (the budget starts when pyHanko sets up the
  fetchers, i.e. with the validation context). A request that would start after the budget is spent
  is not made (``refused_budget``). A failed or refused fetch is a pyHanko fetch error, so the
  revocation policy decides: soft-fail notes it and accepts, hard-fail refuses.
* **A cache of OCSP answers** (:class:`OcspCache`, one per trust store): an answer is reused, for the
  same certificate and issuer, until its ``nextUpdate`` (never past it, never without one), so the
  submit path with revocation on pays one request per signer key per responder period, not one a
  letter; a reused answer is reported as ``cached``.
* **Outcomes.** Every request and every refusal is reported as ``on_fetch(kind, outcome)``: kind
  ``ocsp``, ``crl`` or ``issuer``; outcome ``ok``, ``error``, ``timeout``, ``refused_host``,
  ``refused_untrusted``, ``refused_budget`` or ``cached`` (the gateway counts them in a metric).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

import aiohttp
from asn1crypto import cms, crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.fetchers import (
    CertificateFetcher,
    CRLFetcher,
    FetcherBackend,
    Fetchers,
    OCSPFetcher,
)
from pyhanko_certvalidator.fetchers.common_utils import (
    enumerate_delivery_point_urls,
    format_ocsp_request,
    gather_aia_issuer_urls,
    process_ocsp_response_data,
)
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

__all__ = ["FetchPolicy", "GuardedFetcherBackend", "FetchObserver", "OcspCache", "allow_list_of", "urls_of"]

#: ``on_fetch(kind, outcome)``: kind ocsp / crl / issuer, outcome as in the module docstring.
FetchObserver = Callable[[str, str], None]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = "saraban-gateway revocation check"

#: What pyHanko passes for a certificate (asn1crypto objects).
AnyCert: TypeAlias = "asn1_x509.Certificate | cms.AttributeCertificateV2"


def _host_key(host: str) -> str:
    host = host.lower().rstrip(".")
    return f"[{host}]" if ":" in host else host  # IPv6 addresses in brackets, as in URLs


def _entry(text: str) -> str:
    """One allow-list entry, ``host`` or ``host:port`` (IPv6 in brackets), normalised."""
    item = text.strip()
    if not item or any(c in item for c in "/@?#\\ "):
        raise ValueError(f"{text!r} is not a host or host:port")
    parts = urllib.parse.urlsplit("//" + item)
    port = parts.port  # raises ValueError for a port that is not a number in range
    if not parts.hostname:
        raise ValueError(f"{text!r} is not a host or host:port")
    host = _host_key(parts.hostname)
    return f"{host}:{port}" if port is not None else host


def _target(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of an http(s) URL without credentials, else None."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    return _host_key(parts.hostname), port if port is not None else _DEFAULT_PORTS[scheme]


@dataclass(frozen=True)
class FetchPolicy:
    """Where revocation information may be fetched from, and how long that may take."""

    #: ``host`` (every port) or ``host:port`` entries, lower case, IPv6 in brackets.
    allow: frozenset[str] = frozenset()
    #: Seconds one request may take, connection to last byte.
    timeout: float = 1.0
    #: Seconds of fetching one validation may spend in all.
    budget: float = 2.0
    #: Largest response read (a CRL can be large; one that does not fit is an error).
    max_bytes: int = 16 * 1024 * 1024

    @classmethod
    def parse(cls, text: str, *, timeout: float = 1.0, budget: float = 2.0) -> FetchPolicy:
        """From a comma-separated list (``GATEWAY_FETCH_ALLOW``); raise ValueError for a bad entry."""
        return cls(frozenset(_entry(t) for t in text.split(",") if t.strip()), timeout=timeout, budget=budget)

    def allows(self, url: str) -> bool:
        target = _target(url)
        if target is None:
            return False
        host, port = target
        return host in self.allow or f"{host}:{port}" in self.allow


def urls_of(cert: x509.Certificate) -> list[tuple[str, str]]:
    """``(kind, url)`` for every URL in a certificate's AIA (``ocsp``, ``issuer``) and CRL distribution points."""
    out: list[tuple[str, str]] = []
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        aia = None
    for desc in aia or ():
        if isinstance(desc.access_location, x509.UniformResourceIdentifier):
            kind = "ocsp" if desc.access_method == x509.oid.AuthorityInformationAccessOID.OCSP else "issuer"
            out.append((kind, desc.access_location.value))
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        dps = None
    for dp in dps or ():
        out += [("crl", name.value) for name in dp.full_name or () if isinstance(name, x509.UniformResourceIdentifier)]
    return out


def allow_list_of(certs: Iterable[x509.Certificate]) -> frozenset[str]:
    """The hosts (``host:port`` where a URL names a port) the given CA certificates name for
    fetching: the default allow-list, from the configured anchors and intermediates."""
    hosts = set()
    for cert in certs:
        for _, url in urls_of(cert):
            if _target(url) is None:
                continue  # not http(s): never fetched
            parts = urllib.parse.urlsplit(url.strip())
            assert parts.hostname is not None  # _target checked it
            host = _host_key(parts.hostname)
            hosts.add(f"{host}:{parts.port}" if parts.port is not None else host)
    return frozenset(hosts)


class _Refused(Exception):
    """A fetch that was not made or did not succeed; ``outcome`` says why."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class _Run:
    """One validation's fetching: the policy, its deadline, the session and the observer."""

    def __init__(self, policy: FetchPolicy, session: Callable[[], aiohttp.ClientSession],
                 observer: FetchObserver | None) -> None:
        self.policy = policy
        self.deadline = time.monotonic() + policy.budget
        self._session = session
        self._observer = observer

    def report(self, kind: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer(kind, outcome)

    async def get(self, kind: str, url: str, *, body: bytes | None = None, content_type: str = "",
                  accept: str = "*/*") -> bytes:
        """The response body of one allowed request; raise :class:`_Refused` (reported) otherwise."""
        try:
            data = await self._request(url, body=body, content_type=content_type, accept=accept)
        except _Refused as exc:
            self.report(kind, exc.outcome)
            raise
        return data

    async def _request(self, url: str, *, body: bytes | None, content_type: str, accept: str) -> bytes:
        if not self.policy.allows(url):
            raise _Refused("refused_host", f"{url} is not on the fetch allow-list (GATEWAY_FETCH_ALLOW)")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Refused("refused_budget", f"not fetching {url}: this validation's time for fetching is spent")
        headers = {"Accept": accept, "User-Agent": _USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            async with asyncio.timeout(min(self.policy.timeout, left)):
                async with self._session().request("POST" if body is not None else "GET", url, data=body,
                                                   headers=headers, allow_redirects=False) as response:
                    if response.status != 200:
                        raise _Refused("error", f"{url} answered HTTP {response.status}")
                    return await _read_at_most(response, self.policy.max_bytes, url)
        except TimeoutError:
            raise _Refused("timeout", f"{url} did not answer in time") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _Refused("error", f"fetching {url} failed: {type(exc).__name__}: {exc}") from None


async def _read_at_most(response: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    if (response.content_length or 0) > limit:
        raise _Refused("error", f"{url} answered more than {limit} bytes")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise _Refused("error", f"{url} answered more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class OcspCache:
    """OCSP answers by (certificate, issuer) until their ``nextUpdate`` on ``clock``; bounded, oldest out."""

    def __init__(self, clock: Callable[[], dt.datetime], max_entries: int = 50_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[tuple[bytes, object], tuple[ocsp.OCSPResponse, dt.datetime]] = {}
        self._lock = threading.Lock()

    def get(self, tag: tuple[bytes, object]) -> ocsp.OCSPResponse | None:
        hit = self._entries.get(tag)
        if hit is None:
            return None
        if self._clock() >= hit[1]:
            with self._lock:
                self._entries.pop(tag, None)
            return None
        return hit[0]

    def put(self, tag: tuple[bytes, object], response: ocsp.OCSPResponse) -> None:
        until = _next_update(response)
        if until is None or until <= self._clock():
            return  # an answer without nextUpdate says "ask me every time"
        with self._lock:
            while len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[tag] = (response, until)

    def __len__(self) -> int:
        return len(self._entries)


def _next_update(response: ocsp.OCSPResponse) -> dt.datetime | None:
    """The earliest nextUpdate of the answer's single responses (None if any lacks one)."""
    try:
        singles = response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
        times = [s["next_update"].native for s in singles]
    except (KeyError, TypeError, ValueError):
        return None
    if not times or any(t is None for t in times):
        return None
    return min(times)


class _OcspFetcher(OCSPFetcher):
    def __init__(self, run: _Run, cache: OcspCache | None = None) -> None:
        self._run = run
        self._cache = cache
        self._responses: dict[tuple[bytes, object], ocsp.OCSPResponse] = {}

    async def fetch(self, cert: AnyCert, authority: Authority) -> ocsp.OCSPResponse:
        tag = (issuer_serial(cert), authority.hashable)
        if tag in self._responses:
            return self._responses[tag]
        cached = self._cache.get(tag) if self._cache is not None else None
        if cached is not None:
            self._run.report("ocsp", "cached")
            self._responses[tag] = cached
            return cached
        request = format_ocsp_request(cert, authority, certid_hash_algo="sha1", request_nonces=True)
        failures = []
        for url in get_ocsp_urls(cert):
            try:
                data = await self._run.get("ocsp", url, body=request.dump(), content_type="application/ocsp-request",
                                           accept="application/ocsp-response")
            except _Refused as exc:
                failures.append(str(exc))
                continue
            try:
                response = process_ocsp_response_data(data, ocsp_request=request, ocsp_url=url)
            except cv_errors.OCSPValidationError as exc:  # OCSPFetchError included
                self._run.report("ocsp", "error")
                failures.append(f"{url}: {exc}")
                continue
            self._run.report("ocsp", "ok")
            self._responses[tag] = response
            if self._cache is not None and response["response_status"].native == "successful":
                self._cache.put(tag, response)
            return response
        raise cv_errors.OCSPFetchError("; ".join(failures) or "no OCSP URL")

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return list(self._responses.values())

    def fetched_responses_for_cert(self, cert: AnyCert) -> Iterable[ocsp.OCSPResponse]:
        wanted = issuer_serial(cert)
        return [resp for (serial, _), resp in self._responses.items() if serial == wanted]


def _parse_crl(data: bytes) -> crl.CertificateList:
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return crl.CertificateList.load(data)  # ValueError if it is not DER


class _CrlFetcher(CRLFetcher):
    def __init__(self, run: _Run) -> None:
        self._run = run
        self._by_cert: dict[bytes, list[crl.CertificateList] | cv_errors.CRLFetchError] = {}

    async def fetch(self, cert: AnyCert, *, use_deltas: bool | None = True) -> Iterable[crl.CertificateList]:
        key = issuer_serial(cert)
        known = self._by_cert.get(key)
        if isinstance(known, cv_errors.CRLFetchError):
            raise known
        if known is not None:
            return known
        results, failures = [], []
        for point in get_relevant_crl_dps(cert, use_deltas=bool(use_deltas)):
            for url in enumerate_delivery_point_urls(point):
                try:
                    data = await self._run.get("crl", url, accept="application/pkix-crl")
                except _Refused as exc:
                    failures.append(str(exc))
                    continue
                try:
                    results.append(_parse_crl(data))
                except ValueError as exc:
                    self._run.report("crl", "error")
                    failures.append(f"{url}: not a CRL ({exc})")
                    continue
                self._run.report("crl", "ok")
        if failures and not results:
            error = cv_errors.CRLFetchError("; ".join(failures))
            self._by_cert[key] = error
            raise error
        self._by_cert[key] = results
        return results

    def fetched_crls(self) -> Iterable[crl.CertificateList]:
        return [c for found in self._by_cert.values() if isinstance(found, list) for c in found]

    def fetched_crls_for_cert(self, cert: AnyCert) -> Iterable[crl.CertificateList]:
        found = self._by_cert[issuer_serial(cert)]  # KeyError: not fetched yet, as the API says
        if not isinstance(found, list):
            raise KeyError("the fetch failed")  # so that fetch() is called and raises the failure again
        return found


class _IssuerRefuser(CertificateFetcher):
    """Never fetches an issuer: trust comes from the configured certificates only."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    async def _refuse(self, urls: Iterable[str]) -> AsyncGenerator[asn1_x509.Certificate, None]:
        for _ in urls:
            self._run.report("issuer", "refused_untrusted")
        return
        yield  # an async generator that yields nothing

    def fetch_cert_issuers(self, cert: AnyCert) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return self._refuse(gather_aia_issuer_urls(cert))

    def fetch_crl_issuers(self, certificate_list: crl.CertificateList) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return self._refuse(certificate_list.issuer_cert_urls)

    def fetched_certs(self) -> Iterable[asn1_x509.Certificate]:
        return ()


class GuardedFetcherBackend(FetcherBackend):
    """pyHanko fetcher backend with the rules of the module docstring; one per validation context.

    ``session``: an ``aiohttp.ClientSession`` to share (the caller closes it); by default the backend
    opens its own on the first request and :meth:`close` closes it (hand the backend to the context
    as ``OwnedFetcherBackend(backend)`` so it is closed with the validation).
    """

    def __init__(self, policy: FetchPolicy, *, session: aiohttp.ClientSession | None = None,
                 on_fetch: FetchObserver | None = None, cache: OcspCache | None = None) -> None:
        self.policy = policy
        self.on_fetch = on_fetch
        self.cache = cache
        #: Requests made that got no usable answer (error, timeout, time budget spent): an outage, as
        #: opposed to fetches the policy refused (validation-pending waits out the first kind only).
        self.unreachable = 0
        self._shared = session
        self._owned: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._shared is not None:
            return self._shared
        if self._owned is None:
            self._owned = aiohttp.ClientSession(trust_env=False, connector=aiohttp.TCPConnector(limit=8))
        return self._owned

    def get_fetchers(self) -> Fetchers:
        run = _Run(self.policy, self._session, self._observe)
        return Fetchers(ocsp_fetcher=_OcspFetcher(run, self.cache), crl_fetcher=_CrlFetcher(run), cert_fetcher=_IssuerRefuser(run))

    def _observe(self, kind: str, outcome: str) -> None:
        if outcome in ("error", "timeout", "refused_budget"):
            self.unreachable += 1
        if self.on_fetch is not None:
            self.on_fetch(kind, outcome)

    async def close(self) -> None:
        session, self._owned = self._owned, None
        if session is not None:
            await session.close()
