"""Failover under load: gateways on a replicated PostgreSQL lose the primary; the standby takes over.

The world (:class:`FailoverWorld`) is the chaos harness's (:class:`tests.chaos.harness.World`:
real ``gateway serve`` processes, offices on loopback that deduplicate by
delivery id), on a :class:`tests.failover.pair.ReplicatedPair` instead of a
single server. Every gateway gets one multi-host URL,
``postgresql://…@127.0.0.1:P1,127.0.0.1:P2/failover?target_session_attrs=read-write``:
a new connection goes to whichever node takes writes. The gateways migrate the
database themselves when they start; the harness only reads it.

:func:`failover_scenario`: closed-loop clients submit letters (each to two
offices) round robin to the gateways, retrying with the *same bytes* (same
message id) on a connection error, a timeout, 503 or 429, until they get 202 or
200 (the harness's :func:`~tests.chaos.harness.submit_until_answered`). After
``before_s`` the primary gets SIGKILL (postmaster and every backend: the
machine is gone); ``down_s`` later (the time a Patroni-like manager takes to
notice) the standby is promoted; the load goes on for ``after_s``. Then
everything settles and the books are checked against the *new primary*:

* every letter a client saw accepted is stored there (``missing_in_db``: a 2xx
  for a letter it does not hold is a lost letter), and reached each of its
  offices (``lost``) under exactly one delivery id (``duplicates``; a delivery
  id arriving twice is at-least-once on the wire, counted as ``wire_repeats``);
* one delivery receipt per (letter, recipient) went back to the sender;
* the audit chain verifies from the genesis across the failover, both through
  the harness (:meth:`World.verify_audit`) and the ``gateway audit verify
  --database`` command run against the multi-host URL;
* ``recover_s``: from the start of the promotion to the first letter accepted
  after it (must be under 30 s); ``unavailable_s``: the same from the SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from tests.chaos.harness import REQUEST_TIMEOUT_S, Books, World, submit_until_answered
from tests.failover.pair import ReplicatedPair
from tests.support import (
    CMI,
    KKN,
    OPM,
    ROOT,
    GatewayProcess,
    Office,
    directory_dict,
    free_port,
    gateway_env,
    letter_bytes,
)

DATABASE = "failover"
#: The promise: letters are taken again within this many seconds of the promotion.
RECOVERY_LIMIT_S = 30.0


@dataclass
class FailoverWorld(World):
    """Gateways and offices of the chaos harness, on a primary and a synchronous standby."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sgw-failover-", dir="/tmp")))
    pair: ReplicatedPair | None = None

    async def open(self) -> FailoverWorld:
        if self.lease_s <= REQUEST_TIMEOUT_S:
            raise ValueError(f"lease_s {self.lease_s} must exceed the request timeout {REQUEST_TIMEOUT_S}")
        self.pair = ReplicatedPair()
        await asyncio.to_thread(self.pair.start, DATABASE)
        self.dsn = self.pair.dsn(DATABASE)
        self.offices[CMI] = await Office(name="cmi").start()
        self.offices[KKN] = await Office(name="kkn").start()
        directory = self.workdir / "directory.json"
        data = directory_dict({code: {"kind": "push", "url": o.url} for code, o in self.offices.items()})
        directory.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        for i in range(self.processes):
            port = free_port()
            env = gateway_env(
                database_url=self.dsn, directory=directory, port=port, data_dir=self.workdir,
                GATEWAY_LOG_LEVEL="warning",
                GATEWAY_DISPATCH_LEASE_S=str(self.lease_s), GATEWAY_DISPATCH_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
                GATEWAY_RETRY_INITIAL_DELAY_S="0.2", GATEWAY_RETRY_MAX_DELAY_S="2",
                GATEWAY_RETRY_MAX_ATTEMPTS="1000", GATEWAY_POOL_MAX="10", GATEWAY_RATE_PER_AGENCY="0",
                **self.env)
            gw = GatewayProcess(env=env, port=port, log_path=self.workdir / f"gateway-{i}.log")
            self.gateways.append(gw)
            # one at a time: the first start migrates and creates the development PKI in the shared data dir
            await self.start_gateway(gw)
        return self

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self.pair is not None:
                await asyncio.to_thread(self.pair.stop)

    def logs_tail(self, n: int = 2000) -> str:
        pg = self.pair.logs_tail(n) if self.pair is not None else ""
        return f"{super().logs_tail(n)}\n{pg}"

    async def audit_verify_command(self, timeout: float = 60.0) -> tuple[int, str]:
        """``gateway audit verify --database --cert seal.pem`` on the multi-host URL: (exit code, output)."""
        cert = self.workdir / "pki" / "gateway" / "seal.pem"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli.main", "audit", "verify", "--database", "--cert", str(cert),
            env=self.gateways[0].env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return -9, "gateway audit verify timed out"
        return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")


