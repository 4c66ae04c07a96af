"""Chaos harness: real gateway processes, a real PostgreSQL, real offices, and things going wrong.

What it builds (a :class:`World`): a dedicated embedded PostgreSQL that may be
crashed (:class:`tests.pgserver.CrashablePostgres`), ``processes`` real
``gateway serve`` processes on it (each on a fixed port, restarted on the same
port after a SIGKILL), and receiving offices on loopback in this process.

Two scenarios run in the same world, one after the other:

:func:`crash_scenario`
    Closed-loop clients submit letters (each to two offices) to the gateways,
    round robin. Every ``kill_every_s`` one gateway (in turn) gets SIGKILL and
    is started again; once, mid-run, PostgreSQL itself is crashed (SIGKILL to
    the postmaster and every backend) and started again. A client retries a
    letter with the *same bytes* (same message id) on a connection error, a
    timeout, 503 or 429, until it gets 202 or 200 (a duplicate answered with the
    original receipt). After the load, everything settles and the books are
    checked: every letter a client saw accepted reached every recipient
    (``lost``), and no office got one letter under two delivery ids
    (``duplicates``). The same delivery id arriving twice is at-least-once on
    the wire and is counted separately (``wire_repeats``).

:func:`office_scenario`
    Circular letters go to one healthy office and five unruly ones (down,
    slow, 5xx, resetting connections, answering after the gateway's request
    timeout), at a fixed offered rate. Windows alternate: every office behaves
    (baseline), then the five misbehave, then they recover and their backlog
    is delivered before the next baseline window starts. The accept -> receipt
    latency of the healthy office's deliveries is compared between baseline
    and unruly windows (interleaved, so that whatever else the machine does
    weighs on both), and every letter must reach every unruly office after
    recovery; optionally the "down" office then stays down for a long stretch.

Nothing waits by sleeping: the harness waits for conditions with deadlines.
The sleeps that remain pace a schedule (when to kill, how long an office or the
database stays down, a client's retry back-off, the offered load).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from cryptography import x509

from gateway.audit import live
from gateway.storage import db
from tests.pgserver import CrashablePostgres
from tests.support import (
    CMI,
    KKN,
    OPM,
    TOKENS,
    GatewayProcess,
    Office,
    UnrulyOffice,
    directory_dict,
    free_port,
    gateway_env,
    letter_bytes,
)

#: The offices of the office scenario: one healthy, five that misbehave in phase two.
HEALTHY = "1560100000"
UNRULY = {"down": "1560200000", "slow": "1560300000", "error": "1560400000", "reset": "1560500000",
          "hang": "1560600000"}

#: Gateway request timeout to offices in these scenarios; the "hang" office answers later than this.
REQUEST_TIMEOUT_S = 2.0
SLOW_S = 1.5
HANG_S = REQUEST_TIMEOUT_S + 1.5


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))]


# ---------------------------------------------------------------------------- the world


@dataclass
class World:
    """PostgreSQL, gateways and offices of one chaos run; :meth:`close` stops all of it by pid."""

    processes: int = 2
    lease_s: float = 4.0
    """Dispatch lease: short, so a killed process's claims come back soon; longer than the request
    timeout, as in production (60 s > 30 s), or a slow office's deliveries are claimed twice."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sgw-chaos-", dir="/tmp")))
    keep_workdir: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """More GATEWAY_* settings for the gateway processes (they win over the harness's)."""
    pg: CrashablePostgres | None = None
    dsn: str = ""
    gateways: list[GatewayProcess] = field(default_factory=list)
    offices: dict[str, Office] = field(default_factory=dict)
    kills: int = 0
    start_failures: int = 0
    """Restarts of a gateway that exited at once (e.g. the database was down) and were tried again."""

    async def open(self) -> World:
        if self.lease_s <= REQUEST_TIMEOUT_S:
            raise ValueError(f"lease_s {self.lease_s} must exceed the request timeout {REQUEST_TIMEOUT_S}")
        self.pg = await asyncio.to_thread(lambda: CrashablePostgres().start())
        admin = self.pg.admin_dsn
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute("CREATE DATABASE chaos ENCODING 'UTF8' TEMPLATE template0")
        finally:
            await conn.close()
        self.dsn = admin.replace("/postgres?", "/chaos?", 1)
        conn = await asyncpg.connect(self.dsn)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        # offices: two for the crash scenario, six for the office scenario
        self.offices[CMI] = await Office(name="cmi").start()
        self.offices[KKN] = await Office(name="kkn").start()
        self.offices[HEALTHY] = await Office(name="healthy").start()
        for kind, code in UNRULY.items():
            self.offices[code] = await UnrulyOffice(name=kind, slow_s=SLOW_S, hang_s=HANG_S).start()
        directory = self.workdir / "directory.json"
        data = directory_dict({code: {"kind": "push", "url": o.url} for code, o in self.offices.items()
                               if code in (CMI, KKN)})
        for code, o in self.offices.items():
            if code in (CMI, KKN):
                continue
            data["agencies"].append({"code": code, "name_th": f"สำนักงานทดสอบ {o.name}",
                                     "name_en": f"Test office {o.name}", "parent": None, "province": None,
                                     "route": {"kind": "push", "url": o.url}, "tokens": []})
        directory.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        for i in range(self.processes):
            port = free_port()
            env = gateway_env(
                database_url=self.dsn, directory=directory, port=port, data_dir=self.workdir,
                GATEWAY_LOG_LEVEL="warning",
                GATEWAY_DISPATCH_LEASE_S=str(self.lease_s), GATEWAY_DISPATCH_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
                GATEWAY_RETRY_INITIAL_DELAY_S="0.2", GATEWAY_RETRY_MAX_DELAY_S="2",
                # time is compressed: an outage of a minute must not exhaust a schedule meant for days
                GATEWAY_RETRY_MAX_ATTEMPTS="1000",
                GATEWAY_POOL_MAX="10", GATEWAY_RATE_PER_AGENCY="0", **self.env)
            gw = GatewayProcess(env=env, port=port, log_path=self.workdir / f"gateway-{i}.log")
            self.gateways.append(gw)
            # one at a time: the first start creates the development PKI in the shared data dir
            await self.start_gateway(gw)
        return self

    async def start_gateway(self, gw: GatewayProcess, timeout: float = 90.0) -> None:
        """Start ``gw`` and wait until it is ready; start it again if it exits (database down)."""
        deadline = time.monotonic() + timeout
        while True:
            gw.start()
            try:
                await gw.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
                return
            except RuntimeError:  # exited: typically PostgreSQL was down while it started
                self.start_failures += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)  # paces restarts of a process that cannot start yet

    def kill(self, i: int) -> None:
        """SIGKILL gateway ``i`` (if it runs); :meth:`start_gateway` brings it back."""
        gw = self.gateways[i]
        if gw.proc is not None and gw.proc.poll() is None:
            gw.kill()
            self.kills += 1

    async def crash_postgres(self, down_s: float) -> None:
        await asyncio.to_thread(self.pg.crash)
        await asyncio.sleep(down_s)  # how long the database stays down (schedule, not synchronisation)
        await asyncio.to_thread(self.pg.start_again)

    async def close(self) -> None:
        for gw in self.gateways:
            gw.stop()
        for o in self.offices.values():
            await o.stop()
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs_tail(self, n: int = 2000) -> str:
        out = []
        for gw in self.gateways:
            try:
                out.append(f"--- {gw.log_path.name}\n{gw.log_path.read_text(errors='replace')[-n:]}")
            except OSError:
                pass
        return "\n".join(out)

    async def verify_audit(self, timeout: float = 60.0) -> tuple[int, list[str]]:
        """Wait until the sealer has chained every audit event, then verify the chain from the genesis.

        Returns (events examined, problems). The chain must survive SIGKILLs of
        whichever process was sealing and the database's crash recovery."""


        # the development seal the gateways created in their data dir (checkpoints, if any, are signed by it)
        cert = x509.load_pem_x509_certificates((self.workdir / "pki" / "gateway" / "seal.pem").read_bytes())[0]
        pool = await db.create_pool(self.dsn, min_size=1, max_size=2)
        try:
            deadline = time.monotonic() + timeout
            while True:
                head = await pool.fetchval("SELECT seq FROM audit_chain_head")
                last = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM audit_events")
                if head >= last or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)  # polls a condition with a deadline
            rep = await live.verify_database(pool, cert)
        finally:
            await pool.close()
        problems = [str(p) for p in rep.problems]
        if head < last:
            problems.append(f"sealer did not catch up: head {head} < last event {last}")
        return rep.events, problems

    async def delivery_states(self, message_ids: list[str] | None = None) -> dict[str, int]:
        """Deliveries of letters by status (all letters, or those with the given message ids)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT d.status::text AS status, count(*) AS n"
                " FROM deliveries d JOIN messages m ON m.pk = d.message_pk"
                " WHERE m.message_type = 'letter' AND ($1::text[] IS NULL OR m.message_id = ANY($1))"
                " GROUP BY d.status", message_ids)
        finally:
            await conn.close()
        return {r["status"]: r["n"] for r in rows}


# ---------------------------------------------------------------------------- clients


@dataclass
class Books:
    """What the clients saw."""

    accepted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Message id -> recipients, for every letter answered 202 or 200."""
    submitted_at: dict[str, float] = field(default_factory=dict)
    """Message id -> wall-clock time its first attempt was sent."""
    duplicates_answered: int = 0
    """200 answers (a retry of a letter the gateway already held: the original receipt)."""
    retries: dict[str, int] = field(default_factory=dict)
    """Why a client had to send again: connection, timeout, 503, 429."""
    refused: dict[str, int] = field(default_factory=dict)
    """Final answers that were not 2xx (each one is a finding)."""
    unresolved: int = 0
    """Letters whose submission never got an answer before the drain deadline."""


