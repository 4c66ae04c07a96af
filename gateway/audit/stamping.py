"""Time-stamps over every seal and receipt, batched off the hot path (formats in ``gateway/audit/EVIDENCE.md``).

The request path does nothing for this. A background job in every gateway process (one at a time in the
cluster, under an advisory lock) walks the audit chain past its watermark (``er_state.stamped_seq``): each
``message.accepted`` event names a message whose seal (``messages.forwarded``) and submission receipt
(``messages.receipt``) are data objects; each ``delivery.delivered`` names a delivery receipt
(``receipts.receipt``), each read as stored since migration 0023 (``message_receipt()``, ``receipts_full``:
the receipt's signed bytes once, as its message's). Walking the *chain* rather than the table is what makes a watermark sound: the
sealer chains an event only once no earlier number can still commit (its fence, see :mod:`gateway.audit`),
so nothing committed late is ever behind the watermark.

One round takes up to ``batch`` events, builds one RFC 4998 hash tree over the objects' hashes
(:func:`pki.ers.build_tree`), asks the TSA for one token over the root, and then, in one transaction,
stores the stamp, each object's reduced hash tree (its path), and the new watermark. If the TSA does not
answer, nothing is written: intake goes on, the objects stay pending (:func:`pending`), and the job tries
again with a growing pause (up to ``max_backoff_s``); once the TSA is back, the backlog is stamped batch by
batch. A crash between the token and the commit loses only the token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from gateway.audit.tsa import DigestStamper
from gateway.core.clock import Clock
from gateway.storage.db import queries
from pki import ers

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StampSettings:
    interval_s: float = 5.0
    """How often the job wakes when there is nothing to do."""
    batch: int = 5000
    """Audit events (each one or two objects) per tree and token at most."""
    alg: str = "sha256"
    """The hash of new trees (never one declared weak: see :func:`pki.ers.strong_hash`)."""
    max_backoff_s: float = 300.0
    """The longest pause between attempts while the TSA does not answer."""
    renew_every_s: float = 3600.0
    """How often the job runs the renewal check (:mod:`gateway.audit.renewal`), and once at start."""


@dataclass(frozen=True)
class StampRound:
    locked: bool
    """False when another process held the job's lock."""
    stamped: int = 0
    """Objects time-stamped in this round."""
    more: bool = False
    """The batch was full; run again at once."""
    error: str | None = None
    """Why the TSA gave no usable token (nothing was written)."""


@dataclass(frozen=True)
class Pending:
    count: int
    """Audit events of seals and receipts not time-stamped yet."""
    oldest: dt.datetime | None
    """The oldest one's time."""


async def pending(pool: asyncpg.Pool) -> Pending:
    row = await pool.fetchrow(queries["er_pending"])
    if row is None:  # an aggregate always answers one row
        raise RuntimeError("er_pending returned no row")
    return Pending(count=int(row["pending"]), oldest=row["oldest"])


def _objects(rows: list[Any]) -> list[tuple[int, str, int | None, bytes]]:
    """Each object the events name, once: a delivery receipt named by two ``delivery.delivered`` events (an
    acknowledgement recorded twice) is one object, as ``er_items`` has one row per object."""
    out: dict[tuple[int, str, int | None], bytes] = {}
    for r in rows:
        if r["event"] == "message.accepted" and r["forwarded"] is not None:
            out.setdefault((r["message_pk"], "seal", None), bytes(r["forwarded"]))
            out.setdefault((r["message_pk"], "receipt", None), bytes(r["receipt"]))
        elif r["event"] == "delivery.delivered" and r["delivery_receipt"]:
            out.setdefault((r["message_pk"], "delivery-receipt", r["receipt_pk"]), bytes(r["delivery_receipt"]))
    return [(*key, data) for key, data in out.items()]


