"""CPU cost of the gateway's cryptography per 5 KB letter: verify + seal + receipt.

For each letter, as the service does it: verify the author's signature as
intake calls the verifier (XAdES by default; trust decisions cached, as on the
hot path), seal the very tree that
was verified (``gateway.core.signing.PkiSealer``, parse once), build the
submission receipt (``gateway.core.receipts``) and sign its tree. CPU time is ``time.process_time`` over N letters
after a warm-up; letters are pre-signed by a few agencies outside the timing.

``verify_ms`` is what bench/budget.py counts as the "signature verify" stage: intake parses and
validates the envelope against its XSD first (``parse_ms``, its own stage), then checks the
signature zone (``seal=False``) and hands that tree to ``pki.verify.verify_envelope`` with
``zone_checked`` and ``schema_checked`` (``gateway.core.signing.Trust.verifier``), so signxml's
schemas are not run again where the envelope XSD implies them.

    python bench/crypto.py            # 2000 letters
    python bench/crypto.py --quick    # 200 letters
    python bench/crypto.py --no-xades # plain XML-DSig author signatures

The figures are printed last, on one line of key=value pairs. ``primitive_ms`` is the
physical limit measured in the same run, on the same letters (``bench.budget.crypto_primitives``: one
ECDSA P-256 verify, two signs, the c14n and SHA-256 of every reference, and a plain libxml2 parse of the
letter and its XSD validation, as ``parse_ms`` does); ``ratio`` is ``total_cpu_ms`` over it: what the
gateway's own code adds to the cryptography, on whatever machine runs it (issue 17 set its 0.8 ms target
where ECDSA verify measured 0.11 ms and a sign 0.05).

Each stage runs over all the letters in a row, its code and data warm in the caches; the server runs a
letter's stages once between other work, and intake also reads the records and hashes the letter
(counted as "parse + schema" by bench/budget.py). ``bench/gap.py`` runs the server's own path next to
these calls on the same letters (instructions under callgrind, and time with caches disturbed).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "pki"))

from samples import envelope  # noqa: E402

from bench.budget import crypto_primitives  # noqa: E402
from gateway.core import xml  # noqa: E402
from gateway.core.receipts import submission_receipt  # noqa: E402
from gateway.core.signing import PkiSealer, VerifiedTrees  # noqa: E402
from pki.devca import init_dev_pki  # noqa: E402
from pki.sign import sign_envelope  # noqa: E402
from pki.sigzone import check_signature_zone  # noqa: E402
from pki.verify import verify_envelope  # noqa: E402

#: The schema intake validates a parsed envelope against (gateway.intake.checks.SCHEMA).
SCHEMA = "envelope-v1.xsd"
AGENCIES = {"00001": "สำนักนายกรัฐมนตรี", "00002": "กระทรวงมหาดไทย", "00003": "กระทรวงการคลัง"}


async def run(letters: int, xades: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        pki = init_dev_pki(Path(tmp), AGENCIES)
        trust = pki.trust_store(ocsp=False)
        seal = pki.seal_signer()
        signers = {code: pki.agency_signer(code) for code in AGENCIES}
    codes = list(AGENCIES)
    warmup = max(20, letters // 10)
    batch = []
    for i in range(letters + warmup):
        code = codes[i % len(codes)]
        raw = envelope(sender=code, message_id=f"msg-{i:06d}", attachment_size=1600)  # ~5 KB unsigned
        batch.append((code, f"msg-{i:06d}", sign_envelope(raw, signers[code], xades=xades)))
    size = sum(len(b[2]) for b in batch) / len(batch)  # signed size: letter + author signature
    now = dt.datetime.now(dt.UTC)

    trees = VerifiedTrees(maxsize=len(batch) + 1, max_bytes=1 << 40)
    sealer = PkiSealer(seal, trees)

    def parse(item):
        root = xml.parse(item[2])
        xml.validate(SCHEMA, root)
        return root

    async def verify(item, root):  # gateway.intake.checks.Intake then gateway.core.signing.Trust.verifier
        check_signature_zone(root, seal=False)
        verified = await verify_envelope(item[2], trust, sender=item[0], root=root, zone_checked=True,
                                         schema_checked=True)
        trees.put(verified.raw, verified.root, verified)  # what the service's verifier does (gateway.core.signing)
        return verified

    def receipt(item):
        unsigned = submission_receipt(message_id=item[1], sender=item[0],
                                      sha256_hex=hashlib.sha256(item[2]).hexdigest(), at=now)
        return sealer.sign_receipt(unsigned)

    def primitive_ms() -> float:
        """The primitives of one letter of the batch (µs summed, in ms): best of three runs each."""
        raw = batch[-1][2]
        p = crypto_primitives(raw, signers[batch[-1][0]])
        return (p["signature verify"] + p["seal"] + p["receipt"] + p["parse + schema"]) / 1e3

    for item in batch[:warmup]:
        verified = await verify(item, parse(item))
        sealer.seal_envelope(verified.raw)
        receipt(item)
    timed = batch[warmup:]
    primitive_before = primitive_ms()
    tp = time.process_time()
    roots = [parse(item) for item in timed]
    t0 = time.process_time()
    verified_raw = [(await verify(item, root)).raw for item, root in zip(timed, roots, strict=True)]
    t1 = time.process_time()
    for raw in verified_raw:
        sealer.seal_envelope(raw)
    t2 = time.process_time()
    for item in timed:
        receipt(item)
    t3 = time.process_time()
    n = len(timed)
    primitive = min(primitive_before, primitive_ms())  # before and after the timed letters: the less disturbed
    return {"primitive_ms": primitive, "ratio": (t3 - tp) / n * 1e3 / primitive,
            "parse_ms": (t0 - tp) / n * 1e3, "verify_ms": (t1 - t0) / n * 1e3, "seal_ms": (t2 - t1) / n * 1e3, "receipt_ms": (t3 - t2) / n * 1e3,
            "total_cpu_ms": (t3 - tp) / n * 1e3, "letters": n, "letter_bytes": size,
            "trust_validations": trust.stats["validations"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 letters instead of 2000")
    parser.add_argument("--letters", type=int, default=None)
    parser.add_argument("--no-xades", dest="xades", action="store_false", help="plain XML-DSig author signatures")
    args = parser.parse_args()
    letters = args.letters or (200 if args.quick else 2000)
    figures = asyncio.run(run(letters, args.xades))
    print(f"ECDSA P-256 everywhere; author signatures {'XAdES-BES' if args.xades else 'XML-DSig'}; "
          f"trust cached ({figures['trust_validations']} full validations); {os.cpu_count()} cores")
    print(" ".join([f"parse_ms={figures['parse_ms']:.2f}", f"verify_ms={figures['verify_ms']:.2f}", f"seal_ms={figures['seal_ms']:.2f}",
                    f"receipt_ms={figures['receipt_ms']:.2f}", f"total_cpu_ms={figures['total_cpu_ms']:.2f}",
                    f"primitive_ms={figures['primitive_ms']:.2f}", f"ratio={figures['ratio']:.2f}",
                    f"letters={figures['letters']}", f"letter_bytes={figures['letter_bytes']:.0f}",
                    f"xades={int(args.xades)}", f"cores={os.cpu_count()}"]))


if __name__ == "__main__":
    main()
