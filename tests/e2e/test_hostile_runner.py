"""The corpus runner's command line against a real ``gateway serve`` process over HTTP:
what an operator runs against a deployed gateway (``python -m conformance.hostile.runner``)."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from tests.support import CMI, OPM, ROOT, TOKENS, GatewayProcess, free_port, gateway_env, write_directory

pytestmark = pytest.mark.timeout(240)


async def test_runner_cli_passes_every_entry_against_a_gateway_process(database_url, workdir):
    port = free_port()
    env = gateway_env(database_url=database_url, directory=write_directory(workdir / "directory.json"),
                      port=port, data_dir=workdir, GATEWAY_SEAL="true", GATEWAY_MAX_BODY_BYTES=str(2 << 20),
                      GATEWAY_RATE_PER_AGENCY="0", GATEWAY_DISPATCH_ENABLED="false")
    gw = GatewayProcess(env=env, port=port, log_path=workdir / "gateway.log").start()
    try:
        await gw.wait_ready(timeout=120)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "conformance.hostile.runner", gw.url, "--token", TOKENS[OPM],
            "--other-token", TOKENS[CMI], "--max-body-bytes", str(2 << 20), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out = (await asyncio.wait_for(proc.communicate(), timeout=180))[0].decode()
    finally:
        gw.stop()
    assert proc.returncode == 0, out[-4000:]
    # (entries for staff tokens and console logins are skipped here: tests/fuzz/test_hostile_corpus.py runs them)
    assert re.search(r"\d+ passed, 0 failed(, \d+ skipped)?$", out.strip().splitlines()[-1]), out[-2000:]
    # Nothing reached the application's last-resort handler (a client that stops half-way used to:
    # ConnectionResetError from request.read() was logged as "unhandled error" and answered 500).
    # The tracebacks left are aiohttp's HTTP parser refusing a request line or header.
    log = (workdir / "gateway.log").read_text(errors="replace")
    assert '"unhandled error"' not in log, log[-4000:]
    assert '"request.incomplete"' in log or "request.incomplete" in log
    raised = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception|Message|TooLong))(?::|$)", log, flags=re.M)
    assert all(name.startswith("aiohttp.http_exceptions.") for name in raised), raised