def _tree(alg: str, objects: list[tuple[int, str, int | None, bytes]]) -> tuple[ers.Tree, list[bytes | None]]:
    """The tree over the objects' distinct hashes (content-addressed: equal bytes are one leaf), and each
    object's reduced hash tree, in the objects' order."""
    digests = [ers.digest(alg, o[3]) for o in objects]
    leaves = list(dict.fromkeys(digests))
    tree = ers.build_tree(alg, leaves)
    at = {d: i for i, d in enumerate(leaves)}
    return tree, [tree.ders[at[d]] for d in digests]


class StampingJob:
    def __init__(self, pool: asyncpg.Pool, *, clock: Clock, stamper: DigestStamper,
                 settings: StampSettings = StampSettings(),
                 renewer: Callable[[], Awaitable[object]] | None = None) -> None:
        self.pool = pool
        self.clock = clock
        self.stamper = stamper
        self.settings = settings
        self.renewer = renewer
        self._stop = asyncio.Event()

    async def stamp_once(self) -> StampRound:
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(queries["er_lock"]):
                return StampRound(locked=False)
            try:
                return await self._round(conn)
            finally:
                await conn.fetchval(queries["er_unlock"])

    async def _round(self, conn: Any) -> StampRound:
        now = self.clock.now()
        low = (await conn.fetchrow(queries["er_state"]))["stamped_seq"]
        head = await conn.fetchval(queries["er_chained_head"])
        rows = await conn.fetch(queries["er_unstamped"], low, head, self.settings.batch)
        more = len(rows) == self.settings.batch
        mark = rows[-1]["seq"] if more else head
        objects = _objects(rows)
        if not objects:
            if mark > low:
                await conn.execute(queries["er_watermark"], low, mark, now)
            return StampRound(locked=True, more=more)
        alg = self.settings.alg
        tree, paths = await asyncio.to_thread(_tree, alg, objects)
        try:
            token = await self.stamper(tree.root, alg)
            gen_time, not_after, imprint_alg, imprint = ers.token_facts(token)
        except Exception as exc:  # noqa: BLE001 - any TSA failure: the objects stay pending
            return StampRound(locked=True, error=f"{type(exc).__name__}: {exc}")
        if (imprint_alg, imprint) != (alg, tree.root):
            return StampRound(locked=True, error="the TSA answered with a token over something else")
        async with conn.transaction():
            stamp_id = await conn.fetchval(queries["er_stamp_insert"], "initial", alg, tree.root, len(tree.ders),
                                           token, gen_time, not_after, now)
            await conn.execute(queries["er_items_stamped"], [o[0] for o in objects], [o[1] for o in objects],
                               [o[2] for o in objects], paths, alg, stamp_id)
            if await conn.execute(queries["er_watermark"], low, mark, now) != "UPDATE 1":
                raise RuntimeError("the stamping watermark moved under the job's lock")
        log.info("seals and receipts time-stamped", objects=len(objects), stamp=stamp_id, alg=alg)
        return StampRound(locked=True, stamped=len(objects), more=more)

    async def stamp_all(self) -> int:
        """Stamp everything chained so far (tests, the CLI); raises when the TSA does not answer."""
        total = 0
        while True:
            r = await self.stamp_once()
            if r.error:
                raise ConnectionError(r.error)
            total += r.stamped
            if not r.more:
                return total

    async def run(self) -> None:
        delay = self.settings.interval_s
        loop = asyncio.get_running_loop()
        next_renewal = loop.time()
        while not self._stop.is_set():
            r: StampRound | None = None
            try:
                r = await self.stamp_once()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("time-stamping round failed; retrying", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("time-stamping round failed")
            if r is not None and r.error:
                delay = min(max(delay * 2, self.settings.interval_s), self.settings.max_backoff_s)
                log.warning("the TSA gave no token; seals and receipts stay pending", error=r.error,
                            retry_in_s=delay)
            else:
                delay = self.settings.interval_s
                if r is not None and r.more:
                    continue
            if self.renewer is not None and loop.time() >= next_renewal:
                next_renewal = loop.time() + self.settings.renew_every_s
                try:
                    await self.renewer()
                except Exception as exc:  # noqa: BLE001 - the next check tries again
                    log.warning("evidence record renewal failed", error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()
