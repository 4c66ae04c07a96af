"""The server's crypto-and-parse stages in-process, next to bench/crypto.py's calls, on the same letters.

Why the budget table (bench/submit.py --profile) shows parse + verify + seal + receipt at about twice
bench/crypto.py: does the server do more work per letter, or is it attribution and cache effects? This
drives, for N letters of bench/submit.py (``make_letters``: one agency, XAdES, two recipients):

* ``server``: what ``POST /v1/messages`` runs before storage, built as ``gateway serve`` builds it
  (``Settings`` as bench/submit.py sets them, ``build_trust``, ``Intake`` with ``Trust.verifier``,
  ``PkiSealer``): ``Acceptance._check`` (``Intake.check`` under ``pki.ltv.capturing``), then
  ``Acceptance.store``'s receipt and seal;
* ``crypto``: bench/crypto.py's calls on the same letters (parse, XSD, zone check, ``verify_envelope``,
  the tree handed to the sealer, seal, receipt), on the same trust store;

one letter after the other (``--batched``: each stage over all letters, as bench/crypto.py times them).
Under callgrind (``--dump-before=getloadavg``: part 2 is the timed letters alone) the instruction
counts compare the work; without, ``process_time`` per letter (best of ``--repeat`` runs). The
driver raises when a parse-once or decode-once handoff is left behind (tests/unit/test_gap.py).

    python bench/gap.py --mode server --letters 300 --repeat 5
    valgrind --tool=callgrind --dump-before=getloadavg --callgrind-out-file=/tmp/s.out \
        python bench/gap.py --mode server --letters 100      # then: grep ^summary /tmp/s.out.2

Found (2026-12-07, issue 17): the server's path costs 6.13 M instructions a letter, bench/crypto.py's
calls 5.80 M (5.78 M batched): +6 %, intake's own checks and the records it reads; nothing parsed,
canonicalised, hashed or decoded twice. See bench/budget.py for where the rest of the gap comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.submit import make_letters  # noqa: E402
from gateway.core import xml  # noqa: E402
from gateway.core.directory import Directory  # noqa: E402
from gateway.core.receipts import submission_receipt  # noqa: E402
from gateway.core.settings import Settings  # noqa: E402
from gateway.core.signing import (  # noqa: E402
    VERIFIED_CONTENTS,
    VERIFIED_TREES,
    PkiSealer,
    Trust,
    VerifiedTrees,
    build_trust,
)
from gateway.intake.checks import SCHEMA, Intake  # noqa: E402
from pki.ltv import capturing  # noqa: E402
from pki.sigzone import check_signature_zone  # noqa: E402
from pki.verify import verify_envelope  # noqa: E402
from tests.support import OPM, write_directory  # noqa: E402


def setup(workdir: Path) -> tuple[Settings, Directory]:
    """Settings as bench/submit.py gives ``gateway serve`` (development PKI in ``workdir``, made by
    ``build_trust`` for the directory's agencies)."""
    directory_path = write_directory(workdir / "directory.json")
    settings = Settings.from_env({
        "GATEWAY_DATABASE_URL": "postgresql://unused/unused", "GATEWAY_DIRECTORY_PATH": str(directory_path),
        "GATEWAY_DATA_DIR": str(workdir), "GATEWAY_PKI_DIR": str(workdir / "pki"),
        "GATEWAY_REQUIRE_SIGNATURE": "true", "GATEWAY_SEAL": "true", "GATEWAY_REVOCATION": "off",
        "GATEWAY_TLS": "false", "GATEWAY_VALIDATE_PDF": "false", "GATEWAY_RATE_PER_AGENCY": "0"})
    return settings, Directory.load(settings.directory_path)


@dataclass
class AcceptPath:
    """What ``gateway serve`` builds for ``POST /v1/messages`` before storage, and letters for it."""

    settings: Settings
    trust: Trust
    intake: Intake
    sealer: PkiSealer
    letters: list[bytes]


def accept_path(count: int) -> AcceptPath:
    """:func:`setup`'s settings, ``build_trust``, ``Intake`` with ``Trust.verifier``, ``PkiSealer`` on the
    process-wide VERIFIED_TREES (as the server's), and ``count`` letters of bench/submit.py signed by OPM."""
    with tempfile.TemporaryDirectory() as tmp:
        settings, directory = setup(Path(tmp))
        trust = build_trust(settings, directory)
        signer = trust.dev_pki.agency_signer(OPM) if trust.dev_pki is not None else None
        letters = make_letters(count, signer=signer)
    assert trust.seal_signer is not None
    intake = Intake(directory, max_bytes=settings.max_body_bytes, max_part_bytes=settings.max_part_bytes,
                    verifier=trust.verifier(settings))
    return AcceptPath(settings, trust, intake, PkiSealer(trust.seal_signer), letters)


async def run(mode: str, n: int, batched: bool, repeat: int) -> list[float]:
    path = accept_path(n * repeat + 20)
    settings, trust, intake, sealer, letters = path.settings, path.trust, path.intake, path.sealer, path.letters
    assert trust.seal_signer is not None
    now = dt.datetime.now(dt.UTC)
    # what earlier work in this process left (a request that failed between verifier and sealer) is not
    # this run's: judge only the letters run here
    VERIFIED_TREES.clear()
    VERIFIED_CONTENTS.clear()
    trees = VerifiedTrees(maxsize=len(letters) + 1, max_bytes=1 << 40)
    crypto_sealer = PkiSealer(trust.seal_signer, trees)

    async def server(data: bytes) -> None:
        with capturing():  # Acceptance._check
            checked = await intake.check(data, agency=OPM, channel="native")
        h = checked.envelope.header  # Acceptance.store, before the database
        built = submission_receipt(message_id=h.message_id, sender=h.sender, sha256_hex=checked.sha256_hex,
                                   at=now, gateway_code=settings.gateway_code)
        sealer.sign_receipt(built)
        sealer.seal_envelope(checked.raw)
        # the server's handoffs were all taken: the verified tree was sealed (not the bytes parsed again)
        # and its decoded attachments read (not decoded and hashed again)
        if len(VERIFIED_TREES) or len(VERIFIED_CONTENTS):
            raise AssertionError("a handoff was left: the server path parsed or decoded a letter twice")

    def parse(data: bytes):
        root = xml.parse(data)
        xml.validate(SCHEMA, root)
        return root

    async def verify(data: bytes, root) -> bytes:
        check_signature_zone(root, seal=False)
        verified = await verify_envelope(data, trust.store, sender=OPM, root=root, zone_checked=True,
                                         schema_checked=True)
        trees.put(verified.raw, verified.root, verified)
        return verified.raw

    def receipt(data: bytes) -> None:
        unsigned = submission_receipt(message_id="m", sender=OPM, sha256_hex=hashlib.sha256(data).hexdigest(),
                                      at=now)
        crypto_sealer.sign_receipt(unsigned)

    async def crypto(data: bytes) -> None:
        raw = await verify(data, parse(data))
        crypto_sealer.seal_envelope(raw)
        receipt(data)

    async def crypto_batched(batch: list[bytes]) -> None:
        roots = [parse(d) for d in batch]
        raws = [await verify(d, r) for d, r in zip(batch, roots, strict=True)]
        for raw in raws:
            crypto_sealer.seal_envelope(raw)
        for d in batch:
            receipt(d)

    one = server if mode == "server" else crypto
    for data in letters[:20]:  # warm-up: caches, the trust store's validated path
        await one(data)
    out = []
    for r in range(repeat):
        batch = letters[20 + r * n: 20 + (r + 1) * n]
        mark()
        t0 = time.process_time()
        if batched and mode == "crypto":
            await crypto_batched(batch)
        else:
            for data in batch:
                await one(data)
        t1 = time.process_time()
        mark()
        out.append((t1 - t0) / n * 1e3)
    return out


def mark() -> None:
    """Under ``valgrind --tool=callgrind --dump-before=getloadavg`` each mark ends a part: the part
    between the first two marks (``OUT.2``) is the timed letters alone (libc's ``getloadavg``, which
    nothing else calls)."""
    os.getloadavg()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("server", "crypto"), default="server")
    ap.add_argument("--letters", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--batched", action="store_true", help="crypto: each stage over all letters (bench/crypto.py)")
    args = ap.parse_args()
    ms = asyncio.run(run(args.mode, args.letters, args.batched, args.repeat))
    print(f"mode={args.mode} batched={int(args.batched)} letters={args.letters} "
          f"min_ms={min(ms):.3f} runs={','.join(f'{m:.3f}' for m in ms)}")


if __name__ == "__main__":
    main()
