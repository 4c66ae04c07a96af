"""The gateway against its peer, django-pyas2, back to back at the same concurrency (8 in flight).

The peer (``../shared/peers/pyas2/run.sh``: django-pyas2 from PyPI under /tmp,
gunicorn with 2 sync workers, PostgreSQL 15, signed AS2 messages of ~5 KB each
answered with a signed MDN) runs first; then ``bench/submit.py --signed --processes 1``
(one gateway process, ``gateway serve``'s default and its measured best at 8 in flight here: see
``GATEWAY_PROCESSES``; XAdES-signed letters of ~5 KB, signatures required, gateway seal and signed
receipts, durability as shipped). Both run on the same CPython build: the peer's virtualenv is made
from the interpreter this script runs on (made anew when it was made from another). CPU per message is server + database for
both: the peer's gunicorn tree plus its PostgreSQL tree, the gateway's
processes plus every PostgreSQL process. ratio = peer CPU per message / gateway
CPU per letter.

    python bench/versus.py            # 2000 messages each
    python bench/versus.py --quick    # 400 messages each (the peer's venv is reused when present)

Prints ``peer_cpu_ms= gateway_cpu_ms= ratio= peer_per_s= gateway_per_s= peer_p99_ms= gateway_p99_ms=`` last.
On a machine shared with other jobs both sides are inflated alike; read the ratio, and run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "pyas2" / "run.sh"


def interpreter() -> str:
    """The CPython build the gateway runs on (the base of its virtualenv): the peer is given the same one.

    Builds differ by a fifth or more in CPU (a distribution's PGO + LTO build against one compiled
    without them), so a ratio between two builds would measure the builds, not the servers.
    """
    return str(Path(getattr(sys, "_base_executable", sys.executable)).resolve())


def peer_venv_interpreter(root: Path) -> str | None:
    """The interpreter the peer's kept virtualenv was made from (its pyvenv.cfg), or None."""
    cfg = root / "venv" / "pyvenv.cfg"
    if not cfg.exists():
        return None
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "executable":
            return str(Path(value.strip()).resolve())
    return None


def run_peer(n: int, root: Path, port: int, pg_port: int, wait_quiet: int, python: str) -> dict:
    env = {**os.environ, "ROOT": str(root), "N": str(n), "LEVELS": "8", "DBS": "postgres", "PORT": str(port),
           "PGPORT": str(pg_port), "WAIT_QUIET": str(wait_quiet), "RESULTS_DIR": str(root / "results"),
           "PYTHON": python}
    if peer_venv_interpreter(root) == python:
        env["REUSE_VENV"] = "1"  # else run.sh makes the peer's virtualenv anew from this interpreter
    out = subprocess.run(["bash", str(PEER)], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"the peer's run.sh failed ({out.returncode})")
    rows = [json.loads(line) for line in (root / "results" / "last_run.jsonl").read_text().splitlines() if line]
    row = next(r for r in rows if r["concurrency"] == 8)
    print(f"peer: {out.stdout.strip().splitlines()[-1]}", flush=True)
    return row


#: Gateway processes for the comparison: one, ``gateway serve``'s own default (``GATEWAY_WORKERS``). One against
#: two at 8 in flight on this 2-core machine, ``bench/submit.py --signed --clients 8 --letters 1000``, 14 pairs
#: alternated (load 3.8-14): one process spent less gateway + PostgreSQL CPU a letter in 10 (median of the pairs'
#: ratios 0.88, spread 0.68-1.22) and answered more letters/s in 9 (median ratio 1.07, spread 0.58-2.1; p99 160
#: against 231 ms, medians). One event loop carries 8 in flight; a second process adds its own loops, background
#: rounds and a share of the two cores that PostgreSQL and the load generator need.
GATEWAY_PROCESSES = 1


def run_gateway(n: int, processes: int = GATEWAY_PROCESSES) -> dict[str, str]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "submit.py"), "--signed", "--clients", "8",
                          "--letters", str(n), "--processes", str(processes)], capture_output=True, text=True,
                         check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"bench/submit.py failed ({out.returncode})")
    last = out.stdout.strip().splitlines()[-1]
    print(f"gateway: {last}", flush=True)
    return dict(pair.split("=", 1) for pair in last.split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="400 messages each instead of 2000")
    ap.add_argument("-n", type=int, help="messages each")
    ap.add_argument("--peer-root", type=Path, default=Path("/tmp/pyas2peer-versus"))
    ap.add_argument("--peer-port", type=int, default=8472)
    ap.add_argument("--peer-pg-port", type=int, default=5435)
    ap.add_argument("--gateway-processes", type=int, default=GATEWAY_PROCESSES,
                    help="gateway worker processes (bench/submit.py --processes; default 1, see GATEWAY_PROCESSES)")
    ap.add_argument("--wait-quiet", type=int, default=10,
                    help="seconds the peer waits for the machine to go idle before its timed run")
    args = ap.parse_args()
    n = args.n or (400 if args.quick else 2000)
    python = interpreter()
    peer = run_peer(n, args.peer_root, args.peer_port, args.peer_pg_port, args.wait_quiet, python)
    gateway = run_gateway(n, args.gateway_processes)
    peer_cpu = float(peer["server_cpu_ms_per_msg"]) + float(peer["db_cpu_ms_per_msg"])
    gateway_cpu = float(gateway["gateway_cpu_ms_per_letter"]) + float(gateway["postgres_cpu_ms_per_letter"])
    print(f"peer: server {peer['server_cpu_ms_per_msg']} + database {peer['db_cpu_ms_per_msg']} ms CPU per message, "
          f"other jobs {peer['other_cores']} cores; gateway: {gateway['gateway_cpu_ms_per_letter']} + PostgreSQL "
          f"{gateway['postgres_cpu_ms_per_letter']} ms CPU per letter; {os.cpu_count()} cores; both on {python}")
    print(f"peer_cpu_ms={peer_cpu:.2f} gateway_cpu_ms={gateway_cpu:.2f} ratio={peer_cpu / gateway_cpu:.1f} "
          f"peer_per_s={peer['msgs_per_s']} gateway_per_s={gateway['letters_per_s']} "
          f"peer_p99_ms={peer['p99_ms']} gateway_p99_ms={gateway['p99_ms']} n={n} concurrency=8 "
          f"gateway_processes={gateway['processes']} "
          f"python={platform.python_version()}")


if __name__ == "__main__":
    main()
