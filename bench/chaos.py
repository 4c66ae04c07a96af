"""Chaos run: kill gateways, crash PostgreSQL, and let offices misbehave, under load; then count.

One command, bounded in time, stops everything it started (by pid):

    python bench/chaos.py --quick          # about 75 s
    python bench/chaos.py                  # about six minutes
    python bench/chaos.py --seconds 300 --kill-every 3

Two ``gateway serve`` processes share a dedicated embedded PostgreSQL (never
the one of another run: it gets crashed). Part one (crash): closed-loop
clients submit letters to both; a gateway gets SIGKILL every few seconds and is
restarted; PostgreSQL is crashed once mid-run (SIGKILL to the postmaster and
every backend) and started again. Part two (offices): circular letters to a
healthy office and five unruly ones; the healthy office's latency with the
others behaving and misbehaving, and every letter delivered after they
recover. See :mod:`tests.chaos.harness` for the rules of the books.

Prints its figures last, on one line of key=value pairs; exits 1 if any
accepted letter was lost or delivered twice (under two delivery ids).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figures  # noqa: E402
from gateway.core.logging import configure
from tests.chaos.harness import World, crash_scenario, office_scenario  # noqa: E402


async def main(args) -> int:

    configure("console", "warning")  # the harness's own migrations and pools: quiet
    t0 = time.monotonic()
    world = World(processes=args.processes, lease_s=args.lease, keep_workdir=args.keep,
                  env={"GATEWAY_DISPATCH_POLL_INTERVAL_S": str(args.poll)})
    crash = offices = None
    try:
        await world.open()
        print(f"world: {args.processes} gateways on PostgreSQL pid {world.pg.pid()}, workdir {world.workdir}")
        if args.mode in ("both", "crash"):
            crash = await crash_scenario(world, seconds=args.seconds, clients=args.clients,
                                         kill_every_s=args.kill_every, pg_restarts=args.pg_restarts,
                                         pg_down_s=args.pg_down)
            print(f"crash: accepted={crash.accepted} letters, {crash.expected} deliveries expected, "
                  f"{crash.delivered} delivered, lost={crash.lost}, duplicates={crash.duplicates}, "
                  f"missing_in_db={crash.missing_in_db}, dead={crash.dead}, wire_repeats={crash.wire_repeats}, "
                  f"receipts back={crash.receipts} (twice: {crash.receipt_duplicates}), "
                  f"audit chain {crash.audit_events} events, problems={crash.audit_problems[:5]}")
            print(f"crash: kills={crash.kills} pg_restarts={crash.pg_restarts} start_failures={crash.start_failures}"
                  f" 200-duplicate-answers={crash.duplicates_answered} client retries={crash.retries}"
                  f" refused={crash.refused} unresolved={crash.unresolved}"
                  f" load={crash.load_s:.1f}s settle={crash.settle_s:.1f}s")
        if args.mode in ("both", "offices"):
            offices = await office_scenario(world, window_s=args.window, pairs=args.pairs, rate=args.rate,
                                            kinds=tuple(args.unruly.split(",")),
                                            long_down_s=args.long_down)
            print(f"offices: {offices.letters} circular letters to 6 offices; healthy office accept->receipt "
                  f"p50 {offices.baseline_p50_ms:.1f} ms -> {offices.unruly_p50_ms:.1f} ms "
                  f"(x{offices.ratio:.3f}), p90 {offices.baseline_p90_ms:.1f} -> {offices.unruly_p90_ms:.1f} ms "
                  f"(x{offices.ratio_p90:.3f}); samples {offices.samples}")
            if offices.long_down_s:
                print(f"offices: down office off for {offices.long_down_s:.0f}s, everything it missed arrived "
                      f"{offices.long_recover_s:.1f}s after it came back")
            print(f"offices: after recovery undelivered={offices.undelivered} duplicates={offices.duplicates} "
                  f"dead={offices.dead} recovered_in={offices.recover_s:.1f}s attempts={offices.attempts}")
    finally:
        if (crash is not None and not crash.ok) or (offices is not None and not offices.ok):
            print(world.logs_tail(), file=sys.stderr)
        await world.close()
    elapsed = time.monotonic() - t0
    kv = {}
    lost = duplicates = 0
    if crash is not None:
        lost += crash.lost + crash.missing_in_db
        duplicates += crash.duplicates
        kv.update(accepted=crash.accepted, delivered=crash.delivered, lost=crash.lost, duplicates=crash.duplicates,
                  kills=crash.kills, pg_restarts=crash.pg_restarts, missing_in_db=crash.missing_in_db,
                  wire_repeats=crash.wire_repeats, refused=sum(crash.refused.values()),
                  receipt_duplicates=crash.receipt_duplicates, audit_problems=len(crash.audit_problems),
                  accepted_per_s=crash.accepted / crash.load_s,
                  delivered_per_s=crash.delivered / (crash.load_s + crash.settle_s), settle_s=crash.settle_s)
    if offices is not None:
        lost += offices.undelivered
        duplicates += offices.duplicates
        kv.update(office_letters=offices.letters, office_undelivered=offices.undelivered,
                  office_duplicates=offices.duplicates, healthy_p50_ms=offices.baseline_p50_ms,
                  healthy_p50_unruly_ms=offices.unruly_p50_ms, latency_ratio=offices.ratio,
                  latency_ratio_p90=offices.ratio_p90, recover_s=offices.recover_s,
                  long_down_s=offices.long_down_s, long_recover_s=offices.long_recover_s)
    kv["elapsed_s"] = elapsed
    print(figures(**kv))
    failed = lost > 0 or duplicates > 0 or (crash is not None and not crash.ok)
    return 1 if failed else 0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="about 75 s in all")
    p.add_argument("--seconds", type=float, help="seconds of load in the crash part (default 120, quick 20)")
    p.add_argument("--window", type=float, help="seconds of each office window (default 10, quick 5)")
    p.add_argument("--long-down", type=float,
                   help="then one long outage of the down office, seconds (default 60, quick 10; 0 = none)")
    p.add_argument("--pairs", type=int, help="baseline/unruly window pairs in the office part (default 5, quick 2)")
    p.add_argument("--mode", choices=("both", "crash", "offices"), default="both")
    p.add_argument("--clients", type=int, default=8, help="closed-loop clients in the crash part")
    p.add_argument("--processes", type=int, default=2, help="gateway processes")
    p.add_argument("--kill-every", type=float, help="seconds between SIGKILLs (default 4, quick 5)")
    p.add_argument("--pg-restarts", type=int, default=1, help="PostgreSQL crashes in the crash part")
    p.add_argument("--pg-down", type=float, default=1.0, help="seconds PostgreSQL stays down")
    p.add_argument("--lease", type=float, default=4.0,
                   help="dispatch lease (GATEWAY_DISPATCH_LEASE_S; more than the 2 s request timeout)")
    p.add_argument("--poll", type=float, default=0.25,
                   help="dispatcher idle poll interval (GATEWAY_DISPATCH_POLL_INTERVAL_S; the default)")
    p.add_argument("--rate", type=float, default=10.0, help="circular letters a second in the office part")
    p.add_argument("--unruly", default="down,slow,error,reset,hang",
                   help="which offices misbehave in the office part (comma-separated)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (gateway logs)")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (20.0 if args.quick else 120.0)
    args.window = args.window or (5.0 if args.quick else 10.0)
    args.pairs = args.pairs or (2 if args.quick else 5)
    if args.long_down is None:
        args.long_down = 10.0 if args.quick else 60.0
    args.kill_every = args.kill_every or (5.0 if args.quick else 4.0)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
