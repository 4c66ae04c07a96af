"""Large letters: peak memory of a gateway process accepting and delivering one big file.

A real ``gateway serve`` process on its own (embedded or GATEWAY_DATABASE_URL)
PostgreSQL; a push office on loopback that streams what it gets to a hash; a
client that streams the file from disk. The gateway's RSS is sampled every few
milliseconds (psutil) from just before the submission until the office has the
letter, and the peak growth over the idle process is reported as a ratio to
the file's size (target: <= 2x).

Measured in the same run, as the baseline: the same file size through the
inline path (base64 ``Content`` inside the envelope) where inline can carry it
at all (libxml2's 10 MB text-node bound: about 7 MB of file), and the
multipart path at that same size.

Usage: python bench/large.py [--quick] [--mb 50]
Prints its figures last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures  # noqa: E402
from gateway.core.clock import BANGKOK  # noqa: E402
from gateway.core.envelope import (  # noqa: E402
    Attachment,
    Envelope,
    Header,
    Letter,
    MessageType,
    Secrecy,
    Speed,
)
from gateway.core.envelope_builder import build_envelope  # noqa: E402
from tests.support import (  # noqa: E402
    CMI,
    OPM,
    TOKENS,
    GatewayProcess,
    delivery_ack,  # noqa: E402
    free_port,
    gateway_env,
    write_directory,
)

INLINE_MB = 6  # the largest round size the inline path can carry (base64 text node < 10 MB)


def envelope_for(path: Path, *, external: bool) -> bytes:
    data = path.read_bytes() if not external else None
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    created = dt.datetime.now(BANGKOK)
    att = (Attachment.external_part(id="att-1", file_name="แผนที่.pdf", mime_type="application/pdf", size=size,
                                    sha256=digest.hexdigest(), role="main") if external
           else Attachment(id="att-1", file_name="แผนที่.pdf", mime_type="application/pdf", content=data, role="main"))
    return build_envelope(Envelope(
        header=Header(message_id=str(uuid.uuid4()), message_type=MessageType.LETTER, created_at=created,
                      sender=OPM, recipients=(CMI,)),
        body=Letter(number="นร 0105/ว 200", date=created.date(), subject="ส่งแผนที่", addressee="ผู้ว่าราชการจังหวัด",
                    speed=Speed.NORMAL, secrecy=Secrecy.NORMAL, signer_name="นายสมชาย ใจดี",
                    signer_position="ปลัดสำนักนายกรัฐมนตรี"),
        attachments=(att,)))


class StreamingOffice:
    """Receives pushes (plain or multipart), hashing as it reads: it holds no letter in memory."""

    def __init__(self) -> None:
        self.got: dict[str, int] = {}
        self.event = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        delivery_id = request.headers["X-Saraban-Delivery-Id"]
        total = 0
        if request.content_type == "multipart/related":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                while chunk := await part.read_chunk(1 << 20):
                    total += len(chunk)
        else:
            while chunk := await request.content.read(1 << 20):
                total += len(chunk)
        self.got[delivery_id] = total
        self.event.set()
        return web.Response(body=delivery_ack(delivery_id=uuid.UUID(delivery_id)), content_type="application/xml")

    async def start(self) -> str:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/inbox", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/inbox"


class RssSampler:
    """Peak RSS of one process (and its children), sampled on a thread."""

    def __init__(self, pid: int, interval: float = 0.002) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        for c in self.proc.children(recursive=True):
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
        return total

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def send(session, url: str, path: Path, *, external: bool) -> tuple[int, float]:
    env = envelope_for(path, external=external)
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}"}
    t0 = time.perf_counter()
    if external:
        with aiohttp.MultipartWriter("related") as mp, open(path, "rb") as fh:
            mp.headers["Content-Type"] = f'multipart/related; boundary="{mp.boundary}"; type="application/xml"'
            mp.append(env, {"Content-Type": "application/xml", "Content-ID": "<envelope>"})
            mp.append(fh, {"Content-Type": "application/pdf", "Content-ID": "<att-1>"})
            async with session.post(f"{url}/v1/messages", data=mp, headers=headers) as r:
                await r.read()
                status = r.status
    else:
        headers["Content-Type"] = "application/xml"
        async with session.post(f"{url}/v1/messages", data=env, headers=headers) as r:
            await r.read()
            status = r.status
    return status, time.perf_counter() - t0


async def measure(gw: GatewayProcess, office: StreamingOffice, path: Path, *, external: bool) -> dict:
    """One letter: (status, seconds to accept, seconds to delivered, peak RSS growth in bytes)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
        office.event.clear()
        before = len(office.got)
        sampler = RssSampler(gw.proc.pid)
        with sampler:
            idle = sampler.peak
            t0 = time.perf_counter()
            status, accept_s = await send(s, gw.url, path, external=external)
            if status == 202:
                while len(office.got) == before:
                    await asyncio.wait_for(office.event.wait(), timeout=300)
                    office.event.clear()
            total_s = time.perf_counter() - t0
        return {"status": status, "accept_s": accept_s, "delivered_s": total_s, "growth": sampler.peak - idle}


