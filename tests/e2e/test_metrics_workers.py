"""``gateway serve --workers 2``: one scrape, whichever worker answers it, counts every worker's work.

Letters are submitted on fresh connections, so the kernel spreads them over
both workers (``SO_REUSEPORT``); the test proves from the workers' own metric
files that both accepted some, then scrapes several times (each scrape reaches
a worker at random) and every scrape must show the total. Shared-state gauges
come from the database, so every scrape agrees on them too: the letters wait
for an office that is down, and the queue depth per destination is the same
whichever worker answers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.support import (
    CMI,
    OPM,
    ROOT,
    TOKENS,
    GatewayProcess,
    free_port,
    gateway_env,
    letter_bytes,
    wait_for,
    write_directory,
)

pytestmark = pytest.mark.slow

LETTERS = 24


def accepted_total(text: str) -> float:
    return sum(float(v) for v in re.findall(r'^gateway_messages_accepted_total\{[^}]*\} (\S+)$', text, re.M))


def accepted_by_worker(metrics_dir: Path) -> dict[str, float]:
    """Each worker's own count, from its file (``counter_<pid>.db``) in the multiprocess directory."""
    out: dict[str, float] = {}
    for f in metrics_dir.glob("counter_*.db"):
        pid = f.stem.split("_")[-1]
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(f)):
            if '"gateway_messages_accepted_total"' in key:
                out[pid] = out.get(pid, 0) + value
    return out


async def test_counters_of_both_workers_add_up_in_one_scrape(database_url, workdir):
    port = free_port()
    # the office is down (nothing listens on port 9): every letter waits in the queue
    directory = write_directory(workdir / "directory.json", {CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}})
    env = gateway_env(database_url=database_url, directory=directory, port=port, data_dir=workdir,
                      GATEWAY_RATE_PER_AGENCY="0", GATEWAY_RETRY_INITIAL_DELAY_S="3600")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gw = GatewayProcess(env=env, port=port, log_path=workdir / "serve.log")
    log = open(gw.log_path, "ab")
    gw.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve", "--workers", "2"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    log.close()
    metrics_dir = workdir / "metrics" / str(port)
    try:
        await gw.wait_ready(timeout=60)
        # one worker answering is not both listening: until the second binds, the kernel gives it no connection
        await wait_for(lambda: gw.log_path.read_text().count('"event": "serving"') == 2, timeout=60,
                       what="both workers listening")
        headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
        for i in range(LETTERS):
            # a new connection each time: SO_REUSEPORT picks a worker per connection
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                async with s.post(f"{gw.url}/v1/messages", headers=headers,
                                  data=letter_bytes(recipients=(CMI,), message_id=f"mw-{i}")) as r:
                    assert r.status == 202, await r.text()
        per_worker = accepted_by_worker(metrics_dir)
        assert len(per_worker) == 2 and all(v > 0 for v in per_worker.values()), per_worker
        assert sum(per_worker.values()) == LETTERS

        scrapes = []
        for _ in range(8):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                async with s.get(f"{gw.url}/metrics") as r:
                    assert r.status == 200
                    scrapes.append(await r.text())
        assert [accepted_total(t) for t in scrapes] == [LETTERS] * len(scrapes)
        for text in scrapes:
            assert "gateway_database_up 1.0" in text
            waiting = sum(float(v) for v in re.findall(
                rf'^gateway_queue_depth\{{destination="{CMI}",state="(?:queued|sending|retry_wait)"\}} (\S+)$',
                text, re.M))
            assert waiting == LETTERS, text
            # one family each, not one per worker; the certificate gauge once per bucket, not once per worker
            assert text.count("# TYPE gateway_messages_accepted_total counter") == 1
            assert len(re.findall(r'^gateway_agency_certificates_expiring\{within="7d"\} ', text, re.M)) == 1, text
    finally:
        gw.stop()
    # the next run starts from zero: the directory is emptied at start
    assert metrics_dir.exists()
