"""e-CMS throughput: letters/s through the SOAP endpoint, against the native submit path in the same run.

The same gateway (example directory, unsigned letters allowed on both paths so
the comparison is of the protocol work, seal on) receives N letters from an
e-CMS client (agency 20001, the shape the BOI-DMS client sends) and N native
envelopes of the same size; the ratio is e-CMS / native (target >= 0.70).

Usage: python bench/ecms.py [--quick] [--letters N] [--clients C] [--processes P]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures, percentile, post_all  # noqa: E402
from tests.support import ROOT, GatewayProcess, free_port, gateway_env, letter_bytes  # noqa: E402

SENDER, RECEIVER = "20001", "1550100000"


def ecms_letters(n: int) -> list[bytes]:
    base = (ROOT / "conformance/ecms/vectors/letter-vb-linqws.xml").read_bytes()
    base = base.replace(b"<ram:ID>11008</ram:ID>", f"<ram:ID>{SENDER}</ram:ID>".encode())
    base = base.replace(b"<ram:ID>11002</ram:ID>", f"<ram:ID>{RECEIVER}</ram:ID>".encode())
    marker = "อก 0905/0007".encode()
    assert marker in base
    return [base.replace(marker, f"อก 0905/{uuid.uuid4().hex[:12]}".encode()) for _ in range(n)]


def native_letters(n: int, size: int) -> list[bytes]:
    pdf = b"%PDF-1.4\n" + b"x" * max(100, size * 3 // 4 - 1500)
    return [letter_bytes(sender=SENDER, recipients=(RECEIVER,), message_id=str(uuid.uuid4()), pdf=pdf)
            for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    n = args.letters or (400 if args.quick else 4000)
    soap = ecms_letters(n + 100)
    native = native_letters(n + 100, len(soap[0]))
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-ecms-", dir="/tmp"))
    with database("ecms") as (_admin, dsn):
        port = free_port()
        env = gateway_env(database_url=dsn, directory=ROOT / "config/directory.example.json", port=port,
                          data_dir=workdir, GATEWAY_DISPATCH_ENABLED="false", GATEWAY_LOG_LEVEL="warning",
                          GATEWAY_SEAL="true", GATEWAY_WORKERS=str(args.processes), GATEWAY_RATE_PER_AGENCY="0",
                          GATEWAY_VALIDATE_PDF="false")
        gw = GatewayProcess(env=env, port=port, log_path=workdir / "gw.log").start()
        try:
            async def run():
                await gw.wait_ready(60)
                h_native = {"Authorization": "Bearer dev-token-ops-moe", "Content-Type": "application/xml"}
                h_soap = {"Authorization": "Bearer dev-token-ops-moe", "Content-Type": "text/xml; charset=utf-8"}
                await post_all(f"{gw.url}/v1/messages", native[:100], headers=h_native, clients=args.clients)
                await post_all(f"{gw.url}/ecms-ws01/service2", soap[:100], headers=h_soap, clients=args.clients)
                nat = await post_all(f"{gw.url}/v1/messages", native[100:], headers=h_native, clients=args.clients)
                ecm = await post_all(f"{gw.url}/ecms-ws01/service2", soap[100:], headers=h_soap,
                                     clients=args.clients)
                return nat, ecm

            (nat_rate, nat_lat, nat_codes), (ecms_rate, ecms_lat, ecms_codes) = asyncio.run(run())
        finally:
            gw.stop()
    print(f"native status codes: {nat_codes}  e-CMS status codes: {ecms_codes}")
    print(figures(letters=n, soap_bytes=len(soap[0]), native_bytes=len(native[0]), processes=args.processes,
                  ecms_letters_per_s=ecms_rate, native_letters_per_s=nat_rate, ratio=ecms_rate / nat_rate,
                  ecms_p99_ms=percentile(ecms_lat, 99) * 1000, native_p99_ms=percentile(nat_lat, 99) * 1000))


if __name__ == "__main__":
    main()
