"""The CPU budget of one letter end to end (bench/e2e.py --profile): each stage next to its primitive.

One letter end to end is a signed submission (HTTP, parse + schema, verify, trust, seal, the
submission receipt, its rows), then four pushes (the sealed letter to two offices, a signed
delivery receipt back from each to the sender's office) and their outcomes and receipt rows.

How each stage is measured (µs per letter, the timed letters of the same run):

* the gateway's stages: py-spy's shares of the gateway processes' CPU samples (bench/budget.py's
  :class:`~bench.budget.StackSampler` and ``classify``), times the gateway's CPU per letter (psutil).
  The delivery side's stacks are told by their frames: ``push client`` (adapters/wire.py, push.py),
  ``dispatcher`` (gateway/delivery/: claims, grouping, outcomes, the receipt message's record) and
  ``database client (delivery)`` (asyncpg and gateway/storage/ under the dispatcher). ``receipt``
  holds three signatures a letter: the submission receipt and the two delivery receipts;
* PostgreSQL (every postgres process), the offices' processes (bench/offices.py) and the load
  generator (bench/e2e.py's own process): their CPU per letter (psutil, process_time), apart.

The primitives, measured in the same run (the database's on its fresh database before the gateway
starts, the others after the timed load), in the load generator's process (or a minimal server it
starts) on the same bytes: bench/budget.py's (the ECDSA verify with its references' c14n and digests,
the sign with the c14n it signs, a plain parse and the XSD, a structlog line, an aiohttp server
answering the submit's POST with an empty 200; ECDSA P-256 sign and verify alone are in the notes and
the figures line, ``ecdsa_sign_us``/``ecdsa_verify_us``); the push: one HTTP/1.1
exchange of the pushed letter's bytes on adapters/wire.py's ``Wire`` against a minimal loopback
server (:data:`MINIMAL_SERVER`: reads a ``Content-Length`` request, answers an empty 200), its client
CPU on uvloop (the gateway's loop) and the server's CPU per request (the offices' primitive); the same
exchange of the submitted letter on asyncio's loop is the load generator's. The database: one durable
single-row insert of the letter's bytes, client and server, from the raw insert rate at the run's
concurrency (as bench/submit.py), for the submission; for the delivery side the row writes a letter
makes (:data:`RECEIPT_ROWS` receipt messages with a real receipt's bytes, :data:`NARROW_ROWS` narrow
rows: outcomes and the receipts' deliveries, an UPDATE taken as dear as a narrow INSERT), each at the
per-row cost of durable inserts of :data:`BATCH` rows a commit (the gateway writes claims, outcomes and
receipt rows in batches: commits are what batching saves, the rows' own writes are not). Claims and
the audit rows are not in it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import asyncpg
import uvloop
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.wire import Wire
from bench.budget import (
    DB_DELIVERY,
    DISPATCHER,
    LOOP,
    OTHER,
    crypto_primitives,
    http_primitive,
    per_call_us,
    table,
)
from bench.common import postgres_cpu
from bench.submit import raw_insert_rate
from gateway.core.receipts import delivery_receipt_envelope
from pki.receipts import sign_receipt
from tests.support import free_port

#: HTTP exchanges a letter: the sealed letter to two offices, a delivery receipt back from each.
EXCHANGES = 4
#: Receipt signatures a letter: the submission receipt and the two delivery receipts.
RECEIPTS = 3
#: Row writes a letter on the delivery side: the two receipt messages (their bytes), and six narrow
#: rows: the two letter deliveries' outcomes, the receipts' two deliveries and their outcomes.
RECEIPT_ROWS, NARROW_ROWS = 2, 6
#: Rows a commit in the delivery side's database primitive, and letters an exchange in the batching figure.
BATCH = 8
#: The end-to-end target: letters/s on this machine's cores.
TARGET_PER_S = 500
ORDER = ["HTTP", "parse + schema", "signature verify", "trust", "seal", "receipt", "database client", "logging",
         OTHER, "push client", DISPATCHER, DB_DELIVERY, "PostgreSQL", "offices", "load generator"]

#: The office side's primitive: reads a ``Content-Length`` request and answers an empty 200; a request to
#: ``/cpu`` is answered with its CPU seconds so far (``time.process_time``: psutil counts 10 ms ticks).
MINIMAL_SERVER = """\
import asyncio, sys, time
OK = b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n"
class Minimal(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf, self.need, self.cpu = transport, bytearray(), -1, False
    def data_received(self, data):
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                end = buf.find(b"\\r\\n\\r\\n")
                if end < 0:
                    return
                at = buf.find(b"Content-Length: ", 0, end)
                self.need = int(buf[at + 16:buf.index(b"\\r\\n", at)]) if at >= 0 else 0
                self.cpu = buf.startswith(b"POST /cpu ")
                del buf[:end + 4]
            if len(buf) < self.need:
                return
            del buf[:self.need]
            self.need = -1
            if self.cpu:
                cpu = repr(time.process_time()).encode()
                self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(cpu), cpu))
            else:
                self.transport.write(OK)
