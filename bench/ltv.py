"""Long-term validation on the submit path (issue 16): what keeping the validation material costs.

Runs against real gateway processes on one database server, with the same signed ~5 KB letters
(XAdES, signatures required, gateway seal and signed receipts, as ``bench/submit.py --signed``), the
signer's certificate issued by a test PKI made in code whose OCSP responder and CRL server run on
loopback in this process:

* ``off``: ``GATEWAY_REVOCATION=off`` (today's ``bench/submit.py --signed``): no revocation check,
  but the path, report and trust snapshot are still kept;
* ``hard``: ``GATEWAY_REVOCATION=hard-fail`` against the loopback OCSP responder (answers cached
  until their ``nextUpdate``, four hours here) and the root's CRL for the issuing CA.

The two are run interleaved (off, hard, off, hard ... ``--rounds`` pairs), each run on a fresh database
and a fresh gateway, so that load from whatever else the machine runs falls on both alike; the figures are
the medians over the rounds (each run's own line is printed as it ends), with the load average before
and after.

Then, from the last ``hard`` run's database: the bytes of validation material kept per letter, distinct
(content-addressed, what is stored) against total (what storing every letter's material with the
letter would cost), and the bytes the audit event of each letter grows by (the report's name ...).

Usage: python bench/ltv.py [--quick] [--letters N] [--rounds R] [--clients C] [--processes P]
Prints its figures last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figures, fresh_database, gateway_cpu, median, percentile, post_all, server  # noqa: E402
from bench.submit import make_letters  # noqa: E402
from pki.certfactory import simple_name  # noqa: E402
from pki.keys import FileSigner  # noqa: E402
from tests.ltv.world import World  # noqa: E402
from tests.support import OPM, TOKENS, GatewayProcess, free_port, gateway_env, write_directory  # noqa: E402

HEADERS = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}


async def one_run(dsn: str, workdir: Path, world: World, letters: list[bytes], *, revocation: str, clients: int,
                  processes: int) -> dict[str, float]:
    port = free_port()
    env = gateway_env(database_url=dsn, directory=workdir / "directory.json", port=port, data_dir=workdir,
                      GATEWAY_DISPATCH_ENABLED="false", GATEWAY_LOG_LEVEL="warning", GATEWAY_WORKERS=str(processes),
                      GATEWAY_RATE_PER_AGENCY="0", GATEWAY_VALIDATE_PDF="false", GATEWAY_REQUIRE_SIGNATURE="true",
                      GATEWAY_SEAL="true", GATEWAY_SEAL_KEY=str(workdir / "seal.key"),
                      GATEWAY_SEAL_CERT=str(workdir / "seal.pem"), GATEWAY_REVOCATION=revocation,
                      GATEWAY_TRUST_ANCHORS=str(workdir / "root.pem"),
                      GATEWAY_TRUST_INTERMEDIATES=str(workdir / "issuing.pem"),
                      GATEWAY_FETCH_ALLOW=f"127.0.0.1:{world.port}",
                      GATEWAY_POOL_MAX=str(max(10, clients // processes + 2)))
    proc = GatewayProcess(env=env, port=port, log_path=workdir / f"gw-{revocation}.log").start()
    try:
        await proc.wait_ready(90)
        url = f"{proc.url}/v1/messages"
        await post_all(url, letters[:100], headers=HEADERS, clients=clients)  # warm-up (and the OCSP fetch)
        before_ocsp = world.ocsp_requests
        gw0 = gateway_cpu([proc])
        rate, lat, codes = await post_all(url, letters[100:], headers=HEADERS, clients=clients)
        gw1 = gateway_cpu([proc])
    finally:
        proc.stop()
    n = len(letters) - 100
    if set(codes) - {202}:
        raise SystemExit(f"{revocation}: unexpected answers {codes}; see {workdir}/gw-{revocation}.log")
    return {"letters_per_s": rate, "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
            "cpu_ms": (gw1 - gw0) / n * 1000, "ocsp_requests": world.ocsp_requests - before_ocsp}


async def storage(dsn: str) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        letters = await conn.fetchval("SELECT count(*) FROM messages")
        sizes = {bytes(r["sha256"]).hex(): (r["kind"], len(r["data"]))
                 for r in await conn.fetch("SELECT sha256, kind, data FROM validation_items")}
        distinct = sum(size for kind, size in sizes.values() if kind != "trust")
        reports = {sha: json.loads(bytes(d)) for sha, d in
                   ((bytes(r["sha256"]).hex(), r["data"]) for r in
                    await conn.fetch("SELECT sha256, data FROM validation_items WHERE kind = 'report'"))}
        per_report = {}
        for sha, rep in reports.items():
            names = {n for sig in rep["signatures"] for k in ("path", "ocsp", "crls") for n in sig[k]}
            per_report[sha] = sizes[sha][1] + sum(sizes[n][1] for n in names if n in sizes)
        total = 0
        audit = 0
        for r in await conn.fetch("SELECT details FROM audit_events WHERE kind = 'message.accepted'"):
            details = json.loads(r["details"]) if isinstance(r["details"], str) else r["details"]
            total += per_report.get(details.get("validation_sha256"), 0)
            added = {k: details[k] for k in ("validation_sha256", "trust_snapshot", "directory_version", "validation")
                     if k in details}
            audit += len(json.dumps(added, separators=(",", ":")))
    finally:
        await conn.close()
    return {"letters": letters, "distinct_bytes_per_letter": distinct / letters, "total_bytes_per_letter": total / letters,
            "dedup_ratio": total / distinct if distinct else float("nan"), "audit_bytes_per_letter": audit / letters,
            "items": len(sizes), "reports": len(reports)}


async def main_async(args: argparse.Namespace, runs: list[tuple[str, str]]) -> str:
    n = args.letters or (300 if args.quick else 3000)
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-ltv-", dir="/tmp"))
    write_directory(workdir / "directory.json")
    world = await World(lambda: dt.datetime.now(dt.UTC), code=OPM).start()
    load_before = os.getloadavg()
    try:
        pem = serialization.Encoding.PEM
        (workdir / "root.pem").write_bytes(world.root.ca.cert.public_bytes(pem))
        (workdir / "issuing.pem").write_bytes(world.issuing.ca.cert.public_bytes(pem))
        seal = world.issuing.issue(simple_name("Bench Gateway Seal"), profile="seal")
        seal.write(workdir / "seal.pem", workdir / "seal.key")
        signer = FileSigner(world.author.key, world.author.cert, [world.issuing.ca.cert])
        letters = await asyncio.to_thread(make_letters, n + 100, signer=signer)
        results: dict[str, list[dict[str, float]]] = {"off": [], "hard-fail": []}
        for i, (revocation, dsn) in enumerate(runs, start=1):
            run = await one_run(dsn, workdir, world, letters, revocation=revocation, clients=args.clients,
                                processes=args.processes)
            results[revocation].append(run)
            print(f"run {i}/{len(runs)} {revocation}: {figures(**run)} load1={os.getloadavg()[0]:.2f}", flush=True)
        kept = await storage(next(dsn for revocation, dsn in reversed(runs) if revocation == "hard-fail"))
    finally:
        await world.stop()
    load_after = os.getloadavg()

    def med(mode: str, key: str) -> float:
        return median([r[key] for r in results[mode]])

    off_cpu, hard_cpu = med("off", "cpu_ms"), med("hard-fail", "cpu_ms")
    return figures(letters=n, rounds=len(results["off"]), clients=args.clients, processes=args.processes,
                   off_letters_per_s=med("off", "letters_per_s"), hard_letters_per_s=med("hard-fail", "letters_per_s"),
                   off_p50_ms=med("off", "p50_ms"), hard_p50_ms=med("hard-fail", "p50_ms"),
                   off_p99_ms=med("off", "p99_ms"), hard_p99_ms=med("hard-fail", "p99_ms"),
                   off_cpu_ms_per_letter=off_cpu, hard_cpu_ms_per_letter=hard_cpu,
                   revocation_cpu_ms_per_letter=hard_cpu - off_cpu,
                   hard_ocsp_requests=med("hard-fail", "ocsp_requests"),
                   kept_distinct_bytes_per_letter=kept["distinct_bytes_per_letter"],
                   kept_total_bytes_per_letter=kept["total_bytes_per_letter"], dedup_ratio=kept["dedup_ratio"],
                   audit_bytes_per_letter=kept["audit_bytes_per_letter"], items=kept["items"],
                   reports=kept["reports"], load1_before=load_before[0], load1_after=load_after[0],
                   cores=os.cpu_count() or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a small, fast run")
    ap.add_argument("--letters", type=int, help="letters per run (after 100 of warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="off/hard pairs, interleaved")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2, help="gateway worker processes")
    args = ap.parse_args()
    started = time.monotonic()
    order = ["off", "hard-fail"] * args.rounds
    with server("ltv") as admin, contextlib.ExitStack() as stack:
        dsns = [stack.enter_context(fresh_database(admin, "ltv")) for _ in order]
        line = asyncio.run(main_async(args, list(zip(order, dsns, strict=True))))
    print(f"took {time.monotonic() - started:.0f} s")
    print(line)


if __name__ == "__main__":
    main()
