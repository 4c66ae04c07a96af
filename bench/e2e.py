"""End to end with signatures: signed letters delivered to two push offices, delivery receipts back at the sender.

Every letter is XAdES-signed by the sending agency (signatures required), sealed by the gateway,
answered with a signed submission receipt, pushed to two offices (Chiang Mai and Khon Kaen, the
lean offices of ``bench/offices.py`` in a child process, acknowledging each delivery with the SHA-256
of what they got), and each delivery becomes a signed delivery receipt pushed back to the sender's
own office: four deliveries and four signatures made per letter (seal, submission receipt, two
delivery receipts), durability as shipped.

``letters_per_s``  letters from the first submit until the last delivery receipt reached the
                   sender's office (the database's ``delivered_at``), over that time.
``p50_ms``/``p99_ms``  per letter delivery: ``accepted_at`` to ``delivered_at`` (submit to delivered).
``*_cpu_ms_per_letter``  CPU of each process group per letter: the gateway (every worker), PostgreSQL
                   (every postgres process), the offices, and the load generator (this process,
                   posting on the push's lean HTTP client, adapters/wire.py);
                   ``total_cpu_ms_per_letter`` their sum and ``ceiling_per_s`` the letters/s the
                   machine's cores could carry at that cost (``load1``: the load average at the end).
``missing``/``dup``  from the offices' own counts (bench/offices.py): (letter, office) pairs that
                   never arrived, letters an office got under two delivery ids. Both must be 0;
                   ``wire_repeats`` (the same delivery id again) is allowed, at-least-once.

``--profile``      the CPU budget of one letter end to end (bench/e2e_budget.py): every stage in µs a
                   letter next to its primitive measured in the same run, as a Markdown table printed
                   last before the figures, and what it says about the target (``push_exchange_us``,
                   ``batch8_saves_us``, ``floor_1x_ms``, ``floor_2x_ms`` ...: see e2e_budget.figures).

    python bench/e2e.py [--quick] [--letters N] [--clients C] [--workers W] [--profile]

Figures last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.wire import Wire  # noqa: E402
from bench import e2e_budget  # noqa: E402
from bench.budget import StackSampler  # noqa: E402
from bench.common import database, figures, gateway_cpu, percentile, postgres_cpu  # noqa: E402
from bench.offices import OFFICES, OfficeProcess  # noqa: E402
from bench.submit import make_letters  # noqa: E402
from gateway.storage.messages import forwarded_bytes  # noqa: E402
from pki.devca import init_dev_pki  # noqa: E402
from tests.support import CMI, KKN, OPM, TOKENS, GatewayProcess, free_port, gateway_env, write_directory  # noqa: E402

_DONE = """
SELECT count(*) FILTER (WHERE d.status = 'delivered' AND m.message_type = 'letter') AS letters,
       count(*) FILTER (WHERE d.status = 'delivered' AND m.message_type = 'receipt') AS receipts,
       max(d.delivered_at) AS last
  FROM deliveries d JOIN messages m ON m.pk = d.message_pk
 WHERE coalesce(m.ref_to_message_id, m.message_id) = ANY($1::text[])"""
#: While waiting: every delivery of the database, no join (the bench's own polling is inside the CPU
#: window: _DONE's join over every message, every 0.1 s, cost PostgreSQL ~0.4 ms per letter).
_PROGRESS = "SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered, max(delivered_at) AS last FROM deliveries"
_LATENCY = """
SELECT extract(epoch FROM d.delivered_at - m.accepted_at) AS s
  FROM deliveries d JOIN messages m ON m.pk = d.message_pk
 WHERE m.message_type = 'letter' AND m.message_id = ANY($1::text[]) AND d.status = 'delivered'"""


def _ids(bodies: list[bytes]) -> list[str]:
    ids = []
    for body in bodies:  # the envelope's default namespace: <MessageId> (bench/scale.py reads them the same way)
        start = body.index(b"<MessageId>") + len(b"<MessageId>")
        ids.append(body[start:body.index(b"</MessageId>", start)].decode())
    return ids


async def _wait(conn: asyncpg.Connection, total: int, timeout: float) -> asyncpg.Record:
    """Until ``total`` deliveries are delivered (four per letter: two letters, two receipts back), or
    ``timeout``; the database is this run's own."""
    deadline = time.monotonic() + timeout
    while True:
        row = await conn.fetchrow(_PROGRESS)
        if row["delivered"] >= total or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.1)