async def submit_until_answered(s: aiohttp.ClientSession, urls: list[str], body: bytes, message_id: str,
                                recipients: tuple[str, ...], books: Books, *, first: int, give_up_at: float,
                                rng: random.Random) -> None:
    """Send one letter until a gateway answers 202/200 (same bytes each time), or the deadline."""
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    books.submitted_at.setdefault(message_id, time.time())
    i = first
    delay = 0.05
    while True:
        reason = None
        try:
            async with s.post(f"{urls[i % len(urls)]}/v1/messages", data=body, headers=headers,
                              timeout=aiohttp.ClientTimeout(total=10)) as r:
                await r.read()
                if r.status in (200, 202):
                    books.accepted[message_id] = recipients
                    if r.status == 200:
                        books.duplicates_answered += 1
                    return
                if r.status in (429, 503):
                    reason = str(r.status)
                else:
                    books.refused[str(r.status)] = books.refused.get(str(r.status), 0) + 1
                    return
        except TimeoutError:
            reason = "timeout"
        except aiohttp.ClientError:
            reason = "connection"
        books.retries[reason] = books.retries.get(reason, 0) + 1
        if time.monotonic() > give_up_at:
            books.unresolved += 1
            return
        i += 1  # the other gateway, which is probably up
        await asyncio.sleep(delay * rng.uniform(0.5, 1.5))  # client back-off
        delay = min(0.5, delay * 2)