@dataclass
class FailoverResult:
    accepted: int
    """Letters the clients saw answered 202/200."""
    accepted_before_kill: int
    accepted_after_promotion: int
    accepted_while_down: int
    """Answered 2xx after the primary was gone, before the promotion: only answers already on their way."""
    expected: int
    """Deliveries the accepted letters need (letters x recipients)."""
    delivered: int
    lost: int
    """Deliveries of accepted letters that never reached their office."""
    missing_in_db: int
    """Accepted letters the new primary does not hold."""
    duplicates: int
    """(letter, office) pairs that arrived under more than one delivery id."""
    wire_repeats: int
    """Repeated arrivals of the same delivery id (at-least-once; the office deduplicates)."""
    dead: int
    receipts: int
    receipt_duplicates: int
    audit_events: int
    audit_problems: list[str]
    """What the harness's verifier and the ``gateway audit verify`` command found wrong."""
    duplicates_answered: int
    """200 answers: a retry of a letter the gateway already held (its first commit had landed)."""
    retries: dict[str, int]
    refused: dict[str, int]
    unresolved: int
    kill_at_s: float
    """When the primary was gone (SIGKILL sent, every process dead), from the start of the load."""
    down_s: float
    """SIGKILL -> promotion started (the manager's detection time)."""
    promote_s: float
    """How long the promotion took (reset synchronous_standby_names, pg_ctl promote -w)."""
    recover_s: float
    """Promotion started -> first letter answered 2xx after it (inf: never)."""
    unavailable_s: float
    """SIGKILL -> first letter answered 2xx after the promotion started (inf: never)."""
    load_s: float
    settle_s: float
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicates == 0 and self.missing_in_db == 0 and not self.refused
                and self.unresolved == 0 and not self.audit_problems and self.receipts == self.expected
                and self.receipt_duplicates == 0 and self.recover_s < RECOVERY_LIMIT_S)


def _by_message(office: Office) -> dict[str, set[str]]:
    """Message id -> the delivery ids under which the office recorded it."""
    out: dict[str, set[str]] = {}
    for d, m in list(office.message_ids.items()):
        out.setdefault(m, set()).add(d)
    return out


