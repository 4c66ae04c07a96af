"""Submit throughput: N concurrent clients posting 5 KB letters to real gateway processes.

Measured in the same run, on the same database server: the raw asyncpg
single-row durable insert rate (each row a committed transaction carrying the
same bytes, with the same concurrency), so the ratio shows how close the
gateway is to what the database itself can do.

Usage: python bench/submit.py [--quick] [--letters N] [--clients C] [--processes P] [--signed] [--profile] [--pin]
                              [--callgrind]

``--profile`` (with ``--signed``) samples the gateway processes with py-spy during the
timed load and prints the CPU budget per letter, stage by stage, next to each stage's
primitive measured in the same run (see bench/budget.py); the README keeps that table.
Prints its figures last, on one line of key=value pairs, including the CPU the
gateway processes and the load generator spent per letter (psutil, process_time):
on a shared machine those are steadier than letters/s.

``--callgrind`` runs the one gateway process under valgrind's callgrind, zeroes its counts after the
warm-up (``callgrind_control -z``) and dumps them after the timed load (``-d``): it prints
``gateway_instructions_per_letter=``, the user-space instructions the gateway spent per letter. On a
machine shared with other jobs it repeats where the CPU figures do not: runs of one head (300 letters,
load 3-5) spread by 0.03-0.4%, as the letters fall into more or fewer group commits (each a statement),
where alternated CPU figures spread by 30%. So it resolves a change of ~30k instructions a letter or
more; a smaller one needs a function-level measure. It does not count the kernel's work (system calls,
socket wake-ups): read it beside the CPU figures, not in place of them. ~50x slower: a few hundred letters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.budget import LOOP, OTHER, StackSampler, crypto_primitives, http_primitive, table  # noqa: E402
from bench.common import (  # noqa: E402
    database,
    figures,
    gateway_cpu,
    percentile,
    pin,
    post_all,
    postgres_cpu,
    postgres_processes,
)
from pki.devca import init_dev_pki
from pki.sign import sign_envelope
from tests.support import (  # noqa: E402
    CMI,
    KKN,
    OPM,
    TOKENS,
    GatewayProcess,
    free_port,
    gateway_env,
    letter_bytes,
    write_directory,  # noqa: E402
)

#: Why a stage may stand further than 2x from its primitive (measured: see the README's budget table).
NOTES = {
    OTHER: "no primitive: exchange/accept bookkeeping, routing, metrics, the group committer",
    "trust": "primitive = a cache look-up: the signer's path is validated once, then cached",
}


def make_letters(n: int, size: int = 5000, signer=None) -> list[bytes]:
    """``n`` distinct ~5 KB letters; signed by ``signer`` (XAdES) when given (outside the timing)."""
    pdf = b"%PDF-1.4\n" + os.urandom(size * 3 // 4 - 600)
    base = letter_bytes(recipients=(CMI, KKN), message_id="X" * 36, pdf=pdf)
    out = [base.replace(b"X" * 36, str(uuid.uuid4()).encode()) for _ in range(n)]
    if signer is not None:

        out = [sign_envelope(b, signer) for b in out]
    return out


async def raw_insert_rate(dsn: str, rows: int, concurrency: int, payload: bytes,
                          cpu: dict[str, float] | None = None) -> float:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, k text UNIQUE, body bytea)")
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    counter = iter(range(rows))

    async def worker():
        for i in counter:
            await pool.execute("INSERT INTO bench_raw (k, body) VALUES ($1, $2)", f"k{i}", payload)

    pg0, c0, t0 = await postgres_cpu(dsn), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    c1 = time.process_time()
    await pool.close()
    pg1 = await postgres_cpu(dsn)
    if cpu is not None:  # per row, µs: the client (asyncpg) and the server (every postgres process)
        cpu["database client"] = (c1 - c0) / rows * 1e6
        if pg0 is not None and pg1 is not None:
            cpu["PostgreSQL"] = (pg1 - pg0) / rows * 1e6
    return rows / elapsed


async def load(urls: list[str], letters: list[bytes], clients: int) -> tuple[float, list[float], dict[int, int]]:
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    return await post_all(f"{urls[0]}/v1/messages", letters, headers=headers, clients=clients)


def callgrind_start(gw: GatewayProcess, out: Path) -> GatewayProcess:
    """``gw`` (one process: ``gateway serve`` with one worker) started under callgrind, its counts written to
    ``out`` (``out.1`` is the first ``callgrind_control -d`` dump)."""
    return gw.start(wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))


def callgrind_control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def callgrind_total(dump: Path) -> int:
    """The instructions (``Ir``) a callgrind dump counted in all: its ``summary:`` line."""
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no summary in {dump}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a small, fast run")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--signed", action="store_true",
                    help="letters signed by the sender (XAdES), signatures required, gateway seal and signed receipts")
    ap.add_argument("--processes", type=int, default=2,
                    help="gateway worker processes (gateway serve --workers)")
    ap.add_argument("--profile", action="store_true",
                    help="the CPU budget per letter by stage, next to each stage's primitive (implies --signed)")
    ap.add_argument("--pin", action="store_true",
                    help="the gateway alone on core 0; PostgreSQL, the load generator and py-spy on the others "
                         "(a profile then counts only the gateway's own CPU, not time it waited, runnable, while "
                         "a process it woke ran on its core)")
    ap.add_argument("--callgrind", action="store_true",
                    help="the gateway (one process) under callgrind, zeroed after the warm-up: prints "
                         "gateway_instructions_per_letter= (user space only; ~50x slower, use a few hundred letters)")
    args = ap.parse_args()
    args.signed = args.signed or args.profile
    if args.callgrind and (args.processes != 1 or args.profile or shutil.which("valgrind") is None):
        ap.error("--callgrind needs --processes 1, no --profile, and valgrind on PATH")
    cores = set(os.sched_getaffinity(0))
    if args.pin and len(cores) < 2:
        ap.error("--pin needs at least 2 cores")
    n = args.letters or (600 if args.quick else 6000)
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-", dir="/tmp"))
    directory = write_directory(workdir / "directory.json")
    signer, pki_env = None, {}
    if args.signed:

        dev = init_dev_pki(workdir / "pki", {OPM: "สำนักนายกรัฐมนตรี", CMI: "เชียงใหม่", KKN: "ขอนแก่น"})
        signer = dev.agency_signer(OPM)
        pki_env = {"GATEWAY_PKI_DIR": str(workdir / "pki"), "GATEWAY_REQUIRE_SIGNATURE": "true",
                   "GATEWAY_SEAL": "true", "GATEWAY_REVOCATION": "off"}
    letters = make_letters(n + 200, signer=signer)
    primitive: dict[str, float] = {}
    shares: dict[str, float] = {}
    instructions: list[int] = []
    with database("submit") as (_admin, dsn):
        raw = asyncio.run(raw_insert_rate(dsn, n, args.clients, letters[0], primitive))
        procs = []
        try:
            port = free_port()
            env = gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir,
                              GATEWAY_DISPATCH_ENABLED="false", GATEWAY_LOG_LEVEL="warning",
                              GATEWAY_WORKERS=str(args.processes), GATEWAY_RATE_PER_AGENCY="0",
                              GATEWAY_VALIDATE_PDF="false", **pki_env,
                              GATEWAY_POOL_MAX=str(max(10, args.clients // args.processes + 2)))
            gw = GatewayProcess(env=env, port=port, log_path=workdir / f"gw-{port}.log")
            procs.append(callgrind_start(gw, workdir / "callgrind.out") if args.callgrind else gw.start())

            async def run():
                for p in procs:
                    await p.wait_ready(timeout=600 if args.callgrind else 30)
                if args.pin:
                    gateway_core = min(cores)
                    pin([q for p in procs for q in (psutil.Process(p.proc.pid),
                                                   *psutil.Process(p.proc.pid).children(recursive=True))],
                        {gateway_core})
                    pin([*await postgres_processes(dsn), psutil.Process()], cores - {gateway_core})
                urls = [p.url for p in procs]
                await load(urls, letters[:200], args.clients)  # warm-up
                if args.callgrind:
                    callgrind_control("-z", procs[0].proc.pid)
                sampler = StackSampler(procs[0].proc.pid) if args.profile else contextlib.nullcontext()
                with sampler:
                    pg0, gw0, client0 = await postgres_cpu(dsn), gateway_cpu(procs), time.process_time()
                    result = await load(urls, letters[200:], args.clients)
                    gw1, client1, pg1 = gateway_cpu(procs), time.process_time(), await postgres_cpu(dsn)
                if args.callgrind:
                    callgrind_control("-d", procs[0].proc.pid)
                    instructions.append(callgrind_total(workdir / "callgrind.out.1"))
                if args.profile:
                    shares.update(sampler.shares())
                    sampler.remove()
                    # (on the gateway's loop: gateway_env passes no GATEWAY_EVENT_LOOP, so the default, uvloop)
                    primitive["HTTP"] = await http_primitive(letters[0], args.clients, min(n, 2000))
                return result, gw1 - gw0, client1 - client0, None if pg0 is None or pg1 is None else pg1 - pg0

            (rate, lat, codes), gw_cpu, client_cpu, pg_cpu = asyncio.run(run())
        finally:
            for p in procs:
                p.stop()
    print(f"status codes: {codes}")
    budget: dict[str, float] = {}
    loop_us = 0.0
    if args.profile:
        primitive.update(crypto_primitives(letters[0], signer))
        gw_us = gw_cpu / n * 1e6
        budget = {stage: share * gw_us for stage, share in shares.items()}
        loop_us = budget.pop(LOOP, 0.0)
        notes = {**NOTES, "HTTP": f"{loop_us:.0f} µs of it in the event loop alone (no handler frame: socket reads "
                                  "of the client and the database, asyncpg's protocol, wake-ups)"}
        if pg_cpu is not None:
            budget["PostgreSQL"] = pg_cpu / n * 1e6
        print(table(budget, primitive, notes))
    print(figures(letters=n, clients=args.clients, processes=args.processes, signed=int(args.signed), pinned=int(args.pin),
                  letters_per_s=rate,
                  p50_ms=percentile(lat, 50) * 1000, p99_ms=percentile(lat, 99) * 1000,
                  raw_insert_per_s=raw, ratio_to_raw=rate / raw,
                  gateway_cpu_ms_per_letter=gw_cpu / n * 1000, client_cpu_ms_per_letter=client_cpu / n * 1000,
                  **({} if pg_cpu is None else {
                      "postgres_cpu_ms_per_letter": pg_cpu / n * 1000,
                      # the most 2 cores could carry if CPU were the only limit and nothing else ran
                      "cpu_bound_letters_per_s_2_cores": 2 / ((gw_cpu + client_cpu + pg_cpu) / n)}),
                  **{f"budget_{k.split()[0].lower()}_us": v for k, v in budget.items()},
                  **({"budget_http_loop_us": loop_us} if args.profile else {}),
                  **({"gateway_instructions_per_letter": instructions[0] / n} if instructions else {})))
    shutil.rmtree(workdir, ignore_errors=True)  # (left behind on failure: the gateway's log is in it)


if __name__ == "__main__":
    main()
