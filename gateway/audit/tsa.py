"""RFC 3161 time-stamps on audit checkpoints, through pyHanko's client and validator.

A checkpoint's signature proves *who* sealed the chain up to a point; a
time-stamp from an independent time-stamping authority (TSA) proves *when*:
the gateway could not have produced that chain later and back-dated it. The
token is over the SHA-256 of the checkpoint's signature bytes and is kept with
the checkpoint (``audit_checkpoints.tsa_token``, and in archive files).

Verification (offline, in ``gateway audit verify``) checks that the token is
intact and valid and that its message imprint is exactly that digest; without
``tsa_roots`` the TSA certificate embedded in the token is taken as given and
the report says so (anchoring the TSA is the auditor's call).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from asn1crypto import cms
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

from gateway.audit.sealer import TimeStamper
from gateway.audit.verify import Problem, Report


def http_timestamper(session: aiohttp.ClientSession, url: str, *, timeout: float = 10.0) -> TimeStamper:
    """A ``TimeStamper`` for :class:`gateway.audit.sealer.ChainSealer` posting to ``url`` over ``session``."""
    stamper = HTTPTimeStamper(url, session=session, timeout=timeout)

    async def stamp(data: bytes) -> bytes:
        token = await stamper.async_timestamp(hashlib.sha256(data).digest(), "sha256")
        return token.dump()

    return stamp


DigestStamper = Callable[[bytes, str], Awaitable[bytes]]
"""Returns an RFC 3161 TimeStampToken (DER) whose message imprint is exactly (digest, algorithm): what the
batched stamps of seals and receipts need (:mod:`gateway.audit.stamping`), the imprint being a tree's root."""


def http_digest_stamper(session: aiohttp.ClientSession, url: str, *, timeout: float = 10.0) -> DigestStamper:
    """A :data:`DigestStamper` posting to ``url`` over ``session`` (pyHanko's client checks the nonce)."""
    stamper = HTTPTimeStamper(url, session=session, timeout=timeout)

    async def stamp(digest: bytes, alg: str) -> bytes:
        token = await stamper.async_timestamp(digest, alg)
        return bytes(token.dump())

    return stamp


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    """Intact, valid, and over exactly the given bytes."""
    gen_time: dt.datetime | None = None
    """The TSA's time (datetime)."""
    tsa: str | None = None
    """The TSA's certificate subject."""
    anchored: bool = False
    """The TSA certificate chains to a given root (False when only the embedded certificate was used)."""
    problem: str | None = None


async def check_token(token: bytes, data: bytes, *, tsa_roots: Iterable[x509.Certificate] = ()) -> TokenCheck:
    try:
        signed_data = cms.ContentInfo.load(token)["content"]
        embedded = [c.chosen for c in signed_data["certificates"] or []]
    except Exception as exc:  # unreadable token
        return TokenCheck(ok=False, problem=f"unreadable time-stamp token: {exc}")
    roots = [ax509.Certificate.load(c.public_bytes(Encoding.DER)) for c in tsa_roots]
    anchored = bool(roots)
    vc = ValidationContext(trust_roots=roots or embedded, allow_fetching=False)
    try:
        status = await validate_tst_signed_data(signed_data, vc,
                                                lambda algo: hashlib.new(algo, data).digest())
    except Exception as exc:
        return TokenCheck(ok=False, problem=f"time-stamp token does not validate: {exc}")
    ok = bool(status.get("intact")) and bool(status.get("valid"))
    signer = status.get("signing_cert")
    return TokenCheck(ok=ok, gen_time=status.get("timestamp"),
                      anchored=anchored and status.get("trust_problem_indic") is None
                      and status.get("validation_path") is not None,
                      tsa=signer.subject.human_friendly if signer is not None else None,
                      problem=None if ok else "time-stamp token is not intact or not over this checkpoint")


async def check_checkpoints(report: Report, checkpoints: Iterable[Mapping[str, Any]], *,
                            tsa_roots: Iterable[x509.Certificate] = ()) -> None:
    """Add a ``timestamp`` problem to ``report`` for every checkpoint whose token fails."""
    stamped = 0
    for cp in checkpoints:
        if not cp.get("tsa_token"):
            continue
        result = await check_token(bytes(cp["tsa_token"]), bytes(cp["signature"]), tsa_roots=tsa_roots)
        if result.ok:
            stamped += 1
        else:
            report.problems.append(Problem(cp["seq"], "timestamp", result.problem or "bad time-stamp"))
    if stamped:
        report.notes.append(f"{stamped} checkpoint time-stamps verified (RFC 3161)")

