"""Folder drop: write each envelope as a file for a system that reads a directory.

The file appears atomically (written to a temporary name, fsynced, renamed),
named by the delivery id so a re-delivery after a crash overwrites the same
file instead of creating a second letter. The office's side deletes or moves
files it has taken; the acknowledgement is the file's presence. A file that
travels beside the envelope (``ContentRef`` ``cid:<Id>``) is written first as
``<delivery id>.<Id>``, then the envelope.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from adapters.base import Delivered, OutboundDelivery, Outcome, Retry


def _write_atomically(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f".{name}.part"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def _write_part(directory: Path, name: str, chunks: AsyncIterator[bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.part"
    with open(tmp, "wb") as fh:
        async for chunk in chunks:
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / name)


class FolderAdapter:
    kind = "folder"
    pushes = True

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        directory = Path(d.route.settings["path"])
        name = f"{d.delivery_id}.xml"
        try:
            # Files beside the envelope first (<delivery id>.<Content-ID>), the envelope last: a reader
            # that sees the .xml finds every file it refers to.
            for p in d.parts:
                await _write_part(directory, f"{d.delivery_id}.{p.content_id}", d.read_part(p.content_id))
            await asyncio.to_thread(_write_atomically, directory, name, d.envelope)
        except OSError as exc:
            return Retry(f"folder: {exc}"[:300])
        return Delivered(ack=None)
