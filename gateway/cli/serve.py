"""``gateway serve``: one gateway process, or a supervisor of several on one port."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import structlog
from aiohttp import web

from gateway.cli.common import database_url, settings_from
from gateway.core import appkeys as keys
from gateway.core.logging import configure
from gateway.core.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, worker_exited
from gateway.core.settings import Settings
from gateway.core.signing import server_ssl_context
from gateway.ecms.settings import ECMS_PATH
from gateway.http.app import create_app
from gateway.http.legacy_listener import LEGACY_SITES

log = structlog.get_logger(__name__)


async def _until_signalled() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.workers is not None:
        settings = replace(settings, workers=args.workers)
    if settings.workers > 1:
        return await supervise(settings)
    if args.no_dispatch:
        settings = replace(settings, dispatch=replace(settings.dispatch, enabled=False))
    configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024, reuse_address=True,
                       reuse_port=settings.reuse_port or None,
                       ssl_context=server_ssl_context(settings, app[keys.TRUST]))
    await site.start()
    log.info("serving", event_loop=type(asyncio.get_running_loop()).__module__.partition(".")[0])
    # What start-up made lives as long as the process: out of the collector's sight, and young objects
    # collected every 20,000 allocations instead of 700 (a letter allocates thousands, few survive).
    # bench/e2e.py: the collector took ~6% of each worker's CPU with the defaults, ~1.5% so.
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    if not settings.reuse_port:  # a worker under supervise(): the supervisor prints the banner
        base = settings.base_url
        print(f"Saraban gateway listening on {base}", flush=True)
        print(f"  readiness: {base}/readyz   API: {base}/v1/openapi.json", flush=True)
        print("  send a first letter (another terminal; signed with the development PKI, mutual TLS):\n"
              f"    .venv/bin/gateway letter send --url {base} --from 0100000000 "
              "--to 1550100000 --subject 'ทดสอบการส่งหนังสือ'\n"
              f"    .venv/bin/gateway inbox list --url {base} --agency 1550100000\n"
              f"  console (หน้าจอเจ้าหน้าที่): {base}/console  (first user: .venv/bin/gateway users add admin "
              "--role admin)", flush=True)
        for scheme, host, port in app.get(LEGACY_SITES, []):
            print(f"  e-CMS legacy listener (ช่องทางสำหรับระบบรุ่นเก่า): {scheme}://{host}:{port}{ECMS_PATH} "
                  "(source networks and URL keys from the directory: gateway ecms-key)", flush=True)
    await _until_signalled()
    await runner.cleanup()
    return 0


async def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` worker processes on one port; restart any that dies.

    The embedded database (if used) is started here once, so workers share it
    and it outlives any one worker. Each worker is a full gateway (API and
    dispatchers); SKIP LOCKED claims make that safe without coordination.
    """
    dsn = await database_url(settings)
    env = dict(os.environ, GATEWAY_DATABASE_URL=dsn, GATEWAY_REUSE_PORT="1", GATEWAY_WORKERS="1",
               GATEWAY_HOST=settings.host, GATEWAY_PORT=str(settings.port),
               GATEWAY_DIRECTORY_PATH=str(settings.directory_path), GATEWAY_DATA_DIR=str(settings.data_dir))
    # Counters summed over the workers at each scrape (gateway.core.metrics): one fresh directory per run.
    metrics_dir = prepare_multiprocess_dir(settings.data_dir, settings.port)
    env[MULTIPROC_ENV] = str(metrics_dir)

    def spawn(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve"],
                                env=dict(env, GATEWAY_NODE_NAME=f"{os.uname().nodename}:w{i}"))

    procs = {i: spawn(i) for i in range(settings.workers)}
    print(f"Saraban gateway listening on {settings.base_url} ({settings.workers} worker processes)",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    restarts: dict[int, float] = {}
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except TimeoutError:
            pass
        for i, p in list(procs.items()):
            if p.poll() is not None and not stop.is_set():
                # A worker died (OOM, crash): its leases expire and others take its work; start a new one,
                # at most once a second so a crash loop does not spin.
                if time.monotonic() - restarts.get(i, 0) > 1:
                    worker_exited(p.pid, metrics_dir)
                    print(f"worker {i} exited with {p.returncode}; restarting", file=sys.stderr, flush=True)
                    restarts[i] = time.monotonic()
                    procs[i] = spawn(i)
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    return 0
