"""The CLI as a person reads it, run as a subprocess against a real gateway and database.

- ``letter send`` prints a short summary (Thai first), keeps the signed receipt in a file, and
  says whether the gateway's SHA-256 is that of the bytes sent; ``--json`` and ``--xml`` for programs.
- Every failure is one line ``gateway: <code>: <message>``, never a traceback.
- Ordinary runs print no warning, with warnings turned into errors and no ``XDG_RUNTIME_DIR``.
- Progress shows on a terminal (a pseudo-terminal here) and never in a pipe.
- Listings a person reads (``deliveries list``, ``directory show``, ``inbox list``) put Thai labels first with the
  code beside and Buddhist-era dates; ``--json`` keeps the codes and ISO dates for programs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from gateway.audit.stamping import StampingJob
from gateway.audit.tsa import http_digest_stamper
from gateway.core.clock import FakeClock
from tests.audit.test_stamping import accept_letters, tsa_now  # noqa: F401  (fixture)
from tests.conftest import cloned_database
from tests.support import (
    CMI,
    KKN,
    OPM,
    ROOT,
    TOKENS,
    GatewayProcess,
    free_port,
    gateway_env,
    write_directory,
)

pytestmark = pytest.mark.slow

ONE_LINE = re.compile(r"^gateway: [a-z_]+(\.[a-z_]+)*: \S.*$")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(pg_admin_dsn, pg_admin, template_db):
    """One ``gateway serve`` process and its database for the whole module (a process and a clone per test
    were ~3-5 s each): the tests read what the CLI prints, which no other test's letters change. Each test
    uses message ids of its own; only test_inbox_list sends to KKN (its inbox starts empty)."""
    async with cloned_database(pg_admin_dsn, pg_admin, template_db, prefix="cli") as dsn:
        workdir = Path(tempfile.mkdtemp(prefix="sgw-cli-", dir="/tmp"))
        port = free_port()
        directory = write_directory(workdir / "directory.json",
                                    {CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}})
        env = gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir / "data",
                          GATEWAY_RATE_PER_AGENCY="0")
        gw = CliGateway(env=env, port=port, log_path=workdir / "serve.log")
        gw.start()
        try:
            await gw.wait_ready(timeout=60)
            gw.forks = Forks(cli_env(gw), workdir / "runs")
            yield gw
        finally:
            if gw.forks is not None:
                gw.forks.close()
            gw.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def data_dir(gw: GatewayProcess) -> Path:
    return Path(gw.env["GATEWAY_DATA_DIR"])


def gw_database(gw: GatewayProcess) -> str:
    return gw.env["GATEWAY_DATABASE_URL"]


def cli_env(gw: GatewayProcess) -> dict[str, str]:
    env = {k: v for k, v in gw.env.items() if k != "XDG_RUNTIME_DIR"}
    env.pop("PYTHONWARNINGS", None)
    return env


class Forks:
    """tests/e2e/cli_forks.py: each command in a process of its own, forked from one that imported the CLI
    once (~0.2 s a command instead of ~1.5 s). One command at a time."""

    def __init__(self, env: dict[str, str], runs: Path) -> None:
        self.runs = runs
        runs.mkdir()
        self.count = 0
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, "-W", "error", "-m", "tests.e2e.cli_forks"], env=env,
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.reply(60) == "ready"

    def reply(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise TimeoutError(f"no answer from tests/e2e/cli_forks.py in {timeout} s")
        return self.proc.stdout.readline().strip()

    def run(self, argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin is not None
        with self.lock:
            self.count += 1
            out, err = self.runs / f"{self.count}.out", self.runs / f"{self.count}.err"
            self.proc.stdin.write(json.dumps({"argv": argv, "out": str(out), "err": str(err)}) + "\n")
            self.proc.stdin.flush()
            status = int(self.reply(120))
        return subprocess.CompletedProcess(list(argv), status, out.read_text(), err.read_text())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the driver's loop ends at the end of its input
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # by its handle: the driver we started
            self.proc.wait(10)


@dataclass
class CliGateway(GatewayProcess):
    forks: Forks | None = None


def cli(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``gateway ARGS`` in a process of its own, with every warning an error (an ordinary run must print none)."""
    assert isinstance(gw, CliGateway) and gw.forks is not None
    return gw.forks.run(args)


def send(gw: GatewayProcess, *extra: str, to: str = CMI) -> subprocess.CompletedProcess[str]:
    return cli(gw, "letter", "send", "--url", gw.url, "--token", TOKENS[OPM], "--unsigned", "--from", OPM,
               "--to", to, "--subject", "ทดสอบสรุปผล", *extra)


