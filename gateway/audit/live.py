"""The audit log in the live database: status and verification of the chain where it stands."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from cryptography import x509

from gateway.audit.chain import GENESIS
from gateway.audit.tsa import check_checkpoints
from gateway.audit.verify import Entry, Report, verify_entries
from gateway.storage.db import queries


async def _head(conn: PoolConnectionProxy) -> asyncpg.Record:
    """The chain head (one row, created with the schema)."""
    head = await conn.fetchrow(queries["audit_head"])
    if head is None:
        raise RuntimeError("audit_chain_head has no row: the schema is incomplete")
    return head


@dataclass(frozen=True)
class ChainStatus:
    head_seq: int
    """The last chained event."""
    count: int
    """Events chained since the genesis."""
    unsealed: int
    """Events written but not chained yet (normally a handful, for under a second)."""
    sealed_at: dt.datetime
    last_checkpoint_seq: int | None
    last_checkpoint_at: dt.datetime | None
    last_checkpoint_timestamped: bool
    archived_through: int | None
    """Exported to files up to this seq."""
    dropped_through: int | None
    """Removed from the database up to this seq (kept in archive files)."""


async def status(pool: asyncpg.Pool) -> ChainStatus:
    async with pool.acquire() as conn:
        head = await _head(conn)
        cp = await conn.fetchrow(queries["audit_last_checkpoint"])
        archives = await conn.fetch(queries["audit_archives"])
        unsealed = await conn.fetchval(queries["audit_unsealed_count"], head["seq"])
    dropped = [a for a in archives if a["dropped_at"] is not None]
    return ChainStatus(head_seq=head["seq"], count=head["count"], unsealed=unsealed,
                       sealed_at=head["updated_at"],
                       last_checkpoint_seq=cp["seq"] if cp else None,
                       last_checkpoint_at=cp["at"] if cp else None,
                       last_checkpoint_timestamped=bool(cp and cp["tsa_token"]),
                       archived_through=archives[-1]["last_seq"] if archives else None,
                       dropped_through=dropped[-1]["last_seq"] if dropped else None)


def _checkpoint(row: asyncpg.Record) -> dict[str, Any]:
    return {"seq": row["seq"], "hash": bytes(row["hash"]), "count": row["count"],
            "payload": bytes(row["payload"]), "signature": bytes(row["signature"]),
            "tsa_token": row["tsa_token"]}


async def verify_database(pool: asyncpg.Pool, cert: x509.Certificate, *, page: int = 50_000,
                          progress: Callable[[int, int], None] | None = None) -> Report:
    """Recompute the chain from the events in the database and check every checkpoint.

    Starts at the genesis, or after the last range dropped to archive files
    (whose last digest ``audit_archives`` keeps). Works page by page, so memory
    stays bounded whatever the size of the log. ``progress(done, total)`` after
    each page, in sequence numbers up to the chain head (the CLI's progress line).
    """
    rep = Report()
    async with pool.acquire() as conn:
        head = await _head(conn)
        archives = [a for a in await conn.fetch(queries["audit_archives"]) if a["dropped_at"] is not None]
        start_seq, start_hash, start_count = 0, GENESIS, 0
        if archives:
            a = archives[-1]
            start_seq, start_hash, start_count = a["last_seq"], bytes(a["last_hash"]), a["count"]
            rep.notes.append(f"events up to seq {start_seq} are in archive files "
                             "(verify them with the files)")
        stored, computed = start_hash, start_hash
        after = start_seq
        while True:
            rows = await conn.fetch(queries["audit_chain_range"], after, 2 ** 62, page)
            if not rows:
                break
            entries = []
            for r in rows:
                seq = r["seq"] if r["seq"] is not None else r["chain_seq"]
                if r["chain_seq"] is None and seq > head["seq"]:
                    continue  # written after the head: not sealed yet, legitimately
                entries.append(Entry(
                    seq=seq, prev_seq=r["prev_seq"], hash=bytes(r["hash"]) if r["hash"] is not None else None,
                    leaf=bytes(r["leaf"]) if r["leaf"] is not None else None,
                    content=dict(r) if r["seq"] is not None else None, missing=r["seq"] is None))
            last = rows[-1]["seq"] if rows[-1]["seq"] is not None else rows[-1]["chain_seq"]
            cps = [_checkpoint(c)
                   for c in await conn.fetch(queries["audit_checkpoints_between"], after, last)]
            # Hashing a page is CPU work: off the event loop, so the API keeps answering meanwhile.
            await asyncio.to_thread(verify_entries, entries, cps, cert, start_seq=after, start_hash=stored,
                                    start_count=start_count, start_computed=computed, report=rep)
            if rep.end is not None and rep.end[1] is not None:
                after, stored, computed, start_count = (rep.end[0], rep.end[1], rep.end[2] or rep.end[1],
                                                        rep.end[3] or 0)
            if progress is not None:
                progress(min(last, head["seq"]) - start_seq, head["seq"] - start_seq)
            if len(rows) < page:
                break
            after = max(after, last)
        if rep.first_seq is None:
            rep.notes.append("no events yet")
        stamped = [_checkpoint(c) for c in await conn.fetch(queries["audit_checkpoints_between"], 0, 2 ** 62)
                   if c["tsa_token"]]
    if stamped:
        await check_checkpoints(rep, stamped)
    return rep


@dataclass
class VerifyJob:
    """The console's verification of the live chain: one at a time per process, in the background.

    At millions of events a full verification takes minutes; a request must not hold the event
    loop (or a person's browser) for that. The console starts a job, then shows its progress and,
    when it is done, its report, who asked for it and when.
    """

    started_at: dt.datetime | None = None
    started_by: str | None = None
    finished_at: dt.datetime | None = None
    report: Report | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, pool: asyncpg.Pool, cert: x509.Certificate, *, by: str,
              now: Callable[[], dt.datetime]) -> bool:
        """Start a verification unless one is running; False if one was."""
        if self.running:
            return False
        (self.started_at, self.started_by, self.finished_at,
         self.report, self.error) = now(), by, None, None, None

        async def run() -> None:
            try:
                self.report = await verify_database(pool, cert)
            except Exception as exc:  # shown on the page; the chain itself is unaffected
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                self.finished_at = now()

        self.task = asyncio.create_task(run())
        return True

    async def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