async def main(port):
    await asyncio.get_running_loop().create_server(Minimal, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1])))
"""


async def _exchanges(url: str, body: bytes, clients: int, n: int) -> tuple[float, float]:
    """(client, server) CPU µs per exchange: best of three rounds of ``n`` at ``clients`` in flight."""
    wire = Wire(per_host=clients)
    cpu_url = url.rsplit("/", 2)[0] + "/cpu"

    async def server_cpu() -> float:
        return float((await wire.post(cpu_url, b"", {}, timeout=60)).body)
    headers = {"Content-Type": "application/xml", "X-Saraban-Delivery-Id": str(uuid.uuid4()),
               "X-Saraban-Message-Id": str(uuid.uuid4()), "X-Saraban-Sender": "bench", "X-Saraban-Attempt": "1"}

    async def post(k: int) -> None:
        todo = iter(range(k))

        async def one() -> None:
            for _ in todo:
                if (await wire.post(url, body, headers, timeout=60)).status != 200:
                    raise RuntimeError("the minimal server did not answer 200")

        await asyncio.gather(*(one() for _ in range(min(k, clients))))

    try:
        for _ in range(100):
            try:
                await post(1)
                break
            except OSError:  # (WireError too) not listening yet
                await asyncio.sleep(0.1)
        await post(200)
        best = (float("inf"), float("inf"))
        for _ in range(3):
            s0, c0 = await server_cpu(), time.process_time()
            await post(n)
            best = min(best[0], (time.process_time() - c0) / n * 1e6), min(best[1], (await server_cpu() - s0) / n * 1e6)
        return best
    finally:
        wire.close()


def exchange_primitive(body: bytes, clients: int, n: int,
                       loop_factory: Callable[[], asyncio.AbstractEventLoop] | None) -> tuple[float, float]:
    """(client, server) CPU µs of one exchange of ``body`` on ``Wire`` against :data:`MINIMAL_SERVER`
    (its own process, asyncio's loop as bench/offices.py's), the client on ``loop_factory``'s loop."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", MINIMAL_SERVER, str(port)], start_new_session=True)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_exchanges(f"http://127.0.0.1:{port}/saraban/inbox", body, clients, n))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


