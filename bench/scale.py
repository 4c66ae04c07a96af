"""Scale out: 1, 2 and 4 separate ``gateway serve`` processes on one PostgreSQL.

What is measured, all in one run on one database server (a fresh migrated
database per configuration, so no configuration inherits another's rows):

Closed loop, per configuration (``--processes 1,2,4``)
    ``--clients`` concurrent posters submit ~5 KB letters, each to two push
    offices (Chiang Mai and Khon Kaen), spreading requests round-robin over the
    processes' ports. Every process runs the API and its dispatchers; they share
    the queue through ``FOR UPDATE SKIP LOCKED`` claims, with no coordinator.

    ``submit_Np``  letters/s accepted (202) while the dispatchers also run.
    ``e2e_Np``     letters/s from the first submit until the last delivery of
                   the batch is ``delivered`` in the database, i.e. delivered to
                   *both* offices and acknowledged (a DeliveryAck) by them.
    ``*_ratio_Np`` the figure over the 1-process figure of the same run.
    ``cpu_busy_Np`` share of the machine's cores busy during the timed phase:
                   if 1 process already keeps every core busy (gateway, database,
                   offices and load generator share them), more processes
                   cannot add throughput on this machine, only contention.
    ``gw_cpu_ms_per_letter_Np`` CPU of all gateway processes per accepted
                   letter (submit + two deliveries): flat when adding processes
                   adds no coordination cost, which is what scaling on more
                   cores needs.
    ``lockwait_Np`` share of busy database backends (pg_stat_activity, sampled
                   every 0.1 s during the timed phase) waiting on a heavyweight
                   lock: work serialised on a row or table. It must stay near 0
                   as processes are added; a line per configuration also prints
                   the top wait events (WAL flushes, client reads, CPU).

    ``--workers W`` adds one more configuration, ``wW``: a single
    ``gateway serve --workers W`` (W worker processes on one port, SO_REUSEPORT).
    On a machine shared with other work, compare it with ``Np`` with care: the
    separate processes each start in a session of their own, the workers of one
    supervisor share its session, and with ``kernel.sched_autogroup_enabled=1``
    the scheduler shares CPU between sessions, so under contention W workers get
    about one process's share (measured here: w4 about half of 4p, with both
    spreading their load evenly). On a quiet machine the two should match.

    After each configuration the offices and the database are checked against
    every 202 the client saw: ``missing`` counts (letter, office) pairs that
    have no delivery in the database, are dead, or are ``delivered`` there but
    never reached the office; ``pending`` those still queued when ``--timeout``
    ran out (late, not lost: raise the timeout); ``dup`` counts letters an
    office received under more than one delivery id, or delivery ids the
    database does not know for that office. ``dup`` and ``missing`` must be 0.
    ``wire_repeats`` (allowed: at-least-once) counts the same delivery id
    arriving again. The offices run in a child process of their own
    (``bench/offices.py``: deduplicating on ``X-Saraban-Delivery-Id``, answering
    a DeliveryAck with the SHA-256 of what they got), so they do not share an
    interpreter with the load generator.

Open loop (``--rate 500`` for ``--open-seconds``, on ``--open-processes``)
    Sends are scheduled at fixed times (i / rate), not paced by answers, and a
    letter's latency is counted from its scheduled time, so a slow gateway
    cannot hide its queueing (no coordinated omission).
    ``p50_ms``/``p99_ms``          submit latency (scheduled send to 202).
    ``e2e_p50_ms``/``e2e_p99_ms``  accepted_at to delivered_at, per delivery,
                                    as the database records them.
    ``achieved_per_s``             202s over the time from the first scheduled
                                    send to the last answer.

RSS
    psutil samples every gateway process (and its children, for ``--workers``)
    every 0.1 s during all phases. ``rss_peak_mb`` is the largest single
    process; ``rss_Np_mb`` the largest in that configuration (``rss_open_mb`` in
    the open loop, where an overloaded gateway holds many requests at once);
    ``rss_wW_total_mb`` the supervisor and its workers together.

Everything started here (gateway processes, the office process, the embedded
PostgreSQL unless GATEWAY_DATABASE_URL names a server) is stopped by pid.

Usage:
    PYTHONPATH=. .venv/bin/python bench/scale.py --quick
    PYTHONPATH=. .venv/bin/python bench/scale.py [--processes 1,2,4] [--workers 4] [--letters N]
        [--clients C] [--rate 500] [--open-seconds S] [--open-processes P] [--timeout S] [--keep]

Prints its figures last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.common import MachineCpu, figures, fresh_database, gateway_cpu, percentile, post_all, server  # noqa: E402
from bench.offices import OFFICES, OfficeProcess  # noqa: E402
from bench.submit import make_letters  # noqa: E402
from tests.support import (  # noqa: E402
    OPM,
    TOKENS,
    GatewayProcess,
    free_port,
    gateway_env,
    write_directory,
)

HEADERS = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}

LETTER_DELIVERIES = """
SELECT d.id::text AS id, d.recipient, d.status::text AS status, m.message_id, m.accepted_at, d.delivered_at
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE m.message_type = 'letter' AND m.sender = $1
"""




# ---------------------------------------------------------------------------- RSS sampling


class RssSampler:
    """Samples the RSS of gateway processes (each one, and each with its children) in a thread."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.watched: dict[str, int] = {}          # label -> top-level pid
        self.peak_single: dict[str, int] = {}      # label -> largest single process in its tree (bytes)
        self.peak_tree: dict[str, int] = {}        # label -> largest sum over its tree (bytes)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, label: str, pid: int) -> None:
        with self._lock:
            self.watched[label] = pid

    def unwatch_all(self) -> None:
        with self._lock:
            self.watched.clear()

    def _run(self) -> None:

        while not self._stop.wait(self.interval_s):
            with self._lock:
                watched = dict(self.watched)
            for label, pid in watched.items():
                try:
                    top = psutil.Process(pid)
                    tree = [top] + top.children(recursive=True)
                except psutil.Error:
                    continue
                sizes = []
                for p in tree:
                    try:
                        sizes.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                if sizes:
                    self.peak_single[label] = max(self.peak_single.get(label, 0), max(sizes))
                    self.peak_tree[label] = max(self.peak_tree.get(label, 0), sum(sizes))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


