"""Would the server save CPU by running the accept path's stages over the letters in flight (stage-major)?

bench/crypto.py runs each stage over all its letters in a row and measured 10-20% less time than a
letter's stages run in turn, for the same instructions (bench/gap.py). Suppose the server took the k
letters waiting and ran each CPU stage over all k before the next stage (a micro-batch). This measures
what that would save, with the server's own objects (:func:`bench.gap.accept_path`: ``Intake`` with
``Trust.verifier``, ``PkiSealer``) on bench/submit.py's signed letters:

* ``letter``: each letter through the accept path in turn, as ``Acceptance`` runs it:
  ``Intake.check`` under ``pki.ltv.capturing``, the submission receipt built and signed, the seal;
* ``stage-k``: micro-batches of k letters, each stage over the k letters before the next:
  parse (hardened parse, comments, processing instructions, attachment count), XSD, records (the
  proxies held, the signature zone, attachment sizes, sender, header records, policy, lists), verify
  (``Trust.verifier`` under ``capturing``, the decoded contents taken, the attachment records, the
  SHA-256), receipt, seal: ``Intake.check``'s body split at those lines (:func:`stage_major`), the same
  calls in the same order for each letter.

CPU time is ``time.thread_time`` around the accept work only (the interleaved work is outside it),
per block of 24 letters (one letter-major block and one of each k, rotated in turn each round),
``--rounds`` rounds, min (and median) of the blocks. ``--interleave`` runs other work between the
letters as the server does between requests, untimed: before each letter (letter-major) or the k
units before each batch (stage-major, the k requests arriving), so the same other work in both:

* ``none``: nothing;
* ``code``: per letter, aiohttp's HTTP request parser (``aiohttp._http_parser``) over a POST carrying
  the letter, one structlog line rendered as the server renders (JSON) to /dev/null, and a
  ``json.dumps`` of a 202 answer: other code and branches, as the server's HTTP edge and logging;
* ``buffer``: per letter, a copy of a 4 MiB buffer (the data caches flushed, not the code).

    python bench/stages.py --interleave code
    python bench/stages.py --quick --interleave none
    valgrind --tool=callgrind --dump-before=getloadavg --callgrind-out-file=/tmp/st.out \\
        python bench/stages.py --instructions 48   # parts 2..6: letter, stage-1, -2, -4, -8

The figures are printed last, on one line of key=value pairs: ``letter_ms`` and ``stage<k>_ms`` (min ms
a letter), their 10th percentiles (``_p10``) and medians (``_med``), ``ratio<k>`` = stage-k min over
letter-major min and ``ratio<k>_p10`` the same for the 10th percentiles.

Found (2026-12-07, issue 17, 2 cores, load 2.9-5.3, 80 rounds, 4-5 runs a setting; ratio of mins, medians
of the runs): stage-major over letter-major k=1 0.98-1.0, k=2 0.93, k=4 0.86-0.88, k=8 0.83-0.85, k=24
0.78, the same with no interleaved work, ``code`` or ``buffer`` (letter-major 1.08-1.24 ms a letter,
stage-8 0.89-1.02). The same instructions: 6.134 M a letter letter-major, 6.115-6.133 M stage-major
(callgrind, 48 letters a way). Every stage gains (k=1 -> 8, ms a letter): parse 0.14 -> 0.10, XSD 0.10
-> 0.07, records 0.13 -> 0.10, receipt 0.11 -> 0.08, seal 0.20 -> 0.17, verify 0.43 -> 0.40. Callgrind's
simulated caches see little of it (k=8: I1 misses -2%, conditional branch mispredictions -9%).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpRequestParser
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gap import AcceptPath, accept_path, mark  # noqa: E402
from gateway.core import xml  # noqa: E402
from gateway.core.envelope_reader import read_attachments, read_envelope  # noqa: E402
from gateway.core.errors import AuthError, EnvelopeError  # noqa: E402
from gateway.core.receipts import submission_receipt  # noqa: E402
from gateway.core.signing import VERIFIED_CONTENTS, VERIFIED_TREES  # noqa: E402
from gateway.intake.checks import (  # noqa: E402
    _ENVELOPE,
    _MESSAGE_ID,
    _SENDER,
    SCHEMA,
    CheckedEnvelope,
    _attachment_items,
    _check_attachment_limits,
    _header_text,
    _match_parts,
    _refuse_comments,
    _refuse_processing_instructions,
)
from pki.ltv import capturing  # noqa: E402
from pki.sigzone import check_signature_zone  # noqa: E402
from tests.support import OPM  # noqa: E402

KS = (1, 2, 4, 8)
BLOCK = 24  # letters a block: a whole number of batches for every k
Accepted = tuple[CheckedEnvelope, bytes, bytes]  # (checked, signed receipt, sealed bytes)


class Server:
    """The accept path's objects and the fixed time its receipts are stamped with."""

    def __init__(self, path: AcceptPath, now: dt.datetime | None = None) -> None:
        self.path = path
        self.intake = path.intake
        self.sealer = path.sealer
        self.gateway_code = path.settings.gateway_code
        self.now = now or dt.datetime.now(dt.UTC)

    def receipt(self, checked: CheckedEnvelope) -> bytes:
        h = checked.envelope.header  # Acceptance.store, before the database
        built = submission_receipt(message_id=h.message_id, sender=h.sender, sha256_hex=checked.sha256_hex,
                                   at=self.now, gateway_code=self.gateway_code)
        return self.sealer.sign_receipt(built)


