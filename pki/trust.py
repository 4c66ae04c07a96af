"""Trust store: is this signer's certificate trusted, for this use, for this agency?

Path building, validity periods, key usage and revocation (CRLs given at
construction, OCSP/CRL fetched over HTTP when allowed) are pyHanko's
certvalidator's job. It fetches only through :mod:`pki.fetch`: never an issuer
(paths are built from the configured anchors and intermediates), OCSP and CRLs
only for a path that ends in a configured anchor, only from allowed hosts, within
a time budget; what cannot be fetched leaves revocation unknown and the policy
decides. This module wraps it with three things the hot path needs:

* **A cache.** A successful validation is kept per (certificate fingerprint,
  usage) until the earliest of: the end of the path's validity, and ``ttl``
  after the check (how long revocation information is trusted). Thousands of
  letters signed by the same few hundred agency keys then cost one dictionary
  look-up each, not a chain build. Failures that do not depend on the time
  (unknown issuer, revoked, wrong usage) are cached for ``negative_ttl``.
  Concurrent validations of the same certificate share one computation.
* **Stable error codes.** certvalidator exceptions become :class:`PkiError`
  codes (``certificate.expired``, ``certificate.revoked`` ...).
* **Agency binding.** A certificate names its agency in the subject
  (``organizationIdentifier = GOVTH-<code>``, see :mod:`pki.certfactory`);
  :class:`AgencyBinding` decides which certificates may sign for which agency
  code, by that code and optionally by fingerprints pinned in the directory.

The clock is passed in (``clock``); tests move it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.fetchers import OwnedFetcherBackend

from pki.errors import AgencyError, PkiError
from pki.fetch import FetchObserver, FetchPolicy, GuardedFetcherBackend, OcspCache, allow_list_of, urls_of
from pki.trust_errors import map_error

__all__ = ["TrustStore", "ValidatedCert", "AgencyBinding", "agency_of", "close_context", "fingerprint",
           "per_certificate", "Usage"]

Usage = Literal["document-signing", "seal", "tls-client", "tls-server", "any"]
RevocationMode = Literal["hard-fail", "soft-fail", "off"]
#: What a validation established about revocation: checked with nothing found against the path
#: ("ok"), could not be established and tolerated by soft-fail ("unknown"), not checked ("off"),
#: could not be established under hard-fail and accepted only into the validation-pending state
#: ("pending", see :func:`pki.ltv.tolerating_unknown_revocation`).
RevocationFact = Literal["ok", "unknown", "off", "pending"]

#: The current task's validations, while :func:`pki.ltv.capturing` is active (see :mod:`pki.ltv`).
CAPTURE: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("pki_ltv_capture", default=None)
#: While set, hard-fail turns "revocation could not be established" into ``revocation="pending"``
#: instead of ``certificate.revocation_unknown`` (validation-pending acceptance).
TOLERATE_UNKNOWN: contextvars.ContextVar[bool] = contextvars.ContextVar("pki_ltv_tolerate", default=False)

_AGENCY_RE = re.compile(r"^GOVTH-([0-9]{5}|[0-9]{10})$")
_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"

# usage -> (key usage bits, extended key usages, EKU may be absent)
_USAGES: dict[str, tuple[set[str], set[str], bool]] = {
    "document-signing": ({"digital_signature"}, {_DOCUMENT_SIGNING}, True),
    "seal": ({"digital_signature"}, {_DOCUMENT_SIGNING}, True),
    "tls-client": ({"digital_signature"}, {"client_auth"}, False),
    "tls-server": ({"digital_signature"}, {"server_auth"}, False),
    "any": (set(), set(), True),
}


def per_certificate(maxsize: int = 4096) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Memoise a function of certificates (and other long-lived arguments) by the arguments' identity.

    ``functools.lru_cache`` keyed by an ``x509.Certificate`` pays its
    ``__hash__`` on every look-up, and cryptography hashes the parsed
    certificate there (~28k instructions): several look-ups a letter cost
    more than the cached work. The same certificate objects recur (KeyInfo
    certificates come from one cache of parsed DER, the seal certificate lives
    as long as its signer), so entries are keyed by the ``id()`` of every
    argument. Each entry holds its arguments, so while it exists no other
    object can have their ids, and a hit is confirmed with ``is``. A distinct
    object with the same value (a re-parsed certificate, an equal string) is
    simply computed again. Oldest entries go first when full.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        # keyed by id() of the one argument, or the tuple of the ids (no int is a tuple: no clash)
        cache: dict[object, tuple[tuple[Any, ...], Any]] = {}
        lock = threading.Lock()

        @functools.wraps(fn)
        def memo(*args: Any) -> Any:
            # one and two arguments (every use but one) without map/all: ~0.7 us a hit instead of ~2
            if len(args) == 1:
                key: object = id(args[0])
                hit = cache.get(key)
                if hit is not None and hit[0][0] is args[0]:
                    return hit[1]
            elif len(args) == 2:
                key = (id(args[0]), id(args[1]))
                hit = cache.get(key)
                if hit is not None and hit[0][0] is args[0] and hit[0][1] is args[1]:
                    return hit[1]
            else:
                key = tuple(map(id, args))
                hit = cache.get(key)
                if hit is not None and all(map(operator.is_, hit[0], args)):
                    return hit[1]
            value = fn(*args)
            with lock:
                while len(cache) >= maxsize:
                    cache.pop(next(iter(cache)))
                cache[key] = (args, value)
            return value

        memo.cache_clear = cache.clear  # type: ignore[attr-defined]  # as functools.lru_cache offers it
        return memo

    return decorate


@per_certificate()
def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate, lower-case hex (the form pinned in the directory)."""
    return cert.fingerprint(hashes.SHA256()).hex()