async def batched_insert(dsn: str, rows: int, concurrency: int, payload: bytes, name: str, batch: int = BATCH
                         ) -> tuple[float, float]:
    """(client, PostgreSQL) CPU µs per row of durable inserts of ``batch`` rows a commit (one statement),
    each connection's statement prepared before the count (as the gateway's are after its warm-up)."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (id bigserial PRIMARY KEY, k text UNIQUE, body bytea)")
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    sql = f"INSERT INTO {name} (k, body) SELECT * FROM unnest($1::text[], $2::bytea[])"

    async def worker(starts) -> None:
        for i in starts:
            await pool.execute(sql, [f"b{j}" for j in range(i, i + batch)], [payload] * batch)

    try:
        warm = iter(range(-batch * concurrency, 0, batch))  # one statement on each connection
        await asyncio.gather(*(worker([next(warm)]) for _ in range(concurrency)))
        done = rows - rows % batch
        starts = iter(range(0, done, batch))
        pg0, c0 = await postgres_cpu(dsn), time.process_time()
        await asyncio.gather(*(worker(starts) for _ in range(concurrency)))
        c1 = time.process_time()
        pg1 = await postgres_cpu(dsn)
    finally:
        await pool.close()
    return (c1 - c0) / done * 1e6, float("nan") if pg0 is None or pg1 is None else (pg1 - pg0) / done * 1e6


def receipt_bytes(signer) -> bytes:
    """What a delivery receipt's message row carries: the receipt as built and as signed (~4 KB)."""
    _, built = delivery_receipt_envelope(delivery_id=uuid.uuid4(), message_id=str(uuid.uuid4()),
                                         conversation_id=None, sender="bench-sender", recipient="bench-office",
                                         sha256_hex="ab" * 32, at=dt.datetime.now(dt.UTC))
    return bytes(built) + sign_receipt(bytes(built), signer)


def database_primitives(dsn: str, letter: bytes, receipt: bytes, clients: int, rows: int) -> dict[str, float]:
    """µs of the database's primitives (client and PostgreSQL), measured now on ``dsn``'s server, before
    the gateway starts, as bench/submit.py does (after the run, PostgreSQL's autovacuum of the run's
    tables would be counted in): a durable single-row insert of the letter; a row of durable inserts
    of :data:`BATCH` rows a commit, with the letter's bytes, a receipt's and narrow (32 bytes)."""
    single: dict[str, float] = {}
    asyncio.run(raw_insert_rate(dsn, rows, clients, letter, single))
    letter_client, letter_pg = asyncio.run(batched_insert(dsn, rows, clients, letter, "bench_letters"))
    receipt_client, receipt_pg = asyncio.run(batched_insert(dsn, rows, clients, receipt, "bench_receipts"))
    # (4x the rows: a narrow row costs ~50 µs, and psutil counts PostgreSQL's CPU in 10 ms ticks)
    narrow_client, narrow_pg = asyncio.run(batched_insert(dsn, 4 * rows, clients, b"x" * 32, "bench_narrow"))
    return {"single_client_us": single["database client"], "single_pg_us": single.get("PostgreSQL", float("nan")),
            "letter_client_us": letter_client, "letter_pg_us": letter_pg,
            "receipt_client_us": receipt_client, "receipt_pg_us": receipt_pg,
            "narrow_client_us": narrow_client, "narrow_pg_us": narrow_pg}


def primitives(*, db: dict[str, float], letter: bytes, pushed: bytes, signer, clients: int, n: int
               ) -> tuple[dict[str, float], dict[str, float]]:
    """(µs a letter of each stage's primitive, the per-exchange figures) measured now, in this process;
    ``db``: :func:`database_primitives`'."""
    push_client, office = exchange_primitive(pushed, clients, min(n, 1000), uvloop.new_event_loop)
    loadgen, _ = exchange_primitive(letter, clients, min(n, 1000), None)
    p = crypto_primitives(letter, signer)
    key = ec.generate_private_key(ec.SECP256R1())
    signed_info, public = letter[:600], key.public_key()  # (about a SignedInfo's c14n)
    signature = key.sign(signed_info, ec.ECDSA(hashes.SHA256()))
    bare = {"ecdsa_sign_us": per_call_us(lambda: key.sign(signed_info, ec.ECDSA(hashes.SHA256()))),
            "ecdsa_verify_us": per_call_us(lambda: public.verify(signature, signed_info, ec.ECDSA(hashes.SHA256())))}
    p["receipt"] *= RECEIPTS
    p["HTTP"] = asyncio.run(http_primitive(letter, clients, min(n, 2000)))
    p.update({"database client": db["single_client_us"],
              DB_DELIVERY: RECEIPT_ROWS * db["receipt_client_us"] + NARROW_ROWS * db["narrow_client_us"],
              "PostgreSQL": db["single_pg_us"] + RECEIPT_ROWS * db["receipt_pg_us"] + NARROW_ROWS * db["narrow_pg_us"],
              "push client": EXCHANGES * push_client, "offices": EXCHANGES * office, "load generator": loadgen})
    return p, {"exchange_client_us": push_client, "exchange_server_us": office, **db, **bare}