async def test_letter_send_prints_a_summary_and_keeps_the_receipt(gateway, workdir):
    out = workdir / "ใบรับ.xml"
    run = send(gateway, "--message-id", "cli-sum-1", "--receipt-out", str(out))
    assert run.returncode == 0 and run.stderr == "", run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "รับหนังสือแล้ว (accepted): HTTP 202"
    assert any(re.fullmatch(r"\s+รหัสข้อความ \(message id\):\s+cli-sum-1", line) for line in lines), lines
    assert any("เวลารับ (accepted at):" in line and re.search(r"25\d\d", line) for line in lines), lines  # BE year
    sha = re.search(r"SHA-256:\s+([0-9a-f]{64})\s+ตรงกับที่ส่ง \(matches what was sent\)", run.stdout)
    assert sha, run.stdout
    assert lines[-1].split(":", 1)[1].strip() == str(out.resolve())
    receipt = out.read_bytes()
    assert receipt.startswith(b"<?xml") and f"<Sha256>{sha.group(1)}</Sha256>".encode() in receipt
    assert len(lines) == 5  # short

    # the same id for another envelope (the CLI builds a new one each time): refused in one line, receipt kept
    again = send(gateway, "--message-id", "cli-sum-1", "--receipt-out", str(out))
    assert again.returncode == 65 and again.stderr.startswith("gateway: message.id_reused: "), again.stderr
    assert out.read_bytes() == receipt


async def test_letter_send_default_receipt_path_json_and_xml(gateway):
    run = send(gateway, "--message-id", "cli:json@2", "--json")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    doc = json.loads(run.stdout)
    assert doc["status"] == "accepted" and doc["http_status"] == 202 and doc["duplicate"] is False
    assert doc["message_id"] == "cli:json@2" and doc["sha256_matches"] is True and len(doc["sha256"]) == 64
    # the default place: DATA_DIR/receipts/, the id made safe for a file name
    assert doc["receipt_path"] == str((data_dir(gateway) / "receipts" / "cli_json_2.xml").resolve())
    assert Path(doc["receipt_path"]).read_bytes().startswith(b"<?xml")

    xml = send(gateway, "--message-id", "cli-xml-3", "--xml")
    assert xml.returncode == 0 and xml.stdout.startswith("<?xml") and "<MessageId>" in xml.stdout
    assert xml.stderr == "HTTP 202: receipt follows\n"
    assert not (data_dir(gateway) / "receipts" / "cli-xml-3.xml").exists()  # as before: stdout only


async def test_a_refusal_is_one_line_with_the_gateways_code(gateway):
    run = send(gateway, "--message-id", "cli-bad-4", to="9999999999")
    assert run.returncode == 65 and run.stdout == ""
    assert ONE_LINE.match(run.stderr.strip()) and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith("gateway: envelope.") and "[HTTP 422]" in run.stderr, run.stderr


async def test_every_command_fails_in_one_line_with_a_code(gateway, workdir, database_url):
    junk = workdir / "junk.xml"
    junk.write_text("junk")
    down = "postgresql://nobody@127.0.0.1:9/x"
    no_db = urlsplit(database_url)._replace(path="/no_such_database").geturl()
    cases = {
        ("letter", "send", "--url", "http://127.0.0.1:9", "--unsigned", "--from", OPM, "--to", CMI,
         "--subject", "s"): ("unavailable", 69),
        ("letter", "send", "--url", gateway.url, "--unsigned", "--from", OPM, "--to", CMI, "--subject", "s",
         "--token", "wrong"): ("auth.", 77),
        ("letter", "send", "--url", gateway.url, "--unsigned", "--from", OPM, "--to", CMI, "--subject", "s",
         "--pdf", "/nonexistent.pdf"): ("file.not_found", 1),
        ("inbox", "list", "--url", "http://127.0.0.1:9"): ("unavailable", 69),
        ("inbox", "list", "--url", gateway.url, "--token", "wrong"): ("auth.", 77),
        ("envelope", "check", "/nonexistent.xml"): ("file.not_found", 1),
        ("receipt", "verify", str(junk), "--cert", str(junk)): ("certificate.invalid", 65),
        ("receipt", "verify", str(junk), "--cert", "/nonexistent.pem"): ("file.not_found", 1),
        ("audit", "verify", str(junk), "--cert", str(junk)): ("certificate.invalid", 65),
        ("audit", "status", "--database-url", down): ("unavailable.database", 69),
        ("audit", "status", "--database-url", no_db): ("config.invalid", 78),
        ("audit", "export", "--out", str(workdir / "x"), "--database-url", database_url): ("audit.nothing", 65),
        ("deliveries", "list", "--database-url", down): ("unavailable.database", 69),
        ("deliveries", "requeue", "not-a-uuid", "--database-url", database_url): ("request.invalid", 65),
        ("db", "migrate", "--database-url", down): ("unavailable.database", 69),
        ("directory", "show", "1234567890", "--database-url", database_url): ("agency.not_found", 66),
        ("directory", "import", str(junk), "--database-url", database_url): ("config.invalid", 78),
        ("directory", "cert-add", OPM, "/nonexistent.pem", "--database-url", database_url): ("file.not_found", 1),
        ("pki", "init-dev", "--directory", "/nonexistent.json"): ("config.invalid", 78),
        ("serve", "--directory", "/nonexistent.json"): ("config.invalid", 78),
    }
    failures = {}
    # each case is its own process (its own exit status and stderr), forked from one that imported the CLI
    # (tests/e2e/cli_forks.py): as fresh interpreters, four at a time, they were ~23 s of imports
    runs = {argv: cli(gateway, *argv) for argv in cases}
    for argv, (code, status) in cases.items():
        run = runs[argv]
        err = run.stderr.strip()
        if not (run.returncode == status and ONE_LINE.match(err) and len(err.splitlines()) == 1
                and err.startswith(f"gateway: {code}")):
            failures[" ".join(argv)] = (run.returncode, err[-400:])
    assert failures == {}