@per_certificate()
def agency_of(cert: x509.Certificate) -> str | None:
    """The agency code a certificate is issued to (``organizationIdentifier = GOVTH-<code>``), or None."""
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    except ValueError:
        return None
    codes = {m.group(1) for a in attrs if (m := _AGENCY_RE.match(str(a.value)))}
    return codes.pop() if len(codes) == 1 else None


@dataclass(frozen=True)
class AgencyBinding:
    """Which certificates may sign for which agency code.

    The code in the certificate's subject must equal the sending agency. When
    the directory pins certificate fingerprints for an agency (``pins``), the
    certificate must also be one of them; ``require_pins`` refuses agencies
    without pins altogether (production directories pin every agency).
    """

    #: agency code -> SHA-256 fingerprints (hex) of certificates allowed to sign for it.
    pins: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Refuse an agency that has no pinned fingerprint.
    require_pins: bool = False

    @classmethod
    def from_directory(cls, pins: Mapping[str, Iterable[str]], *, require_pins: bool = False) -> AgencyBinding:
        return cls({code: frozenset(f.lower().replace(":", "") for f in fps) for code, fps in pins.items()},
                   require_pins)

    def check(self, cert: x509.Certificate, sender: str) -> str:
        """Return the agency code if ``cert`` may sign for ``sender``; raise ``certificate.wrong_agency``."""
        code = agency_of(cert)
        if code is None:
            raise AgencyError("the signer's certificate names no agency (organizationIdentifier GOVTH-<code>)",
                              field="Signatures")
        if code != sender:
            raise AgencyError(f"signed by a certificate of agency {code}, but the sender is {sender}",
                              field="Header/Sender")
        pinned = self.pins.get(sender)
        if pinned is None:
            if self.require_pins:
                raise AgencyError(f"no certificate is registered for agency {sender}", field="Header/Sender")
        elif fingerprint(cert) not in pinned:
            raise AgencyError(f"this certificate is not registered for agency {sender}", field="Signatures")
        return code


@dataclass(frozen=True)
class ValidatedCert:
    """A certificate that chained to a trust anchor and passed the usage and revocation checks."""

    #: The validated end-entity certificate.
    cert: x509.Certificate
    #: The path from the end entity up to and including the trust anchor.
    path: tuple[x509.Certificate, ...]
    #: SHA-256 fingerprint (hex).
    fingerprint: str
    #: Agency code from the subject, if any.
    agency_code: str | None
    #: Usage it was validated for.
    usage: str
    #: When the validation ran (the clock's time, or ``at``).
    checked_at: dt.datetime
    #: Until when this result may be reused (path validity end, or checked_at + ttl).
    valid_until: dt.datetime
    #: From when it may be reused (latest notBefore in the path).
    valid_from: dt.datetime
    #: Soft-fail notes: revocation checks that could not be done and were tolerated.
    soft_failures: tuple[str, ...] = ()
    #: ``"unknown"`` when there are soft-fail notes, ``"off"`` when revocation is not checked,
    #: ``"pending"`` when hard-fail could not establish it and the caller tolerated that.
    revocation: RevocationFact = "ok"
    #: DER of every OCSP response the validation knew (fetched or cached), for long-term validation.
    ocsp: tuple[bytes, ...] = ()
    #: DER of every CRL the validation knew (fetched or configured).
    crls: tuple[bytes, ...] = ()
    #: Whose signature it is, when the validator knows (``pdf``: the main PDF's PAdES signer); else the
    #: recorder's role applies (:func:`pki.ltv.record_of`).
    role: str | None = None