async def letter_major(p: Server, letters: Sequence[bytes]) -> list[Accepted]:
    """Each letter through the whole path in turn, as ``Acceptance.submit`` runs it up to storage."""
    out = []
    for data in letters:
        with capturing():  # Acceptance._check
            checked = await p.intake.check(data, agency=OPM, channel="native")
        receipt = p.receipt(checked)  # Acceptance.store: the receipt, then the seal
        out.append((checked, receipt, p.sealer.seal_envelope(checked.raw)))
    return out


STAGES = ("parse", "xsd", "records", "verify", "receipt", "seal")


async def stage_major(p: Server, letters: Sequence[bytes], laps: dict[str, float] | None = None) -> list[Accepted]:
    """``Intake.check`` (a parsed native envelope, a verifier, no parts, no PDF checker) split at its
    stage lines, each stage over all ``letters`` before the next; then the receipts, then the seals.
    ``laps``: each of :data:`STAGES`' thread CPU seconds is added to it."""
    intake = p.intake
    clock = time.thread_time
    t = clock()

    def lap(stage: str) -> None:
        nonlocal t
        if laps is not None:
            now = clock()
            laps[stage] = laps.get(stage, 0.0) + now - t
            t = now
    assert intake.verifier is not None and intake.pdf_checker is None
    roots = []
    for data in letters:  # parse
        root = xml.parse(data, max_bytes=intake.max_bytes)
        structlog.contextvars.bind_contextvars(message_id=_header_text(root, _MESSAGE_ID))
        _refuse_comments(root)
        _refuse_processing_instructions(root)
        items = _attachment_items(root)
        _check_attachment_limits(items, max_bytes=intake.max_bytes, max_part_bytes=intake.max_part_bytes,
                                 sizes=False)
        roots.append((root, items))
    lap("parse")
    for root, _ in roots:  # XSD
        xml.validate(SCHEMA, root)
    lap("xsd")
    records = []
    for root, items in roots:  # records
        held = list(root.iter(etree.Element))
        check_signature_zone(root, seal=False)
        _check_attachment_limits(items, max_bytes=intake.max_bytes, max_part_bytes=intake.max_part_bytes,
                                 sizes=True)
        if root.tag != _ENVELOPE:
            raise EnvelopeError("the document is not an Envelope", code="envelope.schema_invalid", field="/")
        sender = _header_text(root, _SENDER)
        if sender != OPM:
            raise AuthError(f"agency {OPM} cannot send as {sender}", code="auth.wrong_sender",
                            field="Header/Sender")
        env = read_envelope(root, attachments=False)
        intake._check_policy(env, allow_receipts=False)
        lists = await intake._lists(env.header, sender)
        records.append((held, sender, env, lists))
    lap("records")
    checked_all = []
    for data, (root, _), (held, sender, env, lists) in zip(letters, roots, records, strict=True):  # verify
        facts: dict[str, Any] = {"schema_valid": True}
        with capturing():
            verified, signature_facts = await intake.verifier(data, root, sender, channel="native")
        decoded = VERIFIED_CONTENTS.take(verified)
        facts.update(signature_facts)
        if verified is not root:
            raise AssertionError("the verifier handed back another tree (not a bench letter)")
        del held
        env = replace(env, attachments=read_attachments(root, decoded))
        checked_all.append(CheckedEnvelope(raw=bytes(data), sha256=hashlib.sha256(data).digest(), envelope=env,
                                           facts=facts, parts=_match_parts(env.attachments, {}), lists=lists))
    lap("verify")
    receipts = [p.receipt(checked) for checked in checked_all]  # receipts
    lap("receipt")
    sealed = [p.sealer.seal_envelope(checked.raw) for checked in checked_all]  # seals
    lap("seal")
    return list(zip(checked_all, receipts, sealed, strict=True))