# ---------------------------------------------------------------------------- crash scenario


@dataclass
class CrashResult:
    accepted: int
    """Letters the clients saw answered 202/200."""
    expected: int
    """Deliveries those letters need (letters x recipients)."""
    delivered: int
    """Of those, how many reached their office (by message id)."""
    lost: int
    """Deliveries of accepted letters that never reached their office."""
    missing_in_db: int
    """Accepted letters the database does not hold (a 2xx for an uncommitted letter)."""
    duplicates: int
    """(letter, office) pairs that arrived under more than one delivery id."""
    wire_repeats: int
    """Repeated arrivals of the same delivery id (at-least-once; the office deduplicates)."""
    dead: int
    """Deliveries of letters that became dead letters."""
    receipts: int
    """(letter, recipient) pairs with a delivery receipt on its way back to the sender."""
    receipt_duplicates: int
    """(letter, recipient) pairs with more than one delivery receipt."""
    audit_events: int
    """Audit events the chain verifier examined after the run."""
    audit_problems: list[str]
    """What the verifier found wrong with the hash chain (edits, gaps, reordering)."""
    kills: int
    pg_restarts: int
    start_failures: int
    duplicates_answered: int
    retries: dict[str, int]
    refused: dict[str, int]
    unresolved: int
    load_s: float
    settle_s: float
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicates == 0 and self.missing_in_db == 0 and not self.refused
                and not self.audit_problems and self.receipts == self.expected and self.receipt_duplicates == 0)


