"""Folder drop: write each envelope as a file for a system that reads a directory.

The file appears atomically (written to a temporary name, fsynced, renamed),
named by the delivery id so a re-delivery after a crash overwrites the same
file instead of creating a second letter. The office's side deletes or moves
files it has taken; the acknowledgement is the file's presence.
"""

from __future__ import annotations

import asyncio
import os
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


class FolderAdapter:
    kind = "folder"
    pushes = True

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        directory = Path(d.route.settings["path"])
        name = f"{d.delivery_id}.xml"
        try:
            await asyncio.to_thread(_write_atomically, directory, name, d.envelope)
        except OSError as exc:
            return Retry(f"folder: {exc}"[:300])
        return Delivered(ack=None)
