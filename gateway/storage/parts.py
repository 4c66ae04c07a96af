"""Message parts: files that travel beside the envelope, stored in chunks (see :mod:`gateway.core.parts`).

:func:`insert` runs inside the caller's accept transaction and copies each
spool file one :data:`gateway.core.parts.STORE_CHUNK` at a time, so storing a 50 MB
file holds one chunk in memory, not the file. :func:`iter_chunks` reads a part
back the same way, one short query per chunk, for push deliveries and
downloads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from gateway.core.parts import STORE_CHUNK, PartInfo, SpooledPart
from gateway.storage import Connection, Executor
from gateway.storage.db import queries


async def insert(conn: Connection, message_pk: int, parts: Iterable[SpooledPart]) -> None:
    """Store every part of ``message_pk``; call inside the transaction that inserts the message.
    Each is stored under ``content_type`` as the checks left it: its signed Attachment's MimeType."""
    for p in parts:
        chunks = -(-p.size // STORE_CHUNK)
        await conn.execute(queries["insert_part"], message_pk, p.content_id, p.content_type, p.size,
                           bytes.fromhex(p.sha256), chunks)
        for seq, chunk in enumerate(p.read_chunks(STORE_CHUNK)):
            await conn.execute(queries["insert_part_chunk"], message_pk, p.content_id, seq, chunk)


async def list_parts(db: Executor, message_pk: int) -> tuple[PartInfo, ...]:
    return tuple(PartInfo(content_id=r["content_id"], content_type=r["content_type"], size=r["size"],
                          sha256=r["sha256"].hex())
                 for r in await db.fetch(queries["message_parts"], message_pk))


async def _chunks(db: Executor, message_pk: int, content_id: str) -> int | None:
    row = await db.fetchrow("SELECT chunks FROM message_parts WHERE message_pk = $1 AND content_id = $2",
                            message_pk, content_id)
    return None if row is None else row["chunks"]


async def iter_chunks(db: Executor, message_pk: int, content_id: str) -> AsyncIterator[bytes]:
    """The part's bytes, chunk by chunk (nothing for an unknown part)."""
    n = await _chunks(db, message_pk, content_id)
    for seq in range(n or 0):
        data = await db.fetchval(queries["part_chunk"], message_pk, content_id, seq)
        if data is None:  # a chunk missing means the store is damaged: fail loudly, never send less
            raise RuntimeError(f"part {content_id} of message {message_pk} lacks chunk {seq}")
        yield data


async def read(db: Executor, message_pk: int, content_id: str) -> bytes:
    """The whole part in memory: only for routes that cannot stream (e-CMS inlines base64)."""
    out = bytearray()
    async for chunk in iter_chunks(db, message_pk, content_id):
        out += chunk
    return bytes(out)