async def crash_scenario(world: World, *, seconds: float, clients: int = 8, kill_every_s: float = 4.0,
                         pg_restarts: int = 1, pg_down_s: float = 1.0, settle_timeout_s: float = 120.0,
                         seed: int = 1, log=print) -> CrashResult:
    rng = random.Random(seed)
    recipients = (CMI, KKN)
    cmi, kkn = world.offices[CMI], world.offices[KKN]
    urls = [gw.url for gw in world.gateways]
    books = Books()
    kills_before, pg_before = world.kills, world.pg.restarts
    t0 = time.monotonic()
    stop_at = t0 + seconds
    give_up_at = stop_at + 60.0

    connector = aiohttp.TCPConnector(limit=clients * 4, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def client(n: int) -> None:
            k = 0
            while time.monotonic() < stop_at:
                mid = f"chaos-{n}-{k}-{uuid.uuid4().hex[:8]}"
                body = letter_bytes(recipients=recipients, message_id=mid)
                await submit_until_answered(s, urls, body, mid, recipients, books, first=n + k,
                                            give_up_at=give_up_at, rng=rng)
                k += 1

        async def chaos() -> None:
            # A kill every kill_every_s, in turn, whatever state the victim is in (it may still be
            # starting after the previous kill); restarts run in the background, so at times no
            # gateway is up. The database crash(es) are spread evenly over the run, also in the
            # background: gateways killed meanwhile cannot start until it is back.
            pg_at = [t0 + seconds * (j + 1) / (pg_restarts + 1) for j in range(pg_restarts)]
            next_kill = t0 + kill_every_s
            victim = 0
            background: list[asyncio.Task] = []
            restarting: dict[int, asyncio.Task] = {}

            async def crash_pg() -> None:
                log(f"[{time.monotonic() - t0:5.1f}s] crashing PostgreSQL")
                await world.crash_postgres(pg_down_s)
                log(f"[{time.monotonic() - t0:5.1f}s] PostgreSQL is back")

            async def restart(i: int) -> None:
                await world.start_gateway(world.gateways[i])
                log(f"[{time.monotonic() - t0:5.1f}s] gateway {i} ready again")

            while True:
                now = time.monotonic()
                if pg_at and pg_at[0] <= now:
                    pg_at.pop(0)
                    background.append(asyncio.create_task(crash_pg()))
                    continue
                if next_kill <= now:
                    log(f"[{now - t0:5.1f}s] SIGKILL gateway {victim}")
                    world.kill(victim)  # a restart in progress notices the exit and starts it again
                    if victim not in restarting or restarting[victim].done():
                        restarting[victim] = asyncio.create_task(restart(victim))
                    victim = (victim + 1) % len(world.gateways)
                    next_kill += kill_every_s
                    continue
                upcoming = [t for t in (pg_at[:1] + [next_kill]) if t < stop_at - 1.0]
                if not upcoming:
                    break
                await asyncio.sleep(max(0.0, min(upcoming) - time.monotonic()))  # the schedule
            await asyncio.gather(*background, *restarting.values())

        chaos_task = asyncio.create_task(chaos())
        await asyncio.gather(*(client(n) for n in range(clients)))
        await chaos_task
    load_s = time.monotonic() - t0
    log(f"[{load_s:5.1f}s] load over: {len(books.accepted)} letters accepted; settling")

    # every gateway up (the last kill restarted its victim), then wait for deliveries to settle
    accepted = sorted(books.accepted)

    def delivered_ids(office: Office) -> dict[str, set[str]]:
        by_message: dict[str, set[str]] = {}
        for d, m in list(office.message_ids.items()):
            by_message.setdefault(m, set()).add(d)
        return by_message

    def missing() -> int:
        got = {CMI: delivered_ids(cmi), KKN: delivered_ids(kkn)}
        return sum(1 for m in accepted for r in books.accepted[m] if m not in got[r])

    t_settle = time.monotonic()
    deadline = t_settle + settle_timeout_s
    while True:
        states = await world.delivery_states()
        pending = sum(n for st, n in states.items() if st in ("queued", "sending", "retry_wait"))
        if missing() == 0 and pending == 0:
            break
        if time.monotonic() > deadline:
            log(f"settle deadline passed: {missing()} deliveries missing at offices, states {states}")
            break
        await asyncio.sleep(0.1)  # polls a condition with a deadline
    settle_s = time.monotonic() - t_settle

    got = {CMI: delivered_ids(cmi), KKN: delivered_ids(kkn)}
    expected = sum(len(books.accepted[m]) for m in accepted)
    delivered = sum(1 for m in accepted for r in books.accepted[m] if m in got[r])
    duplicates = sum(1 for r in got for m, ids in got[r].items() if len(ids) > 1)
    wire_repeats = (len(cmi.seen) - len(set(cmi.seen))) + (len(kkn.seen) - len(set(kkn.seen)))
    conn = await asyncpg.connect(world.dsn)
    try:
        in_db = {r["message_id"] for r in await conn.fetch(
            "SELECT message_id FROM messages WHERE sender = $1 AND message_id = ANY($2)", OPM, accepted)}
        # the sender's side of exactly-once: one delivery receipt per (letter, recipient)
        receipts = await conn.fetch(
            "SELECT ref_to_message_id, sender, count(*) AS n FROM messages WHERE message_type = 'receipt'"
            " AND ref_to_message_id = ANY($1) GROUP BY ref_to_message_id, sender", accepted)
    finally:
        await conn.close()
    states = await world.delivery_states()
    audit_events, audit_problems = await world.verify_audit()
    return CrashResult(
        accepted=len(accepted), expected=expected, delivered=delivered, lost=expected - delivered,
        missing_in_db=len(accepted) - len(in_db), duplicates=duplicates, wire_repeats=wire_repeats,
        dead=states.get("dead", 0), receipts=len(receipts), receipt_duplicates=sum(1 for r in receipts if r["n"] > 1),
        audit_events=audit_events, audit_problems=audit_problems,
        kills=world.kills - kills_before, pg_restarts=world.pg.restarts - pg_before,
        start_failures=world.start_failures, duplicates_answered=books.duplicates_answered,
        retries=dict(books.retries), refused=dict(books.refused), unresolved=books.unresolved,
        load_s=load_s, settle_s=settle_s, elapsed_s=time.monotonic() - t0)


# ---------------------------------------------------------------------------- office scenario


@dataclass
class OfficeResult:
    letters: int
    """Circular letters sent (each to the healthy office and the five unruly ones)."""
    baseline_p50_ms: float
    """Accept -> receipt at the healthy office while every office behaves."""
    unruly_p50_ms: float
    """The same while five offices misbehave."""
    baseline_p90_ms: float
    unruly_p90_ms: float
    samples: tuple[int, int]
    """Letters measured in each phase."""
    undelivered: int
    """(letter, office) deliveries that never arrived after recovery."""
    duplicates: int
    """(letter, office) pairs that arrived under more than one delivery id."""
    dead: int
    attempts: dict[str, int]
    """Requests each unruly office got (they show that it was really tried and refused)."""
    recover_s: float
    """Longest time from the offices' recovery until their backlog had arrived everywhere."""
    long_down_s: float = 0.0
    """Length of the long outage of the "down" office (0: none)."""
    long_recover_s: float = 0.0
    """From its return until everything it missed had arrived."""

    @property
    def ratio(self) -> float:
        return self.unruly_p50_ms / self.baseline_p50_ms if self.baseline_p50_ms else float("nan")

    @property
    def ratio_p90(self) -> float:
        return self.unruly_p90_ms / self.baseline_p90_ms if self.baseline_p90_ms else float("nan")

    @property
    def ok(self) -> bool:
        return self.undelivered == 0 and self.duplicates == 0


async def office_scenario(world: World, *, window_s: float, pairs: int = 3, rate: float = 10.0,
                          warmup_s: float = 2.0, recover_timeout_s: float = 120.0,
                          kinds: tuple[str, ...] = tuple(UNRULY), long_down_s: float = 0.0,
                          log=print) -> OfficeResult:
    """``pairs`` times: a baseline window, an unruly window, a recovery; ``rate`` circular letters a second.

    The windows alternate (baseline, unruly, baseline, unruly, ...) so that what
    else the machine is doing weighs on both alike; each baseline window starts
    only once the previous unruly window's backlog has been delivered, so it
    measures offices that all behave and a queue that holds nothing for them.
    ``kinds`` chooses which of the unruly offices misbehave (all by default).
    ``long_down_s`` adds one long outage of the "down" office at the end
    (letters keep coming meanwhile); all its letters must arrive after it.
    """
    recipients = (HEALTHY, *UNRULY.values())
    healthy = world.offices[HEALTHY]
    unruly = {kind: world.offices[code] for kind, code in UNRULY.items()}
    urls = [gw.url for gw in world.gateways]
    books = Books()
    rng = random.Random(2)
    phase_of: dict[str, str] = {}
    tasks: set[asyncio.Task] = set()

    def by_message(o: Office) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for d, m in list(o.message_ids.items()):
            out.setdefault(m, set()).add(d)
        return out

    def undelivered(message_ids) -> int:
        got = [by_message(world.offices[code]) for code in recipients]
        return sum(1 for m in message_ids for g in got if m not in g)

    recover_s = 0.0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        async def offer(phase: str, duration: float) -> None:
            """Open-loop load: a letter every 1/rate seconds whatever the answers take."""
            start = time.monotonic()
            k = 0
            while True:
                due = start + k / rate
                if due >= start + duration:
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))  # paces the offered load
                mid = f"office-{phase}-{k}-{uuid.uuid4().hex[:8]}"
                phase_of[mid] = phase
                body = letter_bytes(recipients=recipients, message_id=mid)
                t = asyncio.create_task(submit_until_answered(s, urls, body, mid, recipients, books, first=k,
                                                              give_up_at=time.monotonic() + 60, rng=rng))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                k += 1

        async def recover() -> float:
            await unruly["down"].come_up()
            for o in unruly.values():
                o.behaviour = "ok"
            t = time.monotonic()
            if tasks:
                await asyncio.gather(*list(tasks))
            deadline = t + recover_timeout_s
            while undelivered(list(books.accepted)) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # polls a condition with a deadline
            return time.monotonic() - t

        log("offices: warm-up")
        await offer("warmup", warmup_s)
        for n in range(pairs):
            log(f"offices: [{n + 1}/{pairs}] baseline window, every office behaves")
            await offer("baseline", window_s)
            log(f"offices: [{n + 1}/{pairs}] {len(kinds)} offices misbehave ({', '.join(kinds)})")
            for kind in kinds:
                if kind == "down":
                    await unruly["down"].go_down()
                else:
                    unruly[kind].behaviour = kind
            await offer("unruly", window_s)
            recover_s = max(recover_s, await recover())
            log(f"offices: [{n + 1}/{pairs}] recovered; backlog delivered in {recover_s:.1f}s")
        long_recover_s = 0.0
        if long_down_s > 0:
            # one long outage: the office refuses connections while letters keep coming, then returns
            log(f"offices: the down office stays down for {long_down_s:.0f}s")
            await unruly["down"].go_down()
            await offer("long", long_down_s)
            long_recover_s = await recover()
            log(f"offices: the down office is back; its backlog delivered in {long_recover_s:.1f}s")
    accepted = sorted(books.accepted)
    # latency: the gateway's acceptance time (database) -> the healthy office's first receipt
    conn = await asyncpg.connect(world.dsn)
    try:
        accepted_at = {r["message_id"]: r["accepted_at"].timestamp() for r in await conn.fetch(
            "SELECT message_id, accepted_at FROM messages WHERE sender = $1 AND message_id = ANY($2)", OPM, accepted)}
    finally:
        await conn.close()
    first = {}
    for d, m in list(healthy.message_ids.items()):
        first[m] = healthy.first_at[d]
    lat: dict[str, list[float]] = {"baseline": [], "unruly": []}
    for m in accepted:
        if phase_of.get(m) in lat and m in first and m in accepted_at:
            lat[phase_of[m]].append(max(0.0, first[m] - accepted_at[m]) * 1000)
    states = await world.delivery_states(accepted)
    dup = sum(1 for code in recipients for ids in by_message(world.offices[code]).values() if len(ids) > 1)
    return OfficeResult(
        letters=len(accepted), baseline_p50_ms=_median(lat["baseline"]), unruly_p50_ms=_median(lat["unruly"]),
        baseline_p90_ms=_pct(lat["baseline"], 90), unruly_p90_ms=_pct(lat["unruly"], 90),
        samples=(len(lat["baseline"]), len(lat["unruly"])), undelivered=undelivered(accepted), duplicates=dup,
        dead=states.get("dead", 0), attempts={k: o.attempts for k, o in unruly.items()}, recover_s=recover_s,
        long_down_s=long_down_s, long_recover_s=long_recover_s)
