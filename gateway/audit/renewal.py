"""Renewing Evidence Records (RFC 4998 5.2): time-stamp renewal and hash-tree renewal, resumable.

Time-stamp renewal
    A chain's tip (a stamp not renewed yet) is renewed before its TSA certificate ends: every tip whose
    ``tsa_not_after`` falls within ``margin`` of now gets a new ArchiveTimeStamp over ``H(its token)``. The
    tips of one algorithm are the leaves of one tree with one new token, and the renewal is stored once per
    tip (``er_stamp_renewals``), not once per letter: every item whose chain ends at that tip shares it.

Hash-tree renewal
    When an algorithm is declared weak (``GATEWAY_WEAK_HASHES``, e.g. ``sha256@2035-01-01``), at once and
    whatever the date: every item whose latest chain uses it gets a new chain with a strong algorithm. For
    each item, ``H'(H'(d) || H'(atsc))`` over the object's bytes and its record so far; ``chunk`` items per
    tree and token. Each chunk commits its chains and the watermark (``er_state.renew_item``) in one
    transaction, so a killed run resumes after the last committed chunk and no item gets two new chains
    (a chain number is taken once, and a renewed item no longer uses the weak algorithm).

One run at a time in the cluster (an advisory lock of its own; the stamping job goes on meanwhile).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from gateway.audit.ers import load_chains
from gateway.audit.tsa import DigestStamper
from gateway.core.clock import Clock
from gateway.storage.db import queries
from pki import ers

log = structlog.get_logger(__name__)

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)`` after each chunk (phase: ``hash-tree`` or ``timestamp``)."""


class RenewalError(Exception):
    """The renewal could not go on (the TSA did not answer, another run holds the lock ...)."""


@dataclass(frozen=True)
class RenewalPolicy:
    weak: Mapping[str, dt.datetime] = field(default_factory=dict)
    """Hash algorithms declared weak, from when (``GATEWAY_WEAK_HASHES``)."""
    alg: str = "sha512"
    """The algorithm of new chains (never a weak one)."""
    margin: dt.timedelta = dt.timedelta(days=180)
    """Renew a time-stamp this long before its TSA certificate ends (``GATEWAY_ER_RENEW_DAYS``)."""
    chunk: int = 2000
    """Items (or tips) per tree, token and transaction."""


@dataclass
class RenewalReport:
    rehashed: int = 0
    """Items given a new chain (hash-tree renewal) in this run."""
    resumed_after: int = 0
    """The item id an interrupted run had reached (0: a fresh start)."""
    tips_renewed: int = 0
    """Chain tips given a new time-stamp (time-stamp renewal)."""
    tokens: int = 0
    """Tokens obtained and stored."""
    bytes_hashed: int = 0
    """Bytes of archived objects re-hashed."""
    seconds: float = 0.0


def _rehash(alg: str, items: list[tuple[int, bytes]], chains: dict[int, tuple[list[list[bytes]], list[str]]]
            ) -> ers.Tree:
    leaves = [ers.rehash_leaf(alg, data, ers.encode_sequence(chains[i][0])) for i, data in items]
    return ers.build_tree(alg, leaves)


async def _token(stamper: DigestStamper, root: bytes, alg: str) -> tuple[bytes, dt.datetime, dt.datetime]:
    try:
        token = await stamper(root, alg)
        gen_time, not_after, imprint_alg, imprint = ers.token_facts(token)
    except Exception as exc:  # noqa: BLE001 - the run stops here; committed chunks stand
        raise RenewalError(f"the TSA gave no token: {type(exc).__name__}: {exc}") from exc
    if (imprint_alg, imprint) != (alg, root):
        raise RenewalError("the TSA answered with a token over something else")
    return token, gen_time, not_after


