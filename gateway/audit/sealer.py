"""The chain sealer: a background task in every gateway process (design in ``gateway.audit``).

Who seals
    Every round runs in one transaction under ``pg_try_advisory_xact_lock``
    (``audit_sealer_lock``): that lock alone keeps the chain single-writer, for
    ``gateway serve`` and for one-off rounds (``gateway audit export
    --checkpoint``, tests) alike. Inside ``gateway serve`` the rounds
    themselves run in one process only: the *leader*, the one that holds the
    session-level advisory lock :data:`LEADER_LOCK` on a connection of its own
    (outside the pool, whose connections keep no session state). Every other
    process, on this machine or another on the same database, is a standby
    that asks for that lock once per interval, one statement on its own
    connection and no transaction, instead of a whole round. When the leader
    exits, crashes or loses its connection, PostgreSQL drops the lock with the
    session and a standby takes it at its next try, within one interval. A
    leader whose connection died silently (a half-open socket) may still run
    rounds while a new leader does: the round lock keeps that safe, it only
    costs the work twice. Behind a transaction-mode pooler (PgBouncer) a
    session lock can outlive its holder on a server connection that nobody
    seals from; a standby therefore still runs a round every
    ``standby_round_every`` intervals (10 s by default), so the chain is
    sealed in every case, only later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from gateway.audit.chain import chain_hash, checkpoint_payload, leaf_hash
from gateway.audit.signing import cert_sha256
from gateway.core.clock import Clock
from gateway.core.rounds import run_rounds
from gateway.core.sealing import CheckpointSigner
from gateway.storage.db import queries

log = structlog.get_logger(__name__)

LEADER_LOCK = 6515392107730944002
"""The session-level advisory lock whose holder runs the sealing rounds in ``gateway serve``
(another key than the rounds' transaction lock, so one-off rounds still get in between)."""

Connect = Callable[[], Awaitable[asyncpg.Connection]]
"""Opens a connection of the sealer's own, outside the pool (it holds :data:`LEADER_LOCK`)."""

TimeStamper = Callable[[bytes], Awaitable[bytes]]
"""Returns an RFC 3161 TimeStampToken (DER) over the given bytes (``gateway.audit.tsa``)."""


@dataclass(frozen=True)
class SealerSettings:
    interval_s: float = 0.25
    """How often the sealer wakes (sealing lag is about twice this)."""
    batch: int = 5000
    """Events chained per transaction at most."""
    checkpoint_events: int = 1000
    """A signed checkpoint after this many new events ..."""
    checkpoint_seconds: float = 60.0
    """... or this long after the previous checkpoint, whichever comes first."""
    standby_round_every: int = 40
    """A standby (not holding the leader lock) still runs a round every this many intervals (10 s at
    0.25 s), so sealing goes on, slower, even when the leader lock is held by no sealer at all (a
    session left behind by a transaction-mode pooler such as PgBouncer, a half-open connection)."""
    held_warning_s: float = 30.0
    """A fence held back this long by open transactions that hold audit numbers is logged as a warning
    naming them (pid, application, state, since when), then again every this many seconds while held."""


@dataclass(frozen=True)
class SealRound:
    """What one round did."""

    locked: bool
    """False when another process held the sealer lock."""
    chained: int = 0
    """Events chained in this round."""
    head_seq: int = 0
    """The chain head after the round."""
    checkpoint_id: int | None = None
    """The checkpoint written in this round, if any."""
    more: bool = False
    """The batch was full; run again at once."""


class ChainSealer:
    def __init__(self, pool: asyncpg.Pool, *, clock: Clock, signer: CheckpointSigner | None = None,
                 settings: SealerSettings = SealerSettings(), timestamper: TimeStamper | None = None,
                 connect: Connect | None = None) -> None:
        self.pool = pool
        self.connect = connect
        """Without it, :meth:`run` runs a round in every process (each contends for the round lock)."""
        self.leading = False
        """This sealer holds :data:`LEADER_LOCK` (only with ``connect``)."""
        self._lock_conn: asyncpg.Connection | None = None
        self._standby_rounds = 0
        self._held_since: float | None = None
        """When (monotonic) the current fence was first found still held; None while none is."""
        self._warned_at: float | None = None
        self.clock = clock
        self.signer = signer
        self.settings = settings
        self.timestamper = timestamper
        self._stop = asyncio.Event()
        self._cert_sha256 = cert_sha256(signer.certificate) if signer is not None else None

    async def seal_once(self, *, force_checkpoint: bool = False) -> SealRound:
        now = self.clock.now()
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                # Reads first: the sealer must hold no xid of its own while it takes the fence snapshot.
                if not await conn.fetchval(queries["audit_sealer_lock"]):
                    return SealRound(locked=False)
                head = await conn.fetchrow(queries["audit_head"])
                if head is None:  # the schema creates the one head row
                    raise RuntimeError("audit_chain_head has no row: the schema is incomplete")
                head_seq, head_hash, count = head["seq"], bytes(head["hash"]), head["count"]
                fence = ((head["fence_seq"], list(head["fence_xids"]))
                         if head["fence_seq"] is not None else None)
                bound = head_seq
                if fence is not None and await conn.fetchval(queries["audit_fence_ready"], fence[1]):
                    bound, fence = fence[0], None
                if fence is None:
                    self._held_since = None
                else:
                    await self._report_held(conn, fence)
                last = await conn.fetchval(queries["audit_seq_last"])
                # read after `last`, never before
                running = await conn.fetchval(queries["audit_running_xids"])
                if not running:  # no write transaction at all: every number <= last is final
                    bound, fence = max(bound, last), None
                elif fence is None and last > bound:
                    fence = (last, list(running))
                rows: list[asyncpg.Record] = []
                if bound > head_seq:
                    rows = await conn.fetch(queries["audit_unchained"], head_seq, bound, self.settings.batch)
                more = len(rows) == self.settings.batch
                if more and rows[-1]["seq"] < bound:
                    # finish this ready range next round; its fence has already passed
                    fence = (bound, [])
                seqs: list[int] = []
                prevs: list[int] = []
                leaves: list[bytes] = []
                hashes: list[bytes] = []
                prev_seq, prev_hash = head_seq, head_hash
                for r in rows:
                    leaf = leaf_hash(r)
                    h = chain_hash(prev_hash, leaf)
                    seqs.append(r["seq"])
                    prevs.append(prev_seq)
                    leaves.append(leaf)
                    hashes.append(h)
                    prev_seq, prev_hash = r["seq"], h
                if rows:
                    await conn.execute(queries["audit_chain_insert"], seqs, prevs, leaves, hashes, now)
                count += len(rows)
                old_fence = ((head["fence_seq"], list(head["fence_xids"]))
                             if head["fence_seq"] is not None else None)
                if rows or fence != old_fence:
                    await conn.execute(queries["audit_head_update"], prev_seq, prev_hash, count,
                                       fence[0] if fence else None, fence[1] if fence else None, now)
                checkpoint = await self._maybe_checkpoint(conn, now, prev_seq, prev_hash, count,
                                                          force_checkpoint)
        if checkpoint is not None and self.timestamper is not None:
            await self._timestamp(self.timestamper, checkpoint)
        if rows:
            log.debug("audit events sealed", count=len(rows), head=prev_seq)
        return SealRound(locked=True, chained=len(rows), head_seq=prev_seq,
                         checkpoint_id=checkpoint[0] if checkpoint else None, more=more)

    async def _report_held(self, conn: PoolConnectionProxy, fence: tuple[int, list[str]]) -> None:
        """A fence still held: once it has been held :attr:`SealerSettings.held_warning_s`, a warning naming
        the sessions whose transactions hold it (then again every as many seconds while it is held)."""
        now = time.monotonic()
        if self._held_since is None:
            self._held_since, self._warned_at = now, None
        every = self.settings.held_warning_s
        if now - self._held_since < every or (self._warned_at is not None and now - self._warned_at < every):
            return
        self._warned_at = now
        holders = [{"pid": r["pid"], "application_name": r["application_name"], "state": r["state"],
                    "xact_start": r["xact_start"].isoformat() if r["xact_start"] else None, "query": r["query"]}
                   for r in await conn.fetch(queries["audit_fence_holders"], fence[1])]
        log.warning("audit sealing is held back by open transactions that hold audit numbers",
                    held_s=round(now - self._held_since, 1), fence_seq=fence[0], holders=holders)

    async def _maybe_checkpoint(self, conn: PoolConnectionProxy, now: dt.datetime, seq: int, hash_: bytes,
                                count: int, force: bool) -> tuple[int, bytes] | None:
        if self.signer is None or self._cert_sha256 is None or seq == 0:
            return None
        last = await conn.fetchrow(queries["audit_last_checkpoint"])
        if last is not None and last["seq"] >= seq:
            return None
        due = (force or last is None or count - last["count"] >= self.settings.checkpoint_events
               or (now - last["at"]).total_seconds() >= self.settings.checkpoint_seconds)
        if not due:
            return None
        payload = checkpoint_payload(seq=seq, hash_=hash_, count=count, at=now, cert_sha256=self._cert_sha256)
        signature = self.signer.sign(payload)
        cid = await conn.fetchval(queries["audit_checkpoint_insert"], seq, hash_, count, now, payload,
                                  signature, self._cert_sha256)
        log.info("audit checkpoint signed", seq=seq, count=count)
        return (cid, signature) if cid is not None else None

    async def _timestamp(self, timestamper: TimeStamper, checkpoint: tuple[int, bytes]) -> None:
        cid, signature = checkpoint
        try:
            token = await timestamper(signature)
        except Exception as exc:  # the checkpoint stands without a time-stamp; the next one tries again
            log.warning("time-stamping the checkpoint failed", error=f"{type(exc).__name__}: {exc}")
            return
        await self.pool.execute(queries["audit_checkpoint_tsa"], cid, token)

    async def seal_until(self, seq: int, *, timeout: float = 10.0) -> int:
        """Seal until the head reaches ``seq`` (used by export and tests); returns the head."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            r = await self.seal_once()
            if r.locked and r.head_seq >= seq:
                return r.head_seq
            if loop.time() > deadline:
                raise TimeoutError(f"the audit chain did not reach seq {seq}")
            if not r.more:
                await asyncio.sleep(0.02)

    async def _round(self) -> bool:
        if self.connect is not None and not await self._lead():
            self._standby_rounds += 1
            if self._standby_rounds < self.settings.standby_round_every:
                return False
            self._standby_rounds = 0  # a round now and then: the round lock keeps it safe beside a leader
        return (await self.seal_once()).more

    async def _lead(self) -> bool:
        """Whether this process is the leader, trying to become it if not (one statement)."""
        conn = self._lock_conn
        if conn is not None and conn.is_closed():
            if self.leading:
                log.warning("the audit sealer lost its lock connection; another process may seal now")
            self._lock_conn, self.leading, conn = None, False, None
        if self.leading:
            return True
        assert self.connect is not None
        if conn is None:
            conn = self._lock_conn = await self.connect()
        try:
            self.leading = bool(await conn.fetchval(queries["audit_sealer_leader"], LEADER_LOCK))
        except BaseException:
            # the lock's state on this connection is unknown now: drop the connection, and the lock with it
            self._lock_conn = None
            conn.terminate()
            raise
        if self.leading:
            log.info("this process seals the audit chain")
        return self.leading

    async def run(self) -> None:
        try:
            await run_rounds(self._round, self._stop, interval_s=self.settings.interval_s,
                             what="audit sealer round", log=log)
        finally:
            conn, self._lock_conn, self.leading = self._lock_conn, None, False
            if conn is not None:  # ending the session releases the lock
                try:
                    await conn.close(timeout=2)
                except Exception:  # already broken: nothing is held any more
                    conn.terminate()

    def stop(self) -> None:
        self._stop.set()
