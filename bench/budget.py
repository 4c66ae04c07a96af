"""The CPU budget of one signed letter: each stage's measured cost next to its primitive (bench/submit.py --profile).

How a stage's cost is measured: py-spy samples the gateway processes while
the timed load runs (CPU samples only: idle threads are not sampled); each
sample is given to one stage by the frames on its stack, the most specific
stage first (a log call inside the seal is logging, a trust look-up inside the
signature check is trust). A stage's share of the samples times the gateway
processes' CPU per letter (psutil) is its cost per letter. PostgreSQL is
measured apart (every postgres process, psutil).

The primitive of each stage is measured in the same run, in the load
generator's process, on the same letters: what that stage cannot do without
(one ECDSA verify and the c14n + digests of its references; one ECDSA sign
and the c14n of what it signs; a plain libxml2 parse and the XSD; one durable
single-row insert, client and server side, from the same run's raw insert
rate; an aiohttp server answering the same POST with nothing but 200; one
structlog line).

Why parse + verify + seal + receipt read about twice bench/crypto.py's 0.80 ms (issue 17, 2026-12-07;
bench/gap.py drives the server's own accept path up to storage in-process, on the same letters): not
more work. Under callgrind the server's path costs 6.13 M instructions a letter, bench/crypto.py's calls
5.80 M (+6 %: intake's own checks and the records it reads); each letter is parsed once, each reference
canonicalised and hashed once, each attachment decoded once (the driver fails otherwise). Nor is it the
sampling: the CPU time of ``Intake.check``, the seal and the receipt signature measured inside a running
``gateway serve`` (thread time around the calls) agrees with the stages' py-spy shares here and with the
in-process driver run just before or after (1.33-1.77 against 1.23-1.65 ms a letter, on a machine whose
speed drifted by a third that hour). The rest is where stages are drawn and how bench/crypto.py runs
them: "parse + schema" here holds intake's checks, the records and the letter's SHA-256, which
bench/crypto.py's ``parse_ms`` (libxml2's parse and the XSD) does not; and bench/crypto.py runs each stage
over all letters in a row (0.83-0.91 ms on the submit letters) where the server runs a letter's stages
in turn (1.01-1.03 ms, the same instructions).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from bench.common import post_all
from gateway.core import xml
from pki.xmlsig_parts import DS, c14n, envelope_parts
from tests.support import free_port

#: Stages that own everything below them on a stack (a log call inside the seal is logging, the trust
#: look-up inside the signature check is trust), in this order.
DOMINANT: list[tuple[str, tuple[str, ...]]] = [
    ("logging", ("structlog/", "/logging/__init__.py", "gateway/core/logging.py")),
    ("receipt", ("sign_receipt", "submission_receipt", "gateway/core/receipts.py")),
    ("seal", ("seal_envelope", "seal_tree")),
    ("trust", ("pki/trust.py",)),
    # the delivery side (bench/e2e.py): never on the submit path, which runs no dispatcher
    ("push client", ("adapters/wire.py", "adapters/push.py", "adapters/http.py")),
    # asyncpg's socket writes run in asyncio's transport (they would read as HTTP otherwise)
    ("database client", ("asyncpg/",)),
]
OTHER = "other (exchange, routing, metrics ...)"
#: The rest: the innermost frame that names one of these decides (an accept's bookkeeping under the
#: HTTP handler is "other", the HTTP parser itself is HTTP).
INNERMOST: list[tuple[str, tuple[str, ...]]] = [
    ("signature verify", ("pki/verify.py", "pki/xmlsig_", "pki/sigzone.py", "pki/digests.py")),
    ("parse + schema", ("pki/xmlparse.py", "gateway/core/xml.py", "gateway/core/envelope_reader.py",
                        "gateway/intake/")),
    ("database client", ("gateway/storage/",)),
    (OTHER, ("gateway/exchange/", "gateway/core/", "gateway/delivery/", "prometheus_client/")),
    ("HTTP", ("aiohttp/", "multidict/", "yarl/", "gateway/http/", "asyncio/", "uvloop/", "ssl.py")),
]
STAGES = DOMINANT + INNERMOST
#: The delivery side's own stages (bench/e2e.py): a sample with a frame of the dispatcher
#: (:data:`DELIVERY`) on its stack and no stage of :data:`DOMINANT` above is the dispatcher's
#: bookkeeping, or its database client when asyncpg or (innermost) gateway/storage/ is below; the
#: receipt message's record (gateway/storage/receipts.py, outside the signature) is the dispatcher's.
#: bench/submit.py runs no dispatcher: these never occur on its stacks, and :meth:`StackSampler.shares`
#: names them only when they were sampled, so its table is the same.
DELIVERY = "gateway/delivery/"
DISPATCHER = "dispatcher"
DB_DELIVERY = "database client (delivery)"
DELIVERY_INNERMOST: list[tuple[str, tuple[str, ...]]] = [
    (DISPATCHER, ("gateway/storage/receipts.py", DELIVERY)),
    (DB_DELIVERY, ("gateway/storage/",)),
]
_SUBMIT_STAGES = [s for s, _ in STAGES if s != "push client"]
_ALL_STAGES = list(dict.fromkeys([*(s for s, _ in STAGES), DB_DELIVERY, DISPATCHER]))
#: An HTTP sample whose innermost Python frame is the event loop's own: C code under the loop with no
#: handler above it (socket reads, the client's and the database's alike, asyncpg's protocol, wake-ups).
LOOP = "HTTP: event loop alone"
_LOOP_FRAMES = ("asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py", "asyncio/selector_events.py",
                "/selectors.py", "uvloop/__init__.py")


class StackSampler:
    """py-spy over a process tree for the duration of a ``with`` block: stage shares of the CPU samples."""

    def __init__(self, pid: int, rate: int = 200) -> None:
        self.pid, self.rate = pid, rate
        self.out = Path(tempfile.mkdtemp(prefix="sgw-pyspy-")) / "stacks.txt"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> StackSampler:
        exe = Path(sys.executable).with_name("py-spy")
        self.proc = subprocess.Popen([str(exe), "record", "--pid", str(self.pid), "--subprocesses", "--rate",
                                      str(self.rate), "--format", "raw", "--nonblocking", "--output", str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches to every process of the tree
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def remove(self) -> None:
        """Delete the samples' file and its directory (once :meth:`shares` has read them)."""
        shutil.rmtree(self.out.parent, ignore_errors=True)

    def shares(self) -> dict[str, float]:
        counts: Counter[str] = Counter()
        if not self.out.exists():
            return {}
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            stage = classify(frames)
            counts[stage] += int(n)
            if stage == "HTTP" and loop_alone(frames):
                counts[LOOP] += int(n)
        total = sum(counts[stage] for stage in _ALL_STAGES) or 1
        named = [stage for stage in _ALL_STAGES if stage in _SUBMIT_STAGES or counts[stage]]
        return {stage: counts[stage] / total for stage in [*named, LOOP]}