async def _hash_tree(conn: Any, *, clock: Clock, stamper: DigestStamper, policy: RenewalPolicy,
                     report: RenewalReport, progress: Progress | None, max_chunks: int | None) -> None:
    weak = sorted(policy.weak)
    if policy.alg in policy.weak:
        raise RenewalError(f"the new chains' algorithm {policy.alg} is itself declared weak")
    state = await conn.fetchrow(queries["er_state"])
    mark = state["renew_item"] if state["renew_alg"] == policy.alg else 0
    report.resumed_after = mark
    done = 0
    total = await conn.fetchval(queries["er_weak_items_after"], weak, mark)
    chunks = 0
    while total and (max_chunks is None or chunks < max_chunks):
        rows = await conn.fetch(queries["er_items_to_rehash"], weak, mark, policy.chunk)
        if not rows:
            break
        chains = await load_chains(conn, [r["id"] for r in rows])
        items = [(r["id"], bytes(r["data"])) for r in rows]
        tree = await asyncio.to_thread(_rehash, policy.alg, items, chains)
        token, gen_time, not_after = await _token(stamper, tree.root, policy.alg)
        async with conn.transaction():
            stamp_id = await conn.fetchval(queries["er_stamp_insert"], "hash-tree-renewal", policy.alg, tree.root,
                                           len(items), token, gen_time, not_after, clock.now())
            await conn.execute(queries["er_rehash_apply"], [r["id"] for r in rows], [r["chains"] for r in rows],
                               tree.ders, stamp_id, policy.alg)
            mark = rows[-1]["id"]
            await conn.execute(queries["er_renew_progress"], policy.alg, mark, clock.now())
        chunks += 1
        done += len(rows)
        report.rehashed += len(rows)
        report.tokens += 1
        report.bytes_hashed += sum(len(d) for _, d in items)
        if progress is not None:
            progress("hash-tree", done, total)
    if not await conn.fetchval(queries["er_weak_items_left"], weak):
        await conn.execute(queries["er_supersede"], weak)
        await conn.execute(queries["er_renew_progress"], None, 0, clock.now())


async def _timestamps(conn: Any, *, clock: Clock, stamper: DigestStamper, policy: RenewalPolicy,
                      report: RenewalReport, progress: Progress | None) -> None:
    due = clock.now() + policy.margin
    weak = sorted(policy.weak)
    seen: set[int] = set()
    while True:
        tips = [t for t in await conn.fetch(queries["er_tips_due"], due, weak, policy.chunk) if t["id"] not in seen]
        if not tips:
            return
        by_alg: dict[str, list[Any]] = {}
        for t in tips:
            by_alg.setdefault(t["alg"], []).append(t)
        for alg, group in by_alg.items():
            tree = ers.build_tree(alg, [ers.digest(alg, bytes(t["token"])) for t in group])
            token, gen_time, not_after = await _token(stamper, tree.root, alg)
            async with conn.transaction():
                stamp_id = await conn.fetchval(queries["er_stamp_insert"], "timestamp-renewal", alg, tree.root,
                                               len(group), token, gen_time, not_after, clock.now())
                await conn.execute(queries["er_renewals_insert"], [t["id"] for t in group], stamp_id,
                                   tree.ders)
            seen.add(stamp_id)  # a TSA whose own certificate ends within the margin is not asked again now
            if not_after <= due:
                log.warning("the TSA certificate itself ends within the renewal margin", not_after=str(not_after))
            report.tips_renewed += len(group)
            report.tokens += 1
            if progress is not None:
                progress("timestamp", report.tips_renewed, report.tips_renewed)


async def renew(pool: asyncpg.Pool, *, clock: Clock, stamper: DigestStamper, policy: RenewalPolicy,
                progress: Progress | None = None, max_chunks: int | None = None) -> RenewalReport:
    """Hash-tree renewal of every item in a weak algorithm, then time-stamp renewal of every tip due."""
    report = RenewalReport()
    started = time.perf_counter()
    async with pool.acquire() as conn:
        if not await conn.fetchval(queries["er_renew_lock"]):
            raise RenewalError("another renewal run holds the lock")
        try:
            await _hash_tree(conn, clock=clock, stamper=stamper, policy=policy, report=report, progress=progress,
                             max_chunks=max_chunks)
            if max_chunks is None:
                await _timestamps(conn, clock=clock, stamper=stamper, policy=policy, report=report,
                                  progress=progress)
        finally:
            await conn.fetchval(queries["er_renew_unlock"])
    report.seconds = time.perf_counter() - started
    if report.tokens:
        log.info("evidence records renewed", rehashed=report.rehashed, tips=report.tips_renewed,
                 tokens=report.tokens)
    return report
