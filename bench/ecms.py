"""e-CMS throughput: letters/s through the SOAP endpoint, against the native submit path in the same run.

The same gateway (example directory, unsigned letters allowed on both paths so
the comparison is of the protocol work, seal on) receives N letters from an
e-CMS client (agency 20001, the shape the BOI-DMS client sends) and N native
envelopes of the same size; the ratio is e-CMS / native (target >= 0.70).
Both number their letters the same way, sequentially (อก 0905/1, 2, ...; นร 0105/ว 1, 2,
...) as a registry does: a letter number is indexed (trigrams), and numbers made of
random hex cost the index more than real ones. An e-CMS refusal is an HTTP 200 with
an ErrorDetail: answers are counted by their ErrorCode, and the run stops without
figures if any letter was refused.

The two kinds are sent in alternating rounds (native then e-CMS, then e-CMS
then native, ...; ``--rounds``) and each rate is its letters over its own time
summed across the rounds: on a shared machine the background load drifts
within a minute, and two back-to-back halves measured it as much as the
gateway (the same code gave ratios from 0.27 to 0.62 in one hour). For the
same reason it also prints the gateway processes' CPU time per letter of each
kind (user + system, from /proc, the database's excluded) and their ratio
``cpu_ratio`` = native / e-CMS CPU per letter, which background load moves far
less than wall-clock rates: what a change to the e-CMS path saved shows there.

A third kind goes through the legacy listener (``GATEWAY_ECMS_LEGACY_HTTP_PORT``): the same
e-CMS letters (numbered อก 0906/...) over plain HTTP, with no credential, the agency admitted by
its source network (127.0.0.1/32, registered with ``gateway ecms-key networks`` once the gateway
runs); its figures are ``legacy_*`` on the last line, its ratio to native ``legacy_ratio`` and
``legacy_cpu_bound_ratio``. ``--no-legacy`` leaves it out.

Usage: python bench/ecms.py [--quick] [--letters N] [--clients C] [--processes P] [--rounds R] [--no-legacy]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures, gateway_cpu, percentile, post_all, postgres_cpu  # noqa: E402
from gateway.core.envelope_builder import build_envelope  # noqa: E402
from tests.support import ROOT, GatewayProcess, free_port, gateway_env, letter  # noqa: E402

SENDER, RECEIVER = "20001", "1550100000"


def ecms_letters(n: int, prefix: str = "อก 0905") -> list[bytes]:
    base = (ROOT / "conformance/ecms/vectors/letter-vb-linqws.xml").read_bytes()
    base = base.replace(b"<ram:ID>11008</ram:ID>", f"<ram:ID>{SENDER}</ram:ID>".encode())
    base = base.replace(b"<ram:ID>11002</ram:ID>", f"<ram:ID>{RECEIVER}</ram:ID>".encode())
    marker = "อก 0905/0007".encode()
    assert marker in base
    return [base.replace(marker, f"{prefix}/{i + 1}".encode()) for i in range(n)]


def register_network(dsn: str, workdir: Path) -> None:
    """Admit the sender from 127.0.0.1 on the legacy listener, as an operator does (the CLI)."""
    env = gateway_env(database_url=dsn, directory=ROOT / "config/directory.example.json", port=0, data_dir=workdir)
    subprocess.run([sys.executable, "-m", "gateway.cli.main", "ecms-key", "networks", SENDER, "127.0.0.1/32",
                    "--reason", "bench"], env=env, check=True, cwd=ROOT, capture_output=True)


async def until_admitted(url: str, body: bytes) -> None:
    """Wait until every gateway process has the new directory in force (LISTEN/NOTIFY, a second at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, codes = await post_all(url, [body] * 8, headers={"Content-Type": "text/xml; charset=utf-8"},
                                     clients=8, outcome=_outcome)
        if set(codes) == {200}:
            return
        await asyncio.sleep(0.2)
    sys.exit(f"the legacy listener does not admit {SENDER} from 127.0.0.1: {codes}")


def native_letters(n: int, size: int) -> list[bytes]:
    pdf = b"%PDF-1.4\n" + b"x" * max(100, size * 3 // 4 - 1500)
    out = []
    for i in range(n):
        env = letter(sender=SENDER, recipients=(RECEIVER,), message_id=str(uuid.uuid4()), pdf=pdf)
        out.append(build_envelope(replace(env, body=replace(env.body, number=f"นร 0105/ว {i + 1}"))))
    return out


@dataclass
class _Totals:
    """One kind's sums over its rounds."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)
    gateway_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    client_cpu_s: float = 0.0


def _outcome(status: int, answer: bytes) -> object:
    """The HTTP status, or the e-CMS code of a refusal (e-CMS refuses with HTTP 200 + ErrorDetail)."""
    start = answer.find(b"<ErrorCode>")
    if start < 0:
        return status
    return answer[start + 11:answer.find(b"</ErrorCode>", start)].decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds of each kind")
    ap.add_argument("--no-legacy", action="store_true", help="leave out the legacy listener's figures")
    args = ap.parse_args()
    n = args.letters or (400 if args.quick else 4000)
    soap = ecms_letters(n + 100)
    native = native_letters(n + 100, len(soap[0]))
    legacy = ecms_letters(n + 200, prefix="อก 0906")
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-ecms-", dir="/tmp"))
    with database("ecms") as (_admin, dsn):
        port, legacy_port = free_port(), free_port()
        env = gateway_env(database_url=dsn, directory=ROOT / "config/directory.example.json", port=port,
                          data_dir=workdir, GATEWAY_DISPATCH_ENABLED="false", GATEWAY_LOG_LEVEL="warning",
                          GATEWAY_SEAL="true", GATEWAY_WORKERS=str(args.processes), GATEWAY_RATE_PER_AGENCY="0",
                          GATEWAY_VALIDATE_PDF="false",
                          **({} if args.no_legacy else {"GATEWAY_ECMS_LEGACY_HOST": "127.0.0.1",
                                                        "GATEWAY_ECMS_LEGACY_HTTP_PORT": str(legacy_port)}))
        gw = GatewayProcess(env=env, port=port, log_path=workdir / "gw.log").start()
        try:
            async def run():
                await gw.wait_ready(60)
                h_native = {"Authorization": "Bearer dev-token-ops-moe", "Content-Type": "application/xml"}
                h_soap = {"Authorization": "Bearer dev-token-ops-moe", "Content-Type": "text/xml; charset=utf-8"}
                kinds = {"native": (f"{gw.url}/v1/messages", native, h_native),
                         "ecms": (f"{gw.url}/ecms-ws01/service2", soap, h_soap)}
                if not args.no_legacy:
                    legacy_url = f"http://127.0.0.1:{legacy_port}/ecms-ws01/service2"
                    await asyncio.to_thread(register_network, dsn, workdir)
                    await until_admitted(legacy_url, legacy[-1])
                    kinds["legacy"] = (legacy_url, legacy[:-100], {"Content-Type": "text/xml; charset=utf-8"})
                for url, bodies, headers in kinds.values():  # warm-up
                    await post_all(url, bodies[:100], headers=headers, clients=args.clients)
                totals = {k: _Totals() for k in kinds}
                rounds = max(1, args.rounds)
                order = list(kinds)
                for r in range(rounds):
                    for kind in order[r % len(order):] + order[:r % len(order)]:
                        url, bodies, headers = kinds[kind]
                        chunk = bodies[100:][r * n // rounds:(r + 1) * n // rounds]
                        pg0, cpu0, client0 = await postgres_cpu(dsn), gateway_cpu([gw]), time.process_time()
                        rate, lat, codes = await post_all(url, chunk, headers=headers, clients=args.clients,
                                                          outcome=_outcome)
                        gw1, client1, pg1 = gateway_cpu([gw]), time.process_time(), await postgres_cpu(dsn)
                        t = totals[kind]
                        t.gateway_cpu_s += gw1 - cpu0
                        t.postgres_cpu_s += (pg1 - pg0) if pg0 is not None and pg1 is not None else float("nan")
                        t.client_cpu_s += client1 - client0
                        t.seconds += len(chunk) / rate
                        t.latencies += lat
                        for code, count in codes.items():
                            t.outcomes[code] = t.outcomes.get(code, 0) + count
                return {kind: (n / t.seconds, t.latencies, t.outcomes, t.gateway_cpu_s / n, t.postgres_cpu_s / n,
                               t.client_cpu_s / n) for kind, t in totals.items()}

            results = asyncio.run(run())
        finally:
            gw.stop()
    (nat_rate, nat_lat, nat_codes, nat_cpu, nat_pg, nat_client) = results["native"]
    (ecms_rate, ecms_lat, ecms_codes, ecms_cpu, ecms_pg, ecms_client) = results["ecms"]
    print("status codes: " + "  ".join(f"{kind}: {r[2]}" for kind, r in results.items()))
    if set(nat_codes) != {202} or any(set(r[2]) != {200} for kind, r in results.items() if kind != "native"):
        sys.exit("some letters were refused: the figures would not measure accepting letters")
    extra = {}
    if "legacy" in results:
        (leg_rate, leg_lat, _, leg_cpu, leg_pg, leg_client) = results["legacy"]
        extra = dict(legacy_letters_per_s=leg_rate, legacy_ratio=leg_rate / nat_rate,
                     legacy_p99_ms=percentile(leg_lat, 99) * 1000, legacy_cpu_ms_per_letter=leg_cpu * 1000,
                     legacy_pg_cpu_ms_per_letter=leg_pg * 1000,
                     legacy_cpu_bound_ratio=(nat_cpu + nat_pg + nat_client) / (leg_cpu + leg_pg + leg_client))
    print(figures(letters=n, soap_bytes=len(soap[0]), native_bytes=len(native[0]), processes=args.processes,
                  ecms_letters_per_s=ecms_rate, native_letters_per_s=nat_rate, ratio=ecms_rate / nat_rate,
                  ecms_p99_ms=percentile(ecms_lat, 99) * 1000, native_p99_ms=percentile(nat_lat, 99) * 1000,
                  ecms_cpu_ms_per_letter=ecms_cpu * 1000, native_cpu_ms_per_letter=nat_cpu * 1000,
                  cpu_ratio=nat_cpu / ecms_cpu, ecms_pg_cpu_ms_per_letter=ecms_pg * 1000,
                  native_pg_cpu_ms_per_letter=nat_pg * 1000, ecms_client_cpu_ms_per_letter=ecms_client * 1000,
                  native_client_cpu_ms_per_letter=nat_client * 1000,
                  # what the rates' ratio would be if CPU were the only limit: all the CPU a letter costs
                  cpu_bound_ratio=(nat_cpu + nat_pg + nat_client) / (ecms_cpu + ecms_pg + ecms_client), **extra))


if __name__ == "__main__":
    main()