def classify(frames: list[str]) -> str:
    """The stage of one sampled stack (frames root first, as py-spy writes them)."""
    delivery = any(DELIVERY in frame for frame in frames)
    for stage, markers in DOMINANT:
        if any(marker in frame for frame in frames for marker in markers):
            return DB_DELIVERY if delivery and stage == "database client" else stage
    if delivery:
        for frame in reversed(frames):
            for stage, markers in DELIVERY_INNERMOST:
                if any(marker in frame for marker in markers):
                    return stage
        return DISPATCHER
    for frame in reversed(frames):
        for stage, markers in INNERMOST:
            if any(marker in frame for marker in markers):
                return stage
    return OTHER


def loop_alone(frames: list[str]) -> bool:
    """Whether the innermost Python frame of a sample is the event loop's (:data:`LOOP`)."""
    return bool(frames) and any(marker in frames[-1] for marker in _LOOP_FRAMES)


def per_call_us(fn: Callable[[], object], n: int = 400) -> float:
    """CPU microseconds per call of ``fn`` (best of three runs of ``n``: the least disturbed by other jobs)."""
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def crypto_primitives(signed_letter: bytes, signer) -> dict[str, float]:
    """µs of the cryptographic primitives on one of the run's letters."""

    root = etree.fromstring(signed_letter)
    parts = envelope_parts(root)
    signature = next(parts.signatures.iterchildren(DS + "Signature"))
    signed_info = signature[0]
    refs = [parts.body, *parts.attachments]
    key = signer.certificate.public_key()
    raw = base64.b64decode(signature[1].text)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    si = c14n(signed_info)

    def verify() -> None:
        for el in refs:
            hashlib.sha256(c14n(el)).digest()
        key.verify(der, c14n(signed_info), ec.ECDSA(hashes.SHA256()))

    def seal() -> None:
        for el in [parts.header, parts.body, *parts.attachments, signature]:
            hashlib.sha256(c14n(el)).digest()
        signer.sign(si)

    def receipt() -> None:
        signer.sign(c14n(parts.header))

    schema = xml.load_schema("envelope-v1.xsd")

    def parse_schema() -> None:
        schema.validate(etree.fromstring(signed_letter))

    logger = structlog.wrap_logger(structlog.PrintLogger(open(os.devnull, "w")),  # noqa: SIM115
                                   processors=[structlog.processors.TimeStamper(fmt="iso"),
                                               structlog.processors.JSONRenderer()])
    return {"signature verify": per_call_us(verify), "seal": per_call_us(seal), "receipt": per_call_us(receipt),
            "parse + schema": per_call_us(parse_schema), "trust": per_call_us(lambda: {}.get(si[:32])),
            "logging": per_call_us(lambda: logger.info("message accepted", message_id="x", sender="y",
                                                       recipients=2, message_pk=1))}