def notes(loop_us: float, exchange: dict[str, float]) -> dict[str, str]:
    """Each row's note: what its primitive is, or why it has none."""
    return {
        "HTTP": f"the submit's server side (aiohttp on uvloop, empty 200); {loop_us:.0f} µs in the event loop alone "
                "(no handler frame: the submit's, the pushes' and the database's socket reads; the push client's "
                "primitive counts its own)",
        "signature verify": f"one ECDSA P-256 verify ({exchange['ecdsa_verify_us']:.0f} alone) + the references' "
                            "c14n and SHA-256",
        "seal": f"one ECDSA P-256 sign ({exchange['ecdsa_sign_us']:.0f} alone) + the c14n it covers",
        "parse + schema": "a plain libxml2 parse + the envelope XSD",
        "receipt": f"{RECEIPTS} signatures a letter (submission + 2 delivery receipts), each one ECDSA sign + c14n",
        "database client": "the submission: one durable single-row insert (asyncpg), as bench/submit.py "
                           f"({exchange['letter_client_us']:.0f} a row of {BATCH}-row commits)",
        "trust": "a cache look-up (the signer's path is validated once)",
        OTHER: "no primitive: exchange/accept bookkeeping, routing, metrics, the group committer",
        "push client": f"{EXCHANGES} exchanges × {exchange['exchange_client_us']:.0f} µs: Wire (uvloop) against a "
                       "minimal server, the pushed letter's bytes",
        DISPATCHER: "no primitive: claims, grouping, outcomes, the receipt message's record",
        DB_DELIVERY: f"the client's side of the PostgreSQL row's {RECEIPT_ROWS + NARROW_ROWS} row writes",
        "PostgreSQL": f"all processes; the submission's durable single-row insert ({exchange['single_pg_us']:.0f}; "
                      f"{exchange['letter_pg_us']:.0f} a row of {BATCH}-row commits) + "
                      f"{RECEIPT_ROWS} receipt rows × {exchange['receipt_pg_us']:.0f} + {NARROW_ROWS} narrow rows × "
                      f"{exchange['narrow_pg_us']:.0f} (outcomes, receipt deliveries), a row of {BATCH}-row commits",
        "offices": f"{EXCHANGES} requests × {exchange['exchange_server_us']:.0f} µs of the minimal server (asyncio)",
        "load generator": "one exchange of the letter on Wire (asyncio's loop), the submit's client side",
    }