def _to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _from_asn1(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def _load_crl(item: Any) -> bytes:
    if isinstance(item, x509.CertificateRevocationList):
        return item.public_bytes(serialization.Encoding.DER)
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
        return data
    raise TypeError(f"a CRL must be bytes or a cryptography CRL, not {type(item).__name__}")


@dataclass
class _Entry:
    result: ValidatedCert | PkiError
    valid_from: dt.datetime
    valid_until: dt.datetime


class TrustStore:
    """Validates signer certificates against trust anchors, with a cache (see module docstring)."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate],
        intermediates: Iterable[x509.Certificate] = (),
        *,
        revocation: RevocationMode = "soft-fail",
        crls: Iterable[Any] = (),
        ocsp: bool = True,
        clock: Callable[[], dt.datetime] | None = None,
        binding: AgencyBinding | None = None,
        ttl: dt.timedelta = dt.timedelta(minutes=10),
        negative_ttl: dt.timedelta = dt.timedelta(seconds=30),
        max_entries: int = 10_000,
        http_session: Any = None,
        fetch_timeout: float = 1.0,
        fetch_budget: float = 2.0,
        fetch_allow: Iterable[str] | None = None,
        on_fetch: FetchObserver | None = None,
        max_extra_intermediates: int = 4,
    ) -> None:
        """
        :param anchors: trust anchors (root CAs).
        :param intermediates: CA certificates available for path building.
        :param revocation: ``hard-fail`` (a declared CRL/OCSP that cannot be checked fails),
            ``soft-fail`` (it is tolerated and noted), ``off`` (no revocation checks).
        :param crls: CRLs (DER/PEM bytes or cryptography objects) known up front.
        :param ocsp: allow fetching OCSP responses and CRLs from the URLs in certificates.
        :param clock: returns the current aware datetime; defaults to the system clock.
        :param binding: agency binding rules; default: by the code in the subject, no pins.
        :param ttl: how long a positive result (and its revocation information) is reused.
        :param negative_ttl: how long a time-independent failure is reused.
        :param http_session: an ``aiohttp.ClientSession`` for fetching (default: one per validation).
        :param fetch_timeout: seconds one OCSP or CRL request may take.
        :param fetch_budget: seconds of fetching one validation may spend in all.
        :param fetch_allow: hosts (``host`` or ``host:port``) fetching may reach; default: the hosts
            the anchors and intermediates name in their AIA and CRL distribution points.
        :param on_fetch: ``on_fetch(kind, outcome)`` for every fetch and refusal (see :mod:`pki.fetch`).
        """
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        if not self.anchors:
            raise PkiError("a trust store needs at least one trust anchor", code="pki.config")
        self.revocation = revocation
        self._crls = tuple(_load_crl(c) for c in crls)
        self.ocsp = ocsp
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.binding = binding or AgencyBinding()
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._http_session = http_session
        allow = allow_list_of((*self.anchors, *self.intermediates)) if fetch_allow is None else fetch_allow
        try:
            self.fetch_policy = FetchPolicy.parse(",".join(allow), timeout=fetch_timeout, budget=fetch_budget)
        except ValueError as exc:
            raise PkiError(f"fetch allow-list: {exc}", code="pki.config") from None
        self.on_fetch = on_fetch
        #: OCSP answers kept until their nextUpdate, shared by every validation of this store.
        self.ocsp_cache = OcspCache(self._clock)
        self._max_extra = max_extra_intermediates
        self._asn1_anchors = [_to_asn1(c) for c in self.anchors]
        self._asn1_intermediates = [_to_asn1(c) for c in self.intermediates]
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        #: Counters for tests and metrics: cache hits and full validations.
        self.stats = {"hits": 0, "validations": 0}

    def now(self) -> dt.datetime:
        return self._clock()

    def clear_cache(self) -> None:
        self._cache.clear()

    def agency_of(self, cert: x509.Certificate) -> str | None:
        return agency_of(cert)

    def check_agency(self, cert: x509.Certificate, sender: str) -> str:
        """Raise ``certificate.wrong_agency`` unless ``cert`` may sign for ``sender``."""
        return self.binding.check(cert, sender)

    def validation_context(self, *, at: dt.datetime | None = None, extra_certs: Sequence[x509.Certificate] = (),
                           revocation: RevocationMode | None = None) -> ValidationContext:
        """A fresh pyHanko ValidationContext with this store's anchors, CRLs and fetch policy.

        Inside :func:`pki.ltv.capturing` the context is recorded, so that what it fetched (a PDF
        signature's OCSP answers and CRLs) is kept with the letter."""
        context, _ = self._context(at=at, extra_certs=extra_certs, revocation=revocation)
        captured = CAPTURE.get()
        if captured is not None:
            captured.append(context)
        return context

    def fetching_context(self, *, at: dt.datetime | None = None, revocation: RevocationMode | None = None,
                         ) -> tuple[ValidationContext, GuardedFetcherBackend | None]:
        """A fresh context (as :meth:`validation_context`, not captured) and its fetcher, whose
        ``unreachable`` count tells an outage (a responder that did not answer) from a refusal or a
        bad answer. The caller closes the context's session (:func:`close_context`)."""
        return self._context(at=at, extra_certs=(), revocation=revocation)

    def _context(self, *, at: dt.datetime | None, extra_certs: Sequence[x509.Certificate],
                 revocation: RevocationMode | None) -> tuple[ValidationContext, GuardedFetcherBackend | None]:
        moment = at or self._clock()
        mode = revocation or self.revocation
        kwargs: dict[str, Any] = {}
        backend = None
        if self.ocsp:  # the context closes the backend (and its session) with the validation
            backend = GuardedFetcherBackend(self.fetch_policy, session=self._http_session, on_fetch=self.on_fetch,
                                            cache=self.ocsp_cache)
            kwargs["fetcher_backend"] = OwnedFetcherBackend(backend)
        return ValidationContext(
            trust_roots=self._asn1_anchors,
            other_certs=self._asn1_intermediates + [_to_asn1(c) for c in extra_certs[: self._max_extra]],
            moment=moment,
            allow_fetching=self.ocsp,
            crls=list(self._crls),
            ocsps=[],
            revocation_mode="none" if mode == "off" else mode,
            **kwargs,
        ), backend

    async def validate_signer(self, cert: x509.Certificate, *, at: dt.datetime | None = None,
                              usage: Usage = "document-signing",
                              intermediates: Sequence[x509.Certificate] = ()) -> ValidatedCert:
        """Validate ``cert`` for ``usage`` at ``at`` (default: now); raise a ``certificate.*`` PkiError.

        ``intermediates`` are untrusted helpers for path building (e.g. sent in
        the signature's KeyInfo); only the configured anchors confer trust.
        """
        if usage not in _USAGES:
            raise ValueError(f"unknown usage {usage!r}")
        moment = at or self._clock()
        key = (fingerprint(cert), usage)
        entry = self._cache.get(key)
        if entry is not None and entry.valid_from <= moment < entry.valid_until:
            self._cache.move_to_end(key)
            self.stats["hits"] += 1
            if isinstance(entry.result, PkiError):
                raise entry.result
            return _captured(entry.result)
        pending = self._inflight.get(key)
        if TOLERATE_UNKNOWN.get():  # a result only this caller may take: not shared, not cached
            result = await self._validate(cert, moment, usage, intermediates)
        elif pending is not None and at is None:
            result = await asyncio.shield(pending)
        else:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            try:
                result = await self._validate(cert, moment, usage, intermediates)
                future.set_result(result)
            except BaseException as exc:  # cancellation included: waiters must not hang
                future.set_exception(exc)
                future.exception()  # mark retrieved
                raise
            finally:
                self._inflight.pop(key, None)
            self._store(key, result, moment)
        if isinstance(result, PkiError):
            raise result
        return _captured(result)

    def _store(self, key: tuple[str, str], result: ValidatedCert | PkiError, moment: dt.datetime) -> None:
        if isinstance(result, ValidatedCert):
            if result.revocation == "pending":
                return  # never reused: the next letter asks the responder again
            entry = _Entry(result, result.valid_from, result.valid_until)
        elif result.code in ("certificate.untrusted", "certificate.revoked", "certificate.key_usage",
                             "certificate.algorithm", "certificate.invalid"):
            entry = _Entry(result, moment, moment + self.negative_ttl)
        else:
            return  # time-dependent or transient (expired, not yet valid, revocation unknown)
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _validate(self, cert: x509.Certificate, moment: dt.datetime, usage: str,
                        intermediates: Sequence[x509.Certificate]) -> ValidatedCert | PkiError:
        self.stats["validations"] += 1
        key_usage, ekus, eku_optional = _USAGES[usage]
        context, backend = self._context(at=moment, extra_certs=intermediates, revocation=None)
        validator = CertificateValidator(_to_asn1(cert), validation_context=context)
        try:
            path = await validator.async_validate_usage(key_usage, ekus or None, eku_optional)
        except Exception as exc:  # noqa: BLE001 - mapped to stable codes below
            error = map_error(exc)
            if error.code == "certificate.revocation_unknown" and TOLERATE_UNKNOWN.get() \
                    and self.revocation == "hard-fail" and backend is not None and backend.unreachable:
                return await self._validate_pending(cert, moment, usage, intermediates, error)
            if error.code == "certificate.untrusted" and self.ocsp and self.on_fetch is not None:
                # no path to an anchor: the leaf's revocation URLs are not fetched (its issuer URLs were
                # refused by the path builder's fetcher); count them as refused for the same reason
                for kind, _ in urls_of(cert):
                    if kind != "issuer":
                        self.on_fetch(kind, "refused_untrusted")
            return error
        finally:
            await close_context(context)
        # iter_certs runs root -> leaf; ValidatedCert.path is leaf -> root.
        chain = tuple(reversed([_from_asn1(c) for c in path.iter_certs(include_root=True)]))
        valid_from = max(c.not_valid_before_utc for c in chain)
        valid_until = min([c.not_valid_after_utc for c in chain] + [moment + self.ttl])
        notes = tuple(str(e) for e in context.soft_fail_exceptions)
        revocation: RevocationFact = "off" if self.revocation == "off" else "unknown" if notes else "ok"
        if notes:  # an unknown status is asked again soon, not trusted for the whole ttl
            valid_until = min(valid_until, moment + self.negative_ttl)
        return ValidatedCert(cert=cert, path=chain, fingerprint=fingerprint(cert), agency_code=agency_of(cert),
                             usage=usage, checked_at=moment, valid_from=min(valid_from, moment),
                             valid_until=valid_until, soft_failures=notes, revocation=revocation,
                             ocsp=tuple(r.dump() for r in context.ocsps), crls=tuple(c.dump() for c in context.crls))

    async def _validate_pending(self, cert: x509.Certificate, moment: dt.datetime, usage: str,
                                intermediates: Sequence[x509.Certificate], error: PkiError) -> ValidatedCert | PkiError:
        """Hard-fail could not reach the responders: all else is checked again under soft-fail, ``pending``."""
        key_usage, ekus, eku_optional = _USAGES[usage]
        context, _ = self._context(at=moment, extra_certs=intermediates, revocation="soft-fail")
        validator = CertificateValidator(_to_asn1(cert), validation_context=context)
        try:
            path = await validator.async_validate_usage(key_usage, ekus or None, eku_optional)
        except Exception as exc:  # noqa: BLE001 - mapped to stable codes below
            return map_error(exc)
        finally:
            await close_context(context)
        chain = tuple(reversed([_from_asn1(c) for c in path.iter_certs(include_root=True)]))
        return ValidatedCert(cert=cert, path=chain, fingerprint=fingerprint(cert), agency_code=agency_of(cert),
                             usage=usage, checked_at=moment, valid_from=moment, valid_until=moment,
                             soft_failures=(error.message,), revocation="pending")


def _captured(result: ValidatedCert) -> ValidatedCert:
    captured = CAPTURE.get()
    if captured is not None:
        captured.append(result)
    return result


async def close_context(context: ValidationContext) -> None:
    # A ValidationContext that built its own fetcher backend owns an aiohttp session.
    backend = getattr(context, "_owned_fetcher_backend", None)
    if backend is not None:
        try:
            await backend.close()
        except Exception:  # noqa: BLE001 - closing a session must never mask the validation result
            pass