async def http_primitive(body: bytes, clients: int, n: int, event_loop: str = "uvloop") -> float:
    """CPU µs per request of an aiohttp server (its own process) answering the same POST with an empty 200,
    on the event loop the gateway serves on (``GATEWAY_EVENT_LOOP``, uvloop by default): asyncio's own
    loop spends more per request, which made the primitive look costlier than the gateway's floor."""

    port = free_port()
    loop = "uvloop.new_event_loop()" if event_loop == "uvloop" else "None"
    code = ("import sys\nimport uvloop\nfrom aiohttp import web\n"
            "async def h(r):\n    await r.read()\n    return web.Response(status=200)\n"
            "app = web.Application(client_max_size=1 << 24)\napp.router.add_post('/', h)\n"
            f"web.run_app(app, host='127.0.0.1', port={port}, print=None, access_log=None, loop={loop})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        for _ in range(100):
            try:
                await post_all(f"http://127.0.0.1:{port}/", [body], headers={}, clients=1)
                break
            except OSError:
                await asyncio.sleep(0.1)
        await post_all(f"http://127.0.0.1:{port}/", [body] * 200, headers={}, clients=clients)
        p = psutil.Process(proc.pid)
        t0 = sum(p.cpu_times()[:2])
        await post_all(f"http://127.0.0.1:{port}/", [body] * n, headers={}, clients=clients)
        return (sum(p.cpu_times()[:2]) - t0) / n * 1e6
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


SUBMIT_ORDER = ["HTTP", "parse + schema", "signature verify", "trust", "seal", "receipt", "database client",
                "PostgreSQL", "logging", OTHER]


def table(measured: dict[str, float], primitive: dict[str, float], notes: dict[str, str],
          order: list[str] = SUBMIT_ORDER) -> str:
    """The budget as a Markdown table (µs per letter), the stages in ``order`` (the issue's, by default)."""
    lines = ["| stage | µs per letter | primitive µs | ratio | note |", "|---|---:|---:|---:|---|"]
    for stage in order:
        m, p = measured.get(stage), primitive.get(stage)
        ratio = f"{m / p:.1f}×" if m is not None and p else "–"
        lines.append(f"| {stage} | {m:.0f} | {'–' if p is None else f'{p:.0f}'} | {ratio} | "
                     f"{notes.get(stage, '')} |" if m is not None else f"| {stage} | – | – | – | |")
    lines.append(f"| **total** | {sum(measured.values()):.0f} | {sum(primitive.values()):.0f} | "
                 f"{sum(measured.values()) / max(1e-9, sum(primitive.values())):.1f}× | |")
    return "\n".join(lines)