def make_file(directory: Path, mb: float) -> Path:
    path = directory / f"file-{mb}mb.pdf"
    with open(path, "wb") as fh:
        fh.write(b"%PDF-1.7\n")
        remaining = int(mb * 1024 * 1024) - 9
        while remaining > 0:
            n = min(remaining, 1 << 20)
            fh.write(os.urandom(n))
            remaining -= n
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a small, fast run (12 MB instead of 50 MB)")
    ap.add_argument("--mb", type=float, help="size of the large file in MiB (default 50)")
    args = ap.parse_args()
    mb = args.mb or (12 if args.quick else 50)
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-large-", dir="/tmp"))
    big, small = make_file(workdir, mb), make_file(workdir, INLINE_MB)
    warm = make_file(workdir, 0.1)

    async def one(dsn: str, office_url: str, office: StreamingOffice, path: Path, external: bool) -> dict:
        """A fresh gateway process per case: memory freed by one case must not hide the next one's growth."""
        directory = write_directory(workdir / "directory.json", {CMI: {"kind": "push", "url": office_url}})
        port = free_port()
        env = gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir,
                          GATEWAY_LOG_LEVEL="warning", GATEWAY_RATE_PER_AGENCY="0", GATEWAY_VALIDATE_PDF="false")
        gw = GatewayProcess(env=env, port=port, log_path=workdir / "gateway.log").start()
        try:
            await gw.wait_ready()
            await measure(gw, office, warm, external=external)  # warm the path (imports, pools, buffers)
            return await measure(gw, office, path, external=external)
        finally:
            gw.stop()

    async def run(dsn: str) -> dict:
        office = StreamingOffice()
        office_url = await office.start()
        try:
            return {"inline": await one(dsn, office_url, office, small, False),
                    "related_small": await one(dsn, office_url, office, small, True),
                    "related": await one(dsn, office_url, office, big, True)}
        finally:
            await office.runner.cleanup()

    try:
        with database("large") as (_admin, dsn):
            r = asyncio.run(run(dsn))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    size_small = INLINE_MB * 1024 * 1024
    size_big = mb * 1024 * 1024
    for name, m in r.items():
        print(f"{name}: {m}")
    if {m["status"] for m in r.values()} != {202}:
        raise SystemExit("a submission was refused: see the lines above")
    print(figures(payload_mb=mb, rss_growth_mb=r["related"]["growth"] / 2**20,
                  growth_ratio=r["related"]["growth"] / size_big,
                  accept_s=r["related"]["accept_s"], delivered_s=r["related"]["delivered_s"],
                  mb_per_s=mb / r["related"]["delivered_s"],
                  inline_mb=INLINE_MB, inline_growth_ratio=r["inline"]["growth"] / size_small,
                  related_growth_ratio_same_size=r["related_small"]["growth"] / size_small))


if __name__ == "__main__":
    main()