def figures(measured: dict[str, float], primitive: dict[str, float], exchange: dict[str, float],
            cores: int) -> dict[str, float]:
    """What the table says about the target: the push's cost per exchange and what batching could save,
    and the CPU a letter if every stage ran at its primitive (1x) or twice it (2x). A stage without a
    primitive (the bookkeeping rows) counts at its measured cost in both. ``*_batched_ms``: the same with
    the submission's row at a row of :data:`BATCH`-row commits (client and server) instead of
    bench/submit.py's single-row commit (the gateway commits submissions in groups too)."""
    bare = sum(v for s, v in measured.items() if not primitive.get(s))
    at_primitive = sum(primitive[s] for s in measured if primitive.get(s))
    push_letter = measured.get("push client", 0.0) + measured.get("offices", 0.0)
    floor_1x, floor_2x = (at_primitive + bare) / 1000, (2 * at_primitive + bare) / 1000
    grouped = (exchange["single_client_us"] - exchange["letter_client_us"]
               + exchange["single_pg_us"] - exchange["letter_pg_us"]) / 1000
    return {"push_exchange_us": push_letter / EXCHANGES,
            "push_exchange_primitive_us": exchange["exchange_client_us"] + exchange["exchange_server_us"],
            "push_letter_us": push_letter,
            # k letters an exchange: at most the exchange's whole cost but one k-th of it, as if none of it grew
            # with the letters (the bytes' hashing and copying do)
            "batch8_saves_us": push_letter * (1 - 1 / BATCH), "no_primitive_us": bare,
            "measured_ms": sum(measured.values()) / 1000, "floor_1x_ms": floor_1x, "floor_2x_ms": floor_2x,
            "floor_1x_per_s": cores * 1000 / floor_1x, "floor_2x_per_s": cores * 1000 / floor_2x,
            "floor_1x_batched_ms": floor_1x - grouped, "floor_2x_batched_ms": floor_2x - 2 * grouped,
            "target_ms": cores * 1000 / TARGET_PER_S}


def sentence(f: dict[str, float]) -> str:
    """The figures as one line for the reader."""
    return (f"push: {EXCHANGES} exchanges × {f['push_exchange_us']:.0f} µs (gateway client + office; primitive "
            f"{f['push_exchange_primitive_us']:.0f}) = {f['push_letter_us']:.0f} µs a letter; {BATCH} letters an "
            f"exchange would save at most {f['batch8_saves_us']:.0f} µs a letter. All processes: measured "
            f"{f['measured_ms']:.2f} ms a letter; every stage at its primitive {f['floor_1x_ms']:.2f} ms "
            f"({f['floor_1x_per_s']:.0f}/s), at 2× {f['floor_2x_ms']:.2f} ms ({f['floor_2x_per_s']:.0f}/s), "
            f"stages without a primitive at their measured {f['no_primitive_us']:.0f} µs (the submission's row "
            f"committed {BATCH} a commit: {f['floor_1x_batched_ms']:.2f} and {f['floor_2x_batched_ms']:.2f} ms); "
            f"{TARGET_PER_S}/s needs ≤ {f['target_ms']:.1f} ms")


def measured_stages(shares: dict[str, float], per_ms: dict[str, float]) -> tuple[dict[str, float], float]:
    """(µs a letter of each stage, µs of the gateway's in the event loop alone) from py-spy's shares and
    the processes' CPU a letter (ms: ``gateway``, ``postgres``, ``offices``, ``client``)."""
    gateway_us = per_ms["gateway"] * 1000
    measured = {stage: share * gateway_us for stage, share in shares.items()}
    loop_us = measured.pop(LOOP, 0.0)
    measured.update({"PostgreSQL": per_ms["postgres"] * 1000, "offices": per_ms["offices"] * 1000,
                     "load generator": per_ms["client"] * 1000})
    return measured, loop_us


def report(shares: dict[str, float], per_ms: dict[str, float], *, db: dict[str, float], letter: bytes,
           pushed: bytes, signer, clients: int, n: int) -> dict[str, float]:
    """Measure the other primitives, print the figures' line and the table (last), return the figures."""
    measured, loop_us = measured_stages(shares, per_ms)
    primitive, exchange = primitives(db=db, letter=letter, pushed=pushed, signer=signer, clients=clients, n=n)
    f = figures(measured, primitive, exchange, os.cpu_count() or 1)
    print(sentence(f))
    print(table(measured, {s: primitive[s] for s in measured if s in primitive}, notes(loop_us, exchange), ORDER))
    return {**f, "ecdsa_sign_us": exchange["ecdsa_sign_us"], "ecdsa_verify_us": exchange["ecdsa_verify_us"]}