async def failover_scenario(world: FailoverWorld, *, before_s: float, down_s: float, after_s: float,
                            clients: int = 6, settle_timeout_s: float = 90.0, seed: int = 1,
                            log: Callable[[str], None] = print) -> FailoverResult:
    assert world.pair is not None, "open the world first"
    pair = world.pair
    rng = random.Random(seed)
    recipients = (CMI, KKN)
    offices = {code: world.offices[code] for code in recipients}
    urls = [gw.url for gw in world.gateways]
    books = Books()
    answered_at: dict[str, float] = {}
    t0 = time.monotonic()
    stop_at = t0 + before_s + down_s + after_s
    give_up_at = stop_at + 60.0
    kill_at = promote_started = promote_done = float("inf")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients * 4)) as s:
        async def client(n: int) -> None:
            k = 0
            while time.monotonic() < stop_at:
                mid = f"failover-{n}-{k}-{uuid.uuid4().hex[:8]}"
                body = letter_bytes(recipients=recipients, message_id=mid)
                await submit_until_answered(s, urls, body, mid, recipients, books, first=n + k,
                                            give_up_at=give_up_at, rng=rng)
                if mid in books.accepted:
                    answered_at[mid] = time.monotonic()
                k += 1

        async def failover() -> None:
            nonlocal kill_at, promote_started, promote_done
            await asyncio.sleep(before_s)  # the schedule: load on a healthy pair first
            log(f"[{time.monotonic() - t0:5.1f}s] SIGKILL the primary ({len(books.accepted)} letters accepted)")
            await asyncio.to_thread(pair.kill_primary)
            kill_at = time.monotonic()  # every process of the primary is gone (it committed until then)
            await asyncio.sleep(max(0.0, kill_at + down_s - time.monotonic()))  # the manager's detection time
            log(f"[{time.monotonic() - t0:5.1f}s] promoting the standby")
            promote_started = time.monotonic()
            await asyncio.to_thread(pair.promote)
            promote_done = time.monotonic()
            log(f"[{promote_done - t0:5.1f}s] the standby is the primary ({promote_done - promote_started:.2f}s)")

        async with asyncio.TaskGroup() as tasks:  # a failing failover cancels the clients
            tasks.create_task(failover())
            for n in range(clients):
                tasks.create_task(client(n))
    load_s = time.monotonic() - t0
    accepted = sorted(books.accepted)
    after = sorted(t for t in answered_at.values() if t >= promote_started)
    recover_s = after[0] - promote_started if after else float("inf")
    log(f"[{load_s:5.1f}s] load over: {len(accepted)} letters accepted, first after the promotion "
        f"{recover_s:.2f}s into it; settling")

    def missing() -> int:
        got = {code: _by_message(o) for code, o in offices.items()}
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

    got = {code: _by_message(o) for code, o in offices.items()}
    expected = sum(len(books.accepted[m]) for m in accepted)
    delivered = sum(1 for m in accepted for r in books.accepted[m] if m in got[r])
    duplicates = sum(1 for g in got.values() for ids in g.values() if len(ids) > 1)
    wire_repeats = sum(len(o.seen) - len(set(o.seen)) for o in offices.values())
    # the books are checked on the new primary itself, by its own port
    conn = await asyncpg.connect(pair.standby.dsn(DATABASE))
    try:
        if await conn.fetchval("SELECT pg_is_in_recovery()"):
            raise AssertionError("the new primary is in recovery")
        in_db = {r["message_id"] for r in await conn.fetch(
            "SELECT message_id FROM messages WHERE sender = $1 AND message_id = ANY($2)", OPM, accepted)}
        receipts = await conn.fetch(
            "SELECT ref_to_message_id, sender, count(*) AS n FROM messages WHERE message_type = 'receipt'"
            " AND ref_to_message_id = ANY($1) GROUP BY ref_to_message_id, sender", accepted)
    finally:
        await conn.close()
    states = await world.delivery_states()
    audit_events, audit_problems = await world.verify_audit()
    code, output = await world.audit_verify_command()
    if code != 0:
        audit_problems.append(f"gateway audit verify --database exited {code}: {output.strip()[-1000:]}")
    return FailoverResult(
        accepted=len(accepted),
        accepted_before_kill=sum(1 for t in answered_at.values() if t < kill_at),
        accepted_after_promotion=len(after),
        accepted_while_down=sum(1 for t in answered_at.values() if kill_at <= t < promote_started),
        expected=expected, delivered=delivered, lost=expected - delivered, missing_in_db=len(accepted) - len(in_db),
        duplicates=duplicates, wire_repeats=wire_repeats, dead=states.get("dead", 0), receipts=len(receipts),
        receipt_duplicates=sum(1 for r in receipts if r["n"] > 1), audit_events=audit_events,
        audit_problems=audit_problems, duplicates_answered=books.duplicates_answered, retries=dict(books.retries),
        refused=dict(books.refused), unresolved=books.unresolved, kill_at_s=kill_at - t0,
        down_s=promote_started - kill_at, promote_s=promote_done - promote_started, recover_s=recover_s,
        unavailable_s=(after[0] - kill_at) if after else float("inf"), load_s=load_s, settle_s=settle_s,
        elapsed_s=time.monotonic() - t0)
