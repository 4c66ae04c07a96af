"""e-CMS throughput: letters/s through the SOAP endpoint, against the native submit path in the same run.

The same gateway (example directory, unsigned letters allowed on both paths so
the comparison is of the protocol work, seal on) receives N letters from an
e-CMS client (agency 20001, the shape the BOI-DMS client sends) and N native
envelopes of the same size; the ratio is e-CMS / native (target >= 0.8).
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
``legacy_cpu_bound_ratio``. A fourth goes through the legacy TLS port (``GATEWAY_ECMS_LEGACY_TLS_PORT``,
an RSA certificate from the development PKI) as an old .NET Framework client reaches it: TLS 1.0 only,
RSA key exchange, CBC suites, a URL key issued with ``gateway ecms-key issue`` in the path
(numbered อก 0907/...; figures ``legacy_tls_*``). ``--no-legacy-tls`` leaves the TLS port out,
``--no-legacy`` both.

``--analyze`` runs ANALYZE after the warm-up. Without it every figure is of a database whose planner
has no statistics yet (autovacuum's first ANALYZE comes about a minute into a run): the group-commit
insert's plan is made once per connection (generic, migration 0018) and, made on an empty ``messages``,
it finds a guarded e-CMS letter's earlier letters by sender instead of by number, reading every letter
of the sender for each one (PostgreSQL CPU per e-CMS letter 0.73 -> 0.33 ms with ANALYZE in one
measurement, native 0.28 -> 0.23). Both are real: the first is a fresh gateway's first minutes.

Every kind also prints ``<kind>_commits_per_letter`` (transactions committed in the database per
letter): PostgreSQL's CPU per letter follows how many letters share a group commit, which a kind
with more CPU per letter in the gateway spreads thinner.

Usage: python bench/ecms.py [--quick] [--letters N] [--clients C] [--processes P] [--rounds R] [--no-legacy]
                            [--no-legacy-tls] [--analyze]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl as ssl_module
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, figures, gateway_cpu, percentile, post_all, postgres_cpu  # noqa: E402
from gateway.core.envelope_builder import build_envelope  # noqa: E402
from pki.certfactory import simple_name  # noqa: E402
from pki.devca import init_dev_pki  # noqa: E402
from tests.ecms.admission_world import legacy_tls_client  # noqa: E402
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


async def until_admitted(url: str, body: bytes, *, ssl: ssl_module.SSLContext | None = None) -> None:
    """Wait until every gateway process has the new directory in force (LISTEN/NOTIFY, a second at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, codes = await post_all(url, [body] * 8, headers={"Content-Type": "text/xml; charset=utf-8"},
                                     clients=8, outcome=_outcome, ssl=ssl)
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
    commits: int = 0
    letters: int = 0

    def per_letter_ms(self, seconds: float) -> float:
        return seconds / self.letters * 1000

    @property
    def all_cpu_ms(self) -> float:
        """Every CPU a letter costs: the gateway's, PostgreSQL's and the client's."""
        return self.per_letter_ms(self.gateway_cpu_s + self.postgres_cpu_s + self.client_cpu_s)


@dataclass
class _Kind:
    url: str
    bodies: list[bytes]
    headers: dict[str, str]
    ssl: ssl_module.SSLContext | None = None


async def commits(dsn: str) -> int:
    """Transactions committed so far in the benchmark's database: group commits of letters for the most
    part, so commits per letter shows how well a kind's letters share a commit (PostgreSQL's cost per
    letter follows it)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await conn.close()


def _outcome(status: int, answer: bytes) -> object:
    """The HTTP status, or the e-CMS code of a refusal (e-CMS refuses with HTTP 200 + ErrorDetail)."""
    start = answer.find(b"<ErrorCode>")
    if start < 0:
        return status
    return answer[start + 11:answer.find(b"</ErrorCode>", start)].decode()


def legacy_tls_material(workdir: Path) -> tuple[dict[str, str], Path]:
    """The legacy TLS port's settings (an RSA certificate from the development PKI the gateway will load
    from ``workdir``) and the anchors a client trusts."""
    directory = json.loads((ROOT / "config/directory.example.json").read_text(encoding="utf-8"))
    dev = init_dev_pki(workdir / "pki", {a["code"]: a["name_th"] for a in directory["agencies"]})
    rsa = dev.issuing_factory().issue(simple_name("127.0.0.1", "Saraban Gateway legacy"), profile="tls-server",
                                      key_type="rsa-2048", ip_addresses=["127.0.0.1"], dns_names=["localhost"],
                                      days=2)
    rsa.write(workdir / "legacy-tls.pem", workdir / "legacy-tls.key", [dev.intermediate_cert])
    return {"GATEWAY_ECMS_LEGACY_TLS_PORT": str(free_port()),
            "GATEWAY_ECMS_LEGACY_TLS_CERT": str(workdir / "legacy-tls.pem"),
            "GATEWAY_ECMS_LEGACY_TLS_KEY": str(workdir / "legacy-tls.key")}, dev.anchors


def issue_key(dsn: str, workdir: Path) -> str:
    """A URL key for the sender, issued as an operator does (the CLI prints it alone on standard output)."""
    env = gateway_env(database_url=dsn, directory=ROOT / "config/directory.example.json", port=0, data_dir=workdir)
    out = subprocess.run([sys.executable, "-m", "gateway.cli.main", "ecms-key", "issue", SENDER, "--reason", "bench"],
                         env=env, check=True, cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--letters", type=int)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds of each kind")
    ap.add_argument("--no-legacy", action="store_true", help="leave out the legacy listener's figures (both ports)")
    ap.add_argument("--no-legacy-tls", action="store_true", help="leave out the legacy TLS port's figures")
    ap.add_argument("--analyze", action="store_true",
                    help="ANALYZE the database after the warm-up, as autovacuum does on a running gateway")
    args = ap.parse_args()
    n = args.letters or (400 if args.quick else 4000)
    legacy, legacy_tls = not args.no_legacy, not (args.no_legacy or args.no_legacy_tls)
    soap = ecms_letters(n + 100)
    native = native_letters(n + 100, len(soap[0]))
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-ecms-", dir="/tmp"))
    extra_env: dict[str, str] = {}
    anchors = None
    if legacy:
        extra_env.update(GATEWAY_ECMS_LEGACY_HOST="127.0.0.1", GATEWAY_ECMS_LEGACY_HTTP_PORT=str(free_port()))
    if legacy_tls:
        tls_env, anchors = legacy_tls_material(workdir)
        extra_env.update(tls_env)
    with database("ecms") as (_admin, dsn):
        port = free_port()
        env = gateway_env(database_url=dsn, directory=ROOT / "config/directory.example.json", port=port,
                          data_dir=workdir, GATEWAY_DISPATCH_ENABLED="false", GATEWAY_LOG_LEVEL="warning",
                          GATEWAY_SEAL="true", GATEWAY_WORKERS=str(args.processes), GATEWAY_RATE_PER_AGENCY="0",
                          GATEWAY_VALIDATE_PDF="false", **extra_env)
        gw = GatewayProcess(env=env, port=port, log_path=workdir / "gw.log").start()
        try:
            async def run() -> dict[str, _Totals]:
                await gw.wait_ready(60)
                h_native = {"Authorization": "Bearer dev-token-ops-moe", "Content-Type": "application/xml"}
                h_soap = {"Authorization": "Bearer dev-token-ops-moe", "Content-Type": "text/xml; charset=utf-8"}
                h_bare = {"Content-Type": "text/xml; charset=utf-8"}
                kinds = {"native": _Kind(f"{gw.url}/v1/messages", native, h_native),
                         "ecms": _Kind(f"{gw.url}/ecms-ws01/service2", soap, h_soap)}
                if legacy:
                    url = f"http://127.0.0.1:{extra_env['GATEWAY_ECMS_LEGACY_HTTP_PORT']}/ecms-ws01/service2"
                    await asyncio.to_thread(register_network, dsn, workdir)
                    bodies = ecms_letters(n + 200, prefix="อก 0906")
                    await until_admitted(url, bodies[-1])
                    kinds["legacy"] = _Kind(url, bodies[:-100], h_bare)
                if legacy_tls:
                    assert anchors is not None
                    key = await asyncio.to_thread(issue_key, dsn, workdir)
                    url = (f"https://127.0.0.1:{extra_env['GATEWAY_ECMS_LEGACY_TLS_PORT']}/ecms/{key}"
                           "/ecms-ws01/service2")
                    ctx = legacy_tls_client(anchors)
                    bodies = ecms_letters(n + 200, prefix="อก 0907")
                    await until_admitted(url, bodies[-1], ssl=ctx)
                    kinds["legacy_tls"] = _Kind(url, bodies[:-100], h_bare, ctx)
                for k in kinds.values():  # warm-up
                    await post_all(k.url, k.bodies[:100], headers=k.headers, clients=args.clients, ssl=k.ssl)
                if args.analyze:
                    conn = await asyncpg.connect(dsn)
                    try:
                        await conn.execute("ANALYZE")
                    finally:
                        await conn.close()
                totals = {kind: _Totals() for kind in kinds}
                rounds = max(1, args.rounds)
                order = list(kinds)
                for r in range(rounds):
                    for kind in order[r % len(order):] + order[:r % len(order)]:
                        k = kinds[kind]
                        chunk = k.bodies[100:][r * n // rounds:(r + 1) * n // rounds]
                        x0 = await commits(dsn)
                        pg0, cpu0, client0 = await postgres_cpu(dsn), gateway_cpu([gw]), time.process_time()
                        rate, lat, codes = await post_all(k.url, chunk, headers=k.headers, clients=args.clients,
                                                          outcome=_outcome, ssl=k.ssl)
                        gw1, client1, pg1 = gateway_cpu([gw]), time.process_time(), await postgres_cpu(dsn)
                        t = totals[kind]
                        t.commits += await commits(dsn) - x0
                        t.gateway_cpu_s += gw1 - cpu0
                        t.postgres_cpu_s += (pg1 - pg0) if pg0 is not None and pg1 is not None else float("nan")
                        t.client_cpu_s += client1 - client0
                        t.seconds += len(chunk) / rate
                        t.letters += len(chunk)
                        t.latencies += lat
                        for code, count in codes.items():
                            t.outcomes[code] = t.outcomes.get(code, 0) + count
                return totals

            results = asyncio.run(run())
        finally:
            gw.stop()
    print("status codes: " + "  ".join(f"{kind}: {t.outcomes}" for kind, t in results.items()))
    if set(results["native"].outcomes) != {202} or any(set(t.outcomes) != {200} for kind, t in results.items()
                                                      if kind != "native"):
        sys.exit("some letters were refused: the figures would not measure accepting letters")
    nat = results["native"]
    out: dict[str, object] = dict(letters=n, soap_bytes=len(soap[0]), native_bytes=len(native[0]),
                                  processes=args.processes, analyzed=int(args.analyze))
    for kind, t in results.items():
        out.update({f"{kind}_letters_per_s": t.letters / t.seconds,
                    f"{kind}_p99_ms": percentile(t.latencies, 99) * 1000,
                    f"{kind}_cpu_ms_per_letter": t.per_letter_ms(t.gateway_cpu_s),
                    f"{kind}_pg_cpu_ms_per_letter": t.per_letter_ms(t.postgres_cpu_s),
                    f"{kind}_client_cpu_ms_per_letter": t.per_letter_ms(t.client_cpu_s),
                    f"{kind}_commits_per_letter": t.commits / t.letters})
    ecms = results["ecms"]
    out.update(ratio=(ecms.letters / ecms.seconds) / (nat.letters / nat.seconds),
               cpu_ratio=nat.gateway_cpu_s / ecms.gateway_cpu_s,
               # what the rates' ratio would be if CPU were the only limit: all the CPU a letter costs
               cpu_bound_ratio=nat.all_cpu_ms / ecms.all_cpu_ms)
    for kind in ("legacy", "legacy_tls"):
        if kind in results:
            t = results[kind]
            out.update({f"{kind}_ratio": (t.letters / t.seconds) / (nat.letters / nat.seconds),
                        f"{kind}_cpu_bound_ratio": nat.all_cpu_ms / t.all_cpu_ms})
    print(figures(**out))


if __name__ == "__main__":
    main()