def interleaver(kind: str) -> Callable[[bytes], None]:
    """One request's worth of other work (see the module), untimed."""
    if kind == "none":
        return lambda data: None
    if kind == "buffer":
        src, dst = bytes(4 << 20), bytearray(4 << 20)

        def flush(data: bytes) -> None:
            dst[:] = src

        return flush
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    parser = HttpRequestParser(protocol, loop, 2 ** 16, max_line_size=8190, max_field_size=8190)
    sink = open(os.devnull, "w")  # held for the process's life, as the server's stderr
    log = structlog.wrap_logger(structlog.PrintLogger(sink), processors=[
        structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.JSONRenderer(ensure_ascii=False)])

    def code(data: bytes) -> None:
        head = (b"POST /v1/messages HTTP/1.1\r\nHost: gateway.example\r\nContent-Type: application/xml\r\n"
                b"X-Request-Id: 4b1f0c2e\r\nContent-Length: %d\r\n\r\n" % len(data))
        messages, _, _ = parser.feed_data(head + data)
        message, payload = messages[0]
        body = payload.read_nowait(-1)
        log.info("message accepted", path=message.path, bytes=len(body), sender=OPM, recipients=2)
        json.dumps({"message_id": message.headers.get("X-Request-Id"), "sha256": "0" * 64, "duplicate": False,
                    "receipt": "…"})

    return code


Way = Callable[[Server, Sequence[bytes]], Awaitable[list[Accepted]]]


async def block(p: Server, way: Way, k: int, letters: Sequence[bytes], other: Callable[[bytes], None],
                laps: dict[str, float] | None = None) -> float:
    """CPU seconds of the accept work alone over ``letters`` in batches of ``k``, ``other`` between."""
    clock = time.thread_time
    spent = 0.0
    for i in range(0, len(letters), k):
        batch = letters[i:i + k]
        for data in batch:
            other(data)
        t0 = clock()
        await (way(p, batch) if laps is None else stage_major(p, batch, laps))
        spent += clock() - t0
    return spent