def _tree_cpu(pid: int) -> float:
    top = psutil.Process(pid)
    return sum(sum(q.cpu_times()[:2]) for q in (top, *top.children(recursive=True)))


async def _post_all(url: str, bodies: list[bytes], headers: dict[str, str], clients: int) -> dict[int, int]:
    """Closed loop: ``clients`` posters send ``bodies`` on kept-alive connections; counts of each status.

    The load generator's CPU is counted too, so it posts on the push's lean client (adapters/wire.py:
    ~55 µs a request where bench.common.post_all's aiohttp client takes ~140)."""
    wire = Wire(per_host=clients)
    codes: dict[int, int] = {}
    it = iter(bodies)

    async def client() -> None:
        for body in it:
            answer = await wire.post(url, body, headers, timeout=120)
            codes[answer.status] = codes.get(answer.status, 0) + 1

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        wire.close()
    return codes


async def _at_the_offices(offices: list[OfficeProcess], letters: list[str]) -> dict[str, int]:
    """What the offices themselves got (their counts, read after the timed window): ``missing``
    (letter, office) pairs that never arrived, ``dup`` letters an office got under more than one
    delivery id, ``wire_repeats`` a delivery id arriving again (at-least-once allows it), and
    ``receipts_at_sender`` the distinct delivery receipts at the sender's office."""
    receivers, sender = offices
    stats = await receivers.call("GET", "/stats", timeout=30)
    missing = dup = repeats = 0
    for name in OFFICES:
        s = stats[name]
        repeats += len(s["seen"]) - len(set(s["seen"]))
        ids_of: dict[str, set[str]] = {}
        for delivery_id, message_id in s["letter_of"].items():
            ids_of.setdefault(message_id, set()).add(delivery_id)
        missing += sum(1 for m in letters if m not in ids_of)
        dup += sum(1 for m in letters if len(ids_of.get(m, ())) > 1)
    back = (await sender.call("GET", "/stats", timeout=30))["opm"]
    repeats += len(back["seen"]) - len(set(back["seen"]))
    return {"missing": missing, "dup": dup, "wire_repeats": repeats, "receipts_at_sender": len(back["letter_of"])}


async def run(procs: list[GatewayProcess], offices: list[OfficeProcess], dsn: str, warm: list[bytes],
              timed: list[bytes], clients: int, timeout: float, profile: dict | None = None) -> dict[str, float]:
    """The timed run's figures; with ``profile`` (a dict), py-spy's stage shares of the gateway's samples
    (``shares``) and the bytes of a pushed letter (``pushed``) put in it, for bench/e2e_budget.py."""
    for p in procs:
        await p.wait_ready()
    for o in offices:
        await o.wait_ready()
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    url = f"{procs[0].url}/v1/messages"
    conn = await asyncpg.connect(dsn)
    try:
        await _post_all(url, warm, headers, clients)
        await _wait(conn, 4 * len(warm), timeout)
        ids = _ids(timed)
        cpu0 = (gateway_cpu(procs), await postgres_cpu(dsn), sum(_tree_cpu(o.proc.pid) for o in offices),
                time.process_time())
        t0 = time.time()
        with StackSampler(procs[0].proc.pid) if profile is not None else contextlib.nullcontext() as sampler:
            codes = await _post_all(url, timed, headers, clients)
            last = (await _wait(conn, 4 * (len(warm) + len(timed)), timeout))["last"]
        cpu1 = (gateway_cpu(procs), await postgres_cpu(dsn), sum(_tree_cpu(o.proc.pid) for o in offices),
                time.process_time())
        # connections opened in the window: each costs PostgreSQL a backend and asyncpg's type introspection
        opened = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND backend_start > to_timestamp($1) AND pid <> pg_backend_pid()", t0)
        row = await conn.fetchrow(_DONE, ids)  # what reached whom, counted for the timed letters alone
        latencies = [float(r["s"]) for r in await conn.fetch(_LATENCY, ids)]
        wire = await _at_the_offices(offices, _ids(warm) + ids)
        if profile is not None:  # what the gateway pushed for one letter: the primitive's bytes
            pk = await conn.fetchval("SELECT max(pk) FROM messages WHERE message_type = 'letter'")
            profile["pushed"] = await forwarded_bytes(conn, pk)
    finally:
        await conn.close()
    n = len(timed)
    elapsed = (last.timestamp() - t0) if last else float("nan")
    per = [(b - a) / n * 1000 if a is not None and b is not None else float("nan") for a, b in zip(cpu0, cpu1,
                                                                                                   strict=True)]
    if profile is not None and sampler is not None:
        profile["shares"] = sampler.shares()
        sampler.remove()
    print(f"status codes: {codes}; delivered: {row['letters']} letter deliveries, {row['receipts']} receipts "
          f"back of {2 * n} each")
    print(f"at the offices: {wire}")
    return {**wire, "letters_per_s": n / elapsed, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "delivered": row["letters"], "receipts_back": row["receipts"],
            "gateway_cpu_ms_per_letter": per[0], "postgres_cpu_ms_per_letter": per[1],
            "offices_cpu_ms_per_letter": per[2], "client_cpu_ms_per_letter": per[3],
            "total_cpu_ms_per_letter": sum(per), "pg_connections_opened": opened,
            # what the machine's cores could carry at this CPU per letter, every process counted
            "ceiling_per_s": (os.cpu_count() or 1) * 1000 / sum(per), "load1": os.getloadavg()[0]}