class WaitSampler:
    """What the database's busy backends wait on, sampled from pg_stat_activity every 0.1 s.

    A scaling stopper shows up here as ``Lock:*`` (row or transaction locks: work
    serialised on one row) or ``LWLock:*`` waits growing with the process count;
    ``IO:WALSync``/``LWLock:WALWrite`` are commits waiting for the disk; ``CPU`` is a
    backend running (no wait event).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' "
                    "AND backend_type = 'client backend'")
                for r in rows:
                    self.counts[r["w"]] = self.counts.get(r["w"], 0) + 1
                self.samples += len(rows)
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def share(self, prefix: str) -> float:
        """Fraction of busy-backend samples whose wait starts with ``prefix`` (e.g. ``Lock:``)."""
        return sum(n for w, n in self.counts.items() if w.startswith(prefix)) / max(1, self.samples)

    def top(self, k: int = 5) -> str:
        items = sorted(self.counts.items(), key=lambda kv: -kv[1])[:k]
        return " ".join(f"{w}={n / max(1, self.samples):.0%}" for w, n in items)


# ---------------------------------------------------------------------------- one configuration


@dataclass
class Config:
    label: str          # "1p", "2p", "4p", "w4"
    processes: int      # separate `gateway serve` processes
    workers: int = 1    # --workers of each


@dataclass
class Check:
    accepted: int = 0
    missing: int = 0
    pending: int = 0
    dup: int = 0
    wire_repeats: int = 0


def start_gateways(cfg: Config, dsn: str, directory: Path, workdir: Path,
                   sampler: RssSampler) -> list[GatewayProcess]:
    procs = []
    # stay under PostgreSQL's default 100 connections with 4 processes and the bench's own
    pool_max = max(8, min(20, 80 // (cfg.processes * cfg.workers)))
    for i in range(cfg.processes):
        port = free_port()
        env = gateway_env(database_url=dsn, directory=directory, port=port, data_dir=workdir,
                          GATEWAY_LOG_LEVEL="warning", GATEWAY_RATE_PER_AGENCY="0", GATEWAY_VALIDATE_PDF="false",
                          GATEWAY_WORKERS=str(cfg.workers), GATEWAY_POOL_MAX=str(pool_max),
                          GATEWAY_NODE_NAME="" if cfg.workers > 1 else f"bench-{cfg.label}-{i}")
        p = GatewayProcess(env=env, port=port, log_path=workdir / f"gw-{cfg.label}-{i}.log").start()
        procs.append(p)
        sampler.watch(f"{cfg.label}-{i}", p.proc.pid)
    return procs


async def wait_listening(procs: list[GatewayProcess], workers: int, timeout: float = 60.0) -> None:
    """Wait until every worker of each ``--workers`` supervisor listens on its port.

    /readyz answers as soon as one worker is up; with SO_REUSEPORT the kernel
    spreads new connections only over the sockets bound so far, so measuring
    before all are bound would load the first worker alone.
    """

    deadline = time.monotonic() + timeout
    for p in procs:
        while True:
            listening = 0
            for child in psutil.Process(p.proc.pid).children(recursive=True):
                try:
                    conns = child.net_connections(kind="tcp") if hasattr(child, "net_connections") \
                        else child.connections(kind="tcp")
                except psutil.Error:
                    continue
                listening += any(c.status == psutil.CONN_LISTEN and c.laddr.port == p.port for c in conns)
            if listening >= workers:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {listening} of {workers} workers listen on {p.port}")
            await asyncio.sleep(0.1)


async def wait_delivered(dsn: str, message_ids: list[str], timeout: float) -> tuple[int, dt.datetime | None]:
    """Wait until every delivery of ``message_ids`` is delivered; (how many are, latest delivered_at)."""
    conn = await asyncpg.connect(dsn)
    try:
        want = 2 * len(message_ids)
        deadline = time.monotonic() + timeout
        while True:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE d.status = 'delivered') AS n, max(d.delivered_at) AS last "
                "FROM deliveries d JOIN messages m ON m.pk = d.message_pk "
                "WHERE m.sender = $1 AND m.message_id = ANY($2::text[])", OPM, message_ids)
            if row["n"] >= want or time.monotonic() > deadline:
                return row["n"], row["last"]
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def check(dsn: str, offices: OfficeProcess, accepted: set[str]) -> Check:
    """Compare every 202 the client saw with what the offices and the database say."""
    stats = await offices.call("GET", "/stats", timeout=30)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(LETTER_DELIVERIES, OPM)
    finally:
        await conn.close()
    c = Check(accepted=len(accepted))
    in_db = {(r["message_id"], r["recipient"]): r for r in rows}
    db_ids = {r["id"]: (r["message_id"], r["recipient"]) for r in rows}
    for name, agency in OFFICES.items():
        s = stats[name]
        c.wire_repeats += len(s["seen"]) - len(set(s["seen"]))
        ids_of_letter: dict[str, set[str]] = {}
        for delivery_id, message_id in s["letter_of"].items():
            ids_of_letter.setdefault(message_id, set()).add(delivery_id)
            if db_ids.get(delivery_id) != (message_id, agency):
                c.dup += 1  # a delivery id the database does not have for this letter and office
        c.dup += sum(len(ids) - 1 for ids in ids_of_letter.values())
        for message_id in accepted:
            r = in_db.get((message_id, agency))
            if r is not None and r["status"] in ("queued", "sending", "retry_wait"):
                c.pending += 1
            elif r is None or r["status"] != "delivered" or message_id not in ids_of_letter:
                c.missing += 1
    return c


async def closed_loop(cfg: Config, procs: list[GatewayProcess], dsn: str, offices: OfficeProcess,
                      warm: list[bytes], timed: list[bytes], ids_warm: list[str], ids_timed: list[str],
                      clients: int, timeout: float) -> dict:
    for p in procs:
        await p.wait_ready()
    if cfg.workers > 1:
        await wait_listening(procs, cfg.workers)
    await offices.call("POST", "/reset")
    urls = [f"{p.url}/v1/messages" for p in procs]
    st_warm: list[int] = []
    await post_all(urls, warm, headers=HEADERS, clients=clients, statuses=st_warm)
    await wait_delivered(dsn, ids_warm, timeout)
    st: list[int] = []
    waits = WaitSampler(dsn)
    waits.start()
    machine, gw0 = MachineCpu().start(), gateway_cpu(procs)
    t0 = time.time()
    submit_rate, lat, codes = await post_all(urls, timed, headers=HEADERS, clients=clients, statuses=st)
    accepted_timed = [m for m, s in zip(ids_timed, st, strict=False) if s == 202]
    n, last = await wait_delivered(dsn, accepted_timed, timeout)
    busy, gw_cpu = machine.stop(), gateway_cpu(procs) - gw0
    await waits.stop()
    # letters fully delivered (two deliveries each) over the time from the first submit to the last delivery
    e2e = n / 2 / max(1e-9, last.timestamp() - t0) if last is not None and n else 0.0
    accepted = {m for m, s in zip(ids_warm, st_warm, strict=False) if s == 202} | set(accepted_timed)
    c = await check(dsn, offices, accepted)
    print(f"{cfg.label}: codes={codes} submit_per_s={submit_rate:.0f} e2e_per_s={e2e:.0f} "
          f"submit_p50_ms={percentile(lat, 50) * 1000:.0f} accepted={c.accepted} delivered_pairs={n} "
          f"missing={c.missing} pending={c.pending} dup={c.dup} wire_repeats={c.wire_repeats}", flush=True)
    print(f"{cfg.label}: database waits (share of busy-backend samples): {waits.top()}", flush=True)
    return {"submit": submit_rate, "e2e": e2e, "check": c, "lockwait": waits.share("Lock:"), "cpu_busy": busy,
            "gw_cpu_ms": gw_cpu / max(1, len(accepted_timed)) * 1000}


async def open_loop(procs: list[GatewayProcess], dsn: str, offices: OfficeProcess, warm: list[bytes],
                    ids_warm: list[str], bodies: list[bytes], ids: list[str], rate: float, timeout: float) -> dict:
    for p in procs:
        await p.wait_ready()
    await offices.call("POST", "/reset")
    urls = [f"{p.url}/v1/messages" for p in procs]
    st_warm: list[int] = []
    await post_all(urls, warm, headers=HEADERS, clients=16, statuses=st_warm)
    await wait_delivered(dsn, ids_warm, timeout)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses = [0] * len(bodies)
    done_at: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024)) as s:
        t0 = loop.time() + 0.2

        async def one(i: int, body: bytes) -> None:
            scheduled = t0 + i / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                async with s.post(urls[i % len(urls)], data=body, headers=HEADERS) as r:
                    await r.read()
                    statuses[i] = r.status
            except aiohttp.ClientError:
                statuses[i] = -1
            now = loop.time()
            latencies.append(now - scheduled)
            done_at.append(now)

        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    accepted_ids = [m for m, st in zip(ids, statuses, strict=False) if st == 202]
    achieved = len(accepted_ids) / max(1e-9, max(done_at) - t0)
    await wait_delivered(dsn, accepted_ids, timeout)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM d.delivered_at - m.accepted_at) AS s FROM deliveries d "
            "JOIN messages m ON m.pk = d.message_pk WHERE m.sender = $1 AND m.message_id = ANY($2::text[]) "
            "AND d.status = 'delivered'", OPM, accepted_ids)
    finally:
        await conn.close()
    e2e = [float(r["s"]) for r in rows]
    accepted = {m for m, st in zip(ids_warm, st_warm, strict=False) if st == 202} | set(accepted_ids)
    c = await check(dsn, offices, accepted)
    codes: dict[int, int] = {}
    for st in statuses:
        codes[st] = codes.get(st, 0) + 1
    print(f"open loop: codes={codes} offered={len(bodies)} at {rate:.0f}/s achieved_per_s={achieved:.0f} "
          f"missing={c.missing} pending={c.pending} dup={c.dup} wire_repeats={c.wire_repeats}", flush=True)
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "e2e_p50": percentile(e2e, 50), "e2e_p99": percentile(e2e, 99), "achieved": achieved, "check": c}


# ---------------------------------------------------------------------------- main


def letters_with_ids(n: int) -> tuple[list[bytes], list[str]]:
    """``n`` distinct ~5 KB letters to both offices (bench.submit's) and their message ids."""
    bodies = make_letters(n)
    ids = []
    for body in bodies:
        start = body.index(b"<MessageId>") + len(b"<MessageId>")
        ids.append(body[start:body.index(b"</MessageId>", start)].decode())
    return bodies, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small, fast run (figures are rough)")
    ap.add_argument("--processes", default="1,2,4", help="comma-separated counts of separate gateway processes")
    ap.add_argument("--workers", type=int, default=0,
                    help="also measure one `gateway serve --workers W` (0: skip)")
    ap.add_argument("--letters", type=int, help="timed letters per configuration (each to two offices)")
    ap.add_argument("--clients", type=int, default=32, help="closed-loop concurrent posters")
    ap.add_argument("--rate", type=float, default=500.0, help="open-loop offered letters/s")
    ap.add_argument("--open-seconds", type=float, help="open-loop duration")
    ap.add_argument("--open-processes", type=int, help="gateway processes for the open loop (default: the most)")
    ap.add_argument("--timeout", type=float, default=120.0, help="longest wait for deliveries, per phase")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (gateway logs) and print it")
    args = ap.parse_args()

    counts = [int(x) for x in args.processes.split(",") if x.strip()]
    configs = [Config(f"{n}p", n) for n in counts]
    if args.workers:
        configs.append(Config(f"w{args.workers}", 1, args.workers))
    n_timed = args.letters or (400 if args.quick else 3000)
    n_warm = 50 if args.quick else 200
    open_s = args.open_seconds or (4.0 if args.quick else 20.0)
    n_open = int(args.rate * open_s)
    open_procs = args.open_processes or max(counts)

    workdir = Path(tempfile.mkdtemp(prefix="sgw-scale-", dir="/tmp"))
    offices = OfficeProcess(log_path=workdir / "offices.log").start()
    routes = {agency: {"kind": "push", "url": offices.url(name)} for name, agency in OFFICES.items()}
    directory = write_directory(workdir / "directory.json", routes)
    results: dict[str, dict] = {}
    total = Check()
    t_start = time.monotonic()
    try:
        asyncio.run(offices.wait_ready())
        with server("scale") as admin, RssSampler() as sampler:
            for cfg in configs:
                warm, ids_warm = letters_with_ids(n_warm)
                timed, ids_timed = letters_with_ids(n_timed)
                with fresh_database(admin, f"scale{cfg.label}") as dsn:
                    procs = start_gateways(cfg, dsn, directory, workdir, sampler)
                    try:
                        results[cfg.label] = asyncio.run(closed_loop(
                            cfg, procs, dsn, offices, warm, timed, ids_warm, ids_timed, args.clients, args.timeout))
                    finally:
                        for p in procs:
                            p.stop()
                        sampler.unwatch_all()
            if args.rate > 0:
                warm, ids_warm = letters_with_ids(n_warm)
                bodies, ids = letters_with_ids(n_open)
                cfg = Config(f"open{open_procs}p", open_procs)
                with fresh_database(admin, "scaleopen") as dsn:
                    procs = start_gateways(cfg, dsn, directory, workdir, sampler)
                    try:
                        results["open"] = asyncio.run(open_loop(procs, dsn, offices, warm, ids_warm, bodies, ids,
                                                                args.rate, args.timeout))
                    finally:
                        for p in procs:
                            p.stop()
                        sampler.unwatch_all()
    finally:
        offices.stop()
    for r in results.values():
        total.missing += r["check"].missing
        total.pending += r["check"].pending
        total.dup += r["check"].dup
        total.wire_repeats += r["check"].wire_repeats
    mb = 1 / (1024 * 1024)
    out: dict[str, object] = {}
    base = results.get(configs[0].label) if configs and configs[0].processes == 1 and configs[0].workers == 1 else None
    for cfg in configs:
        out[f"submit_{cfg.label}"] = results[cfg.label]["submit"]
    for cfg in configs:
        out[f"e2e_{cfg.label}"] = results[cfg.label]["e2e"]
    if base:
        for cfg in configs[1:]:
            out[f"submit_ratio_{cfg.label}"] = results[cfg.label]["submit"] / base["submit"]
        for cfg in configs[1:]:
            out[f"e2e_ratio_{cfg.label}"] = results[cfg.label]["e2e"] / base["e2e"] if base["e2e"] else 0.0
    for cfg in configs:
        out[f"lockwait_{cfg.label}"] = results[cfg.label]["lockwait"]
    for cfg in configs:  # near 1.0 at 1 process: no spare core for more processes to use
        out[f"cpu_busy_{cfg.label}"] = results[cfg.label]["cpu_busy"]
    for cfg in configs:  # flat as processes are added: no coordination cost per letter
        out[f"gw_cpu_ms_per_letter_{cfg.label}"] = results[cfg.label]["gw_cpu_ms"]
    if "open" in results:
        o = results["open"]
        out.update(open_processes=open_procs, p50_ms=o["p50"] * 1000, p99_ms=o["p99"] * 1000,
                   e2e_p50_ms=o["e2e_p50"] * 1000, e2e_p99_ms=o["e2e_p99"] * 1000,
                   offered_per_s=args.rate, achieved_per_s=o["achieved"])
    for cfg in configs:
        peaks = [v for k, v in sampler.peak_single.items() if k.startswith(f"{cfg.label}-")]
        if peaks:
            out[f"rss_{cfg.label}_mb"] = max(peaks) * mb
        if cfg.workers > 1:
            out[f"rss_{cfg.label}_total_mb"] = max(v for k, v in sampler.peak_tree.items()
                                                   if k.startswith(f"{cfg.label}-")) * mb
    open_peaks = [v for k, v in sampler.peak_single.items() if k.startswith("open")]
    if open_peaks:
        out["rss_open_mb"] = max(open_peaks) * mb
    out["rss_peak_mb"] = max(sampler.peak_single.values(), default=0) * mb
    out.update(letters=n_timed, clients=args.clients, seconds=time.monotonic() - t_start,
               dup=total.dup, missing=total.missing, pending=total.pending, wire_repeats=total.wire_repeats)
    if args.keep:
        print(f"gateway and office logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(figures(**out))


if __name__ == "__main__":
    main()