async def test_ordinary_runs_print_no_warning_and_thai_labels_first(gateway):
    db = ("--database-url", gw_database(gateway))
    for argv in (("deliveries", "list", *db), ("audit", "status", *db), ("directory", "show", OPM, *db),
                 ("db", "migrate", *db), ("--help",)):
        run = cli(gateway, *argv)
        assert run.returncode == 0 and run.stderr == "", (argv, run.stderr)
    status = cli(gateway, "audit", "status", *db).stdout.splitlines()
    assert status[0].startswith("ลำดับล่าสุดที่ผนึกแล้ว (chain head seq)"), status
    assert any(line.startswith("ผนึกล่าสุดเมื่อ (sealed at)") and re.search(r"25\d\d", line) for line in status)


def run_on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; everything it wrote, and its exit status."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(60), b"".join(chunks).decode("utf-8", "replace")


async def test_progress_shows_on_a_terminal_only(gateway, workdir):
    database_url = gw_database(gateway)
    csv = workdir / "agencies.csv"
    export = cli(gateway, "directory", "export", "--format", "csv", "--out", str(csv), "--database-url",
                 database_url)
    assert export.returncode == 0, export.stderr
    argv = [sys.executable, "-W", "error", "-m", "gateway.cli.main", "directory", "diff", str(csv),
            "--database-url", database_url]
    status, screen = run_on_a_terminal(argv, cli_env(gateway))
    assert status == 0, screen
    assert re.search(r"อ่าน agencies\.csv \[#+\s*\] 100% \d+/\d+", screen), screen
    piped = cli(gateway, *argv[5:])
    assert piped.returncode == 0 and "%" not in piped.stderr and "#" not in piped.stderr, piped.stderr


async def test_deliveries_list_and_directory_show_read_in_thai_with_the_code_beside(gateway):
    db = ("--database-url", gw_database(gateway))
    assert send(gateway, "--message-id", "cli-list-1").returncode == 0
    listing = cli(gateway, "deliveries", "list", *db)
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    head, *rows = listing.stdout.splitlines()
    assert head.startswith("รหัสการส่ง (delivery id)") and "สถานะ (status)" in head, head
    row = next(r for r in rows if "cli-list-1" in r)
    # the office's push URL is down: the delivery waits, queued or retrying, in Thai with the code beside
    assert re.search(r"(รอส่ง \(queued\)|กำลังส่ง \(sending\)|รอลองใหม่ \(retry_wait\))", row), row
    assert re.search(r"\d+ [ก-๙.]+ 25\d\d \d\d\.\d\d น\.", row), row  # created, Buddhist era
    machine = json.loads(cli(gateway, "deliveries", "list", "--json", *db).stdout)
    mine = next(r for r in machine if r["message_id"] == "cli-list-1")
    assert mine["status"] in ("queued", "sending", "retry_wait") and mine["recipient"] == CMI
    assert re.match(r"20\d\d-\d\d-\d\d", mine["created_at"])  # ISO, Gregorian

    shown = cli(gateway, "directory", "show", CMI, "--history", *db)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    text = shown.stdout
    assert re.search(r"^รหัส \(code\):\s+" + CMI + "$", text, re.M), text
    assert re.search(r"^ช่องทางรับหนังสือ \(route\):\s+ส่งตรงถึงระบบผู้รับ \(push\) url=http://127\.0\.0\.1:9/x$",
                     text, re.M), text
    assert re.search(r"^ประเภท \(kind\):\s+\S+ \(\w+\)$", text, re.M), text
    assert re.search(r"ฉบับที่ \(version\) 1  \d+ [ก-๙.]+ 25\d\d", text), text
    assert not text.lstrip().startswith("{")
    entry = json.loads(cli(gateway, "directory", "show", CMI, "--json", *db).stdout)
    assert entry["code"] == CMI and entry["route"] == {"kind": "push", "url": "http://127.0.0.1:9/x"}


