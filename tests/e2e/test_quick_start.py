"""The quick start as a person runs it: ``gateway serve`` with no database configured, then the
commands its banner prints. Nothing is given but a data directory and a port: the embedded
PostgreSQL, the schema and the development PKI are created on first start, the letter is signed
and sent over mutual TLS, and the receipt verifies offline."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.slow


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATA_DIR=str(data_dir), GATEWAY_PORT=str(port), PYTHONUNBUFFERED="1",
               GATEWAY_LOG_FORMAT="json")
    return env


def _stop_postgres(pgdata: Path) -> None:
    """Belt and braces: the gateway stops its embedded server on exit; stop it by pid if not."""
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError):
            pass


def _cli(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], env=env, cwd=ROOT, capture_output=True,
                          timeout=120)


async def test_first_start_without_a_database_url_carries_a_signed_letter(workdir):
    data_dir, port = workdir / "data", free_port()
    env = _env(data_dir, port)
    log = open(workdir / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    try:
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE

        async def ready():
            if proc.poll() is not None:
                raise AssertionError((workdir / "serve.log").read_text()[-3000:])
            try:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"{base}/readyz", ssl=insecure) as r:
                        return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=90, what="the gateway on first start")
        banner = (workdir / "serve.log").read_text()
        assert f"listening on {base}" in banner and "letter send" in banner

        pdf = workdir / "หนังสือ.pdf"
        pdf.write_bytes(b"%PDF-1.4\n% quick start\n")
        sent = _cli(env, "letter", "send", "--url", base, "--from", "0100000000", "--to", "1550100000",
                    "--subject", "ทดสอบการส่งหนังสือ", "--pdf", str(pdf), "--message-id", "quick-start-1")
        assert sent.returncode == 0, sent.stderr.decode()
        assert sent.stderr == b"", sent.stderr.decode()  # no warnings
        summary = sent.stdout.decode()
        assert "รับหนังสือแล้ว (accepted)" in summary and "quick-start-1" in summary, summary
        receipt = data_dir / "receipts" / "quick-start-1.xml"  # where the summary says it kept the receipt
        assert str(receipt) in summary
        verified = _cli(env, "receipt", "verify", str(receipt), "--cert", str(data_dir / "pki/gateway/seal.pem"))
        assert verified.returncode == 0, verified.stderr.decode() + verified.stdout.decode()

        inbox = _cli(env, "inbox", "list", "--url", base, "--agency", "1550100000")
        assert inbox.returncode == 0, inbox.stderr.decode()
        assert b"quick-start-1" in inbox.stdout
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        _stop_postgres(data_dir / "pg")