async def measure(rounds: int, interleave: str, pool: int = 96, ks: Sequence[int] = KS,
                  laps: dict[int, list[dict[str, float]]] | None = None) -> dict[str, list[float]]:
    """ms a letter of each block of each way; ``laps``: each stage-major block's :data:`STAGES` (ms a
    letter) by k."""
    p = Server(accept_path(pool))
    letters = p.path.letters
    other = interleaver(interleave)
    VERIFIED_TREES.clear()
    VERIFIED_CONTENTS.clear()
    modes: list[tuple[str, Way, int]] = [("letter", letter_major, 1)] + [
        (f"stage{k}", stage_major, k) for k in ks]
    for _, way, k in modes:  # warm-up: caches, the trust store's validated path
        await block(p, way, k, letters[:BLOCK], other)
    ms: dict[str, list[float]] = {name: [] for name, _, _ in modes}
    for r in range(rounds):
        start = (r * BLOCK) % (len(letters) - BLOCK + 1)
        for j in range(len(modes)):  # rotated, so no mode always follows the same one
            name, way, k = modes[(r + j) % len(modes)]
            lapped: dict[str, float] | None = {} if laps is not None and way is stage_major else None
            ms[name].append(await block(p, way, k, letters[start:start + BLOCK], other, lapped) / BLOCK * 1e3)
            if laps is not None and lapped is not None:
                laps.setdefault(k, []).append({s: v / BLOCK * 1e3 for s, v in lapped.items()})
    if len(VERIFIED_TREES) or len(VERIFIED_CONTENTS):
        raise AssertionError("a handoff was left: a way parsed or decoded a letter twice")
    return ms


async def instructions(n: int, interleave: str) -> None:
    """Under callgrind (``--dump-before=getloadavg``): part 2 letter-major, parts 3..6 stage-1..8, on the
    same ``n`` letters (a multiple of 8), the interleaved work included (the same in every part)."""
    p = Server(accept_path(n + BLOCK))
    letters = p.path.letters
    other = interleaver(interleave)
    for k in KS:
        await block(p, stage_major, k, letters[:BLOCK], other)
    await block(p, letter_major, 1, letters[:BLOCK], other)
    mark()
    await block(p, letter_major, 1, letters[BLOCK:], other)
    for k in KS:
        mark()
        await block(p, stage_major, k, letters[BLOCK:], other)
    mark()


def p10(values: Sequence[float]) -> float:
    """The 10th percentile (the min of fewer than 10 values): less at the mercy of one lucky block."""
    return sorted(values)[len(values) // 10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of --rounds")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--interleave", choices=("none", "code", "buffer"), default="none")
    ap.add_argument("--instructions", type=int, metavar="N", help="callgrind parts (see the module) for N letters")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="batch sizes (divisors of 24): 1,2,4,8")
    ap.add_argument("--laps", action="store_true", help="also each stage's ms a letter (stage-major; 6 clock reads a batch)")
    args = ap.parse_args()
    if args.instructions:
        asyncio.run(instructions(args.instructions, args.interleave))
        return
    rounds = 3 if args.quick else args.rounds
    ks = [int(k) for k in args.ks.split(",")]
    laps: dict[int, list[dict[str, float]]] | None = {} if args.laps else None
    ms = asyncio.run(measure(rounds, args.interleave, ks=ks, laps=laps))
    for k, blocks in (laps or {}).items():  # each stage's min over the blocks
        print(f"stages k={k}: " + " ".join(f"{s}={min(b[s] for b in blocks):.3f}" for s in STAGES))
    base, base_p10 = min(ms["letter"]), p10(ms["letter"])
    figures = [f"interleave={args.interleave}", f"rounds={rounds}", f"block={BLOCK}",
               f"letter_ms={base:.3f}", f"letter_p10={base_p10:.3f}", f"letter_med={statistics.median(ms['letter']):.3f}"]
    for k in ks:
        m = ms[f"stage{k}"]
        figures += [f"stage{k}_ms={min(m):.3f}", f"stage{k}_p10={p10(m):.3f}", f"stage{k}_med={statistics.median(m):.3f}",
                    f"ratio{k}={min(m) / base:.3f}", f"ratio{k}_p10={p10(m) / base_p10:.3f}"]
    print(f"load={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(" ".join(figures))


if __name__ == "__main__":
    main()
