"""Archive files: a closed range of the chain in JSON Lines, deterministic bytes.

A file covers the events after ``prev_seq`` up to a checkpoint, one JSON object
per line (``chain.dumps``: sorted keys, no spaces, UTF-8), in this order::

    {"type": "header", "format": "saraban-audit-export/1", "first_seq", "last_seq",
     "prev_seq", "prev_hash", "prev_count"}          # links to the previous file's last digest
    {"type": "event", "seq", "prev_seq", "leaf", "hash", <the hashed fields>}   # one per event
    {"type": "checkpoint", "seq", "hash", "count", "at", "payload", "signature",
     "cert_sha256", "tsa_token"}                     # every checkpoint in the range
    {"type": "footer", "events", "last_seq", "last_hash"}

Nothing in a file depends on when it was written, so exporting the same range
twice gives identical bytes (a time-stamp token added to a checkpoint later
does change them: export ranges whose checkpoints are complete). Evidence
bundles use the same format, with ``{"type": "digest", "seq", "prev_seq",
"leaf", "hash"}`` lines for events of other letters.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.audit.chain import GENESIS, Row, dumps, event_fields, format_at
from gateway.core.errors import GatewayError
from gateway.storage.db import queries


class AuditError(GatewayError):
    status = 409
    code = "audit.error"


@dataclass(frozen=True)
class Exported:
    path: Path
    first_seq: int
    last_seq: int
    events: int
    sha256: str


def checkpoint_line(c: Row) -> bytes:
    return dumps({"type": "checkpoint", "seq": c["seq"], "hash": bytes(c["hash"]).hex(), "count": c["count"],
                  "at": format_at(c["at"]), "payload": base64.b64encode(bytes(c["payload"])).decode(),
                  "signature": base64.b64encode(bytes(c["signature"])).decode(),
                  "cert_sha256": c["cert_sha256"],
                  "tsa_token": base64.b64encode(bytes(c["tsa_token"])).decode() if c["tsa_token"] else None})


def event_line(row: Row) -> bytes:
    return dumps({"type": "event", "prev_seq": row["prev_seq"], "leaf": bytes(row["leaf"]).hex(),
                  "hash": bytes(row["hash"]).hex(), **event_fields(row)})


def digest_line(row: Row) -> bytes:
    return dumps({"type": "digest", "seq": row["seq"], "prev_seq": row["prev_seq"],
                  "leaf": bytes(row["leaf"]).hex(), "hash": bytes(row["hash"]).hex()})


async def _start_of(conn: asyncpg.Connection | PoolConnectionProxy, after: int) -> tuple[bytes, int]:
    """Stored hash at ``after`` and count there."""
    if after == 0:
        return GENESIS, 0
    row = await conn.fetchrow(queries["audit_chain_row"], after)
    if row is not None:
        cnt = await conn.fetchval(queries["audit_chain_count_through"], after)
        dropped = [a for a in await conn.fetch(queries["audit_archives"]) if a["dropped_at"] is not None]
        base = dropped[-1]["count"] if dropped else 0
        return bytes(row["hash"]), base + cnt
    for a in await conn.fetch(queries["audit_archives"]):
        if a["last_seq"] == after:
            return bytes(a["last_hash"]), a["count"]
    raise AuditError(f"seq {after} is neither in the chain nor the end of an archive", code="audit.no_start")


async def write_range(conn: asyncpg.Connection | PoolConnectionProxy, out: Path, *, after: int, through: int,
                      page: int = 20_000, progress: Callable[[int, int], None] | None = None) -> Exported:
    """Write the events in (after, through] and their checkpoints; ``through`` must be a checkpoint.
    ``progress(done, total)`` after each page, in sequence numbers (the CLI's progress line)."""
    cps = await conn.fetch(queries["audit_checkpoints_between"], after, through)
    if not cps or cps[-1]["seq"] != through:
        raise AuditError(f"seq {through} is not a checkpoint: a file must end at a signed checkpoint",
                         code="audit.not_checkpoint")
    prev_hash, prev_count = await _start_of(conn, after)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"audit-{after + 1:012d}-{through:012d}.jsonl"
    tmp = path.with_suffix(".jsonl.part")
    digest = hashlib.sha256()
    n, last_hash, first = 0, prev_hash, None
    with open(tmp, "wb") as f:
        def put(line: bytes) -> None:
            digest.update(line + b"\n")
            f.write(line + b"\n")

        cursor = after
        body: list[bytes] = []
        while True:
            rows = await conn.fetch(queries["audit_chain_range"], cursor, through, page)
            for r in rows:
                if r["seq"] is None or r["chain_seq"] is None:
                    raise AuditError(f"seq {r['seq'] or r['chain_seq']}: event and chain disagree; run "
                                     "`gateway audit verify --database` first", code="audit.chain_broken")
                body.append(event_line(r))
                first = first or r["seq"]
                last_hash = bytes(r["hash"])
                n += 1
            if progress is not None:
                progress((rows[-1]["seq"] if rows else through) - after, through - after)
            if len(rows) < page:
                break
            cursor = rows[-1]["seq"]
        put(dumps({"type": "header", "format": "saraban-audit-export/1", "first_seq": first,
                   "last_seq": through, "prev_seq": after, "prev_hash": prev_hash.hex(),
                   "prev_count": prev_count}))
        for line in body:
            put(line)
        for c in cps:
            put(checkpoint_line(c))
        put(dumps({"type": "footer", "events": n, "last_seq": through, "last_hash": last_hash.hex()}))
    tmp.replace(path)
    return Exported(path, first or through, through, n, digest.hexdigest())


async def export_next(pool: asyncpg.Pool, out: Path, *, now: dt.datetime, through: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Exported:
    """Export from the end of the last archive up to the latest (or a given) checkpoint; record it."""
    async with pool.acquire() as conn:
        last = await conn.fetchrow(queries["audit_last_archive"])
        after = last["last_seq"] if last else 0
        if through is None:
            cp = await conn.fetchrow(queries["audit_last_checkpoint"])
            if cp is None or cp["seq"] <= after:
                raise AuditError(f"no checkpoint after seq {after} yet; nothing to export",
                                 code="audit.nothing")
            through = cp["seq"]
        exported = await write_range(conn, out, after=after, through=through, progress=progress)
        cp = (await conn.fetch(queries["audit_checkpoints_between"], after, through))[-1]
        await conn.execute(queries["audit_archive_insert"], after + 1, through, bytes(cp["hash"]),
                           cp["count"], exported.path.name, bytes.fromhex(exported.sha256), now)
    return exported


async def drop_archived(pool: asyncpg.Pool, *, through: int, now: dt.datetime, retention_days: float) -> int:
    """Delete events (and chain rows) up to ``through`` once exported and older than the retention."""
    async with pool.acquire() as conn, conn.transaction():
        archives = await conn.fetch(queries["audit_archives"])
        if not any(a["last_seq"] == through for a in archives):
            raise AuditError(f"seq {through} is not the end of an exported archive",
                             code="audit.not_archived")
        newest = await conn.fetchval(queries["audit_newest_through"], through)
        if newest is not None and newest > now - dt.timedelta(days=retention_days):
            raise AuditError(f"events up to seq {through} are younger than the retention of "
                             f"{retention_days} days", code="audit.retention")
        n = int((await conn.execute(queries["audit_drop_events"], through)).split()[-1])
        await conn.execute(queries["audit_drop_chain"], through)
        await conn.execute(queries["audit_archive_dropped"], through, now)
    return n