async def test_inbox_list_is_a_table_in_thai_and_json_for_programs(gateway):
    empty = cli(gateway, "inbox", "list", "--url", gateway.url, "--token", TOKENS[KKN])
    assert empty.returncode == 0 and empty.stderr == "", empty.stderr
    assert empty.stdout == "กล่องรับว่าง (inbox empty)\n", empty.stdout
    assert send(gateway, "--message-id", "cli-inbox-1", to=KKN).returncode == 0  # KKN pulls
    listing = cli(gateway, "inbox", "list", "--url", gateway.url, "--token", TOKENS[KKN])
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    assert not listing.stdout.lstrip().startswith("{"), listing.stdout  # not the API's raw JSON
    head, *rows, total = listing.stdout.splitlines()
    assert head.startswith("เข้ากล่องเมื่อ (queued)") and "ประเภท (type)" in head and "จาก (sender)" in head, head
    row = next(r for r in rows if "cli-inbox-1" in r)
    assert "หนังสือ (letter)" in row and OPM in row and KKN in row, row
    assert re.match(r"\d+ [ก-๙.]+ 25\d\d \d\d\.\d\d น\.", row), row  # queued, Buddhist era, Bangkok
    assert total == f"รวม {len(rows)} รายการ ({len(rows)} items)", total
    machine = cli(gateway, "inbox", "list", "--url", gateway.url, "--token", TOKENS[KKN], "--json")
    assert machine.returncode == 0 and machine.stderr == "", machine.stderr
    item = next(i for i in json.loads(machine.stdout)["items"] if i["message_id"] == "cli-inbox-1")
    assert item["type"] == "letter" and item["sender"] == OPM and item["recipient"] == KKN
    assert re.match(r"20\d\d-\d\d-\d\dT", item["queued_at"]) and item["href"].startswith("/v1/inbox/")
    assert item["delivery_id"] in row


async def test_audit_verify_shows_progress_on_a_terminal_only(gateway):
    database_url = gw_database(gateway)
    for i in range(3):
        assert send(gateway, "--message-id", f"cli-verify-{i}").returncode == 0
    cert = data_dir(gateway) / "pki" / "gateway" / "seal.pem"
    argv = [sys.executable, "-W", "error", "-m", "gateway.cli.main", "audit", "verify", "--database", "--cert",
            str(cert), "--database-url", database_url]
    status, screen = run_on_a_terminal(argv, cli_env(gateway))
    assert status == 0, screen
    assert re.search(r"ตรวจสายบันทึก \(verifying the chain\) \[#+\s*\] 100% [\d,]+/[\d,]+", screen), screen
    piped = cli(gateway, *argv[5:])
    assert piped.returncode == 0 and "%" not in piped.stderr and "#" not in piped.stderr, piped.stderr


async def test_the_renewal_job_shows_progress_on_a_terminal_only(pool, database_url, tsa_now, workdir):  # noqa: F811
    _root, server = tsa_now
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with aiohttp.ClientSession() as session:
        await accept_letters(pool, clock, 0, 30)
        await StampingJob(pool, clock=clock, stamper=http_digest_stamper(session, server.url)).stamp_all()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "XDG_RUNTIME_DIR"}
    env |= {"PYTHONPATH": str(ROOT), "GATEWAY_DATABASE_URL": database_url, "GATEWAY_AUDIT_TSA_URL": server.url,
            "GATEWAY_WEAK_HASHES": "sha256@2035-01-01", "GATEWAY_DATA_DIR": str(workdir / "data")}
    argv = [sys.executable, "-W", "error", "-m", "gateway.cli.main", "audit", "renew", "--chunk", "10"]
    status, screen = await asyncio.to_thread(run_on_a_terminal, argv, env)
    assert status == 0, screen
    # one line redrawn in place (carriage returns) chunk by chunk up to every record (a seal and a receipt
    # per letter), then ended before anything else is written
    total = int(re.search(r"\rต่ออายุต้นไม้แฮช / hash-tree renewal: 10/(\d+) \d+%", screen).group(1))
    assert total == 60, screen
    assert "\rต่ออายุต้นไม้แฮช / hash-tree renewal: 30/60 50%\rต่ออายุต้นไม้แฮช" in screen, screen
    assert "\rต่ออายุต้นไม้แฮช / hash-tree renewal: 60/60 100%\r\n" in screen, screen
    assert "ต่ออายุแล้ว / renewed: 60 records re-hashed" in screen, screen
    # in a pipe: the result only (nothing left to renew the second time), no progress noise
    again = await asyncio.to_thread(subprocess.run, argv, env=env, cwd=ROOT, capture_output=True, text=True,
                                    timeout=120, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.startswith("ต่ออายุแล้ว / renewed: 0 records"), again.stdout