def _measure(workdir: Path, args: argparse.Namespace, n: int) -> dict[str, float]:
    """One run in ``workdir``: the PKI, letters, offices, database and gateway made there, and its figures."""
    dev = init_dev_pki(workdir / "pki", {OPM: "สำนักนายกรัฐมนตรี", CMI: "เชียงใหม่", KKN: "ขอนแก่น"})
    warm = 200
    letters = make_letters(n + warm, signer=dev.agency_signer(OPM))
    receivers = OfficeProcess(log_path=workdir / "offices.log").start()
    sender = OfficeProcess(log_path=workdir / "sender.log", ports={"opm": free_port()}).start()
    routes = {agency: {"kind": "push", "url": receivers.url(name)} for name, agency in OFFICES.items()}
    routes[OPM] = {"kind": "push", "url": sender.url("opm")}
    directory = write_directory(workdir / "directory.json", routes)
    try:
        with database("e2e") as (_admin, dsn):
            # the database's primitives first, on the fresh database (bench/e2e_budget.py)
            db = e2e_budget.database_primitives(dsn, letters[warm], e2e_budget.receipt_bytes(dev.agency_signer(OPM)),
                                                args.clients, max(n, 1000)) if args.profile else {}
            port = free_port()
            env = gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir,
                              GATEWAY_LOG_LEVEL="warning", GATEWAY_RATE_PER_AGENCY="0", GATEWAY_VALIDATE_PDF="false",
                              GATEWAY_WORKERS=str(args.workers), GATEWAY_POOL_MAX="20",
                              # every connection opened (and, by the warm-up, through asyncpg's type
                              # introspection, ~16 ms of PostgreSQL's planning each) before the window
                              GATEWAY_POOL_MIN="20",
                              GATEWAY_DISPATCH_POLL_INTERVAL_S="0.25",  # as shipped (the tests' env polls at 0.05)
                              GATEWAY_PKI_DIR=str(workdir / "pki"), GATEWAY_REQUIRE_SIGNATURE="true",
                              GATEWAY_SEAL="true", GATEWAY_REVOCATION="off")
            proc = GatewayProcess(env=env, port=port, log_path=workdir / "gw.log").start()
            profile: dict | None = {} if args.profile else None
            try:
                result = asyncio.run(run([proc], [receivers, sender], dsn, letters[:warm], letters[warm:],
                                     args.clients, args.timeout, profile))
            finally:
                proc.stop()
            if profile is not None:  # the other primitives, measured with the gateway stopped (bench/e2e_budget.py)
                per = {k: result[f"{k}_cpu_ms_per_letter"] for k in ("gateway", "postgres", "offices", "client")}
                result.update(e2e_budget.report(profile["shares"], per, db=db, letter=letters[warm],
                                                pushed=profile["pushed"] or letters[warm],
                                                signer=dev.agency_signer(OPM), clients=args.clients, n=n))
            return result
    finally:
        receivers.stop()
        sender.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="400 letters instead of 3000")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="gateway serve --workers")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--profile", action="store_true", help="the CPU budget of one letter end to end, each stage next to its primitive (bench/e2e_budget.py)")
    args = ap.parse_args()
    n = args.letters or (400 if args.quick else 3000)
    workdir = Path(tempfile.mkdtemp(prefix="sgw-e2e-", dir="/tmp"))
    try:
        result = _measure(workdir, args, n)
    except BaseException:
        print(f"work directory kept for its logs: {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)  # the PKI, logs and metrics files go with the run
    print(figures(letters=n, clients=args.clients, workers=args.workers, signed=1, **result, cores=os.cpu_count()))


if __name__ == "__main__":
    main()
