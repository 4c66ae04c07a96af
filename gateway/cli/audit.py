"""``gateway audit ...`` and ``gateway users ...``: thin commands over :mod:`gateway.audit` and :mod:`gateway.storage.users`.

Passwords are read from a terminal prompt (twice) or, when stdin is not a
terminal, from the first line of stdin; never from argv, never logged.
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def _pool(args):
    from gateway.cli.main import _settings
    from gateway.storage import db

    settings = _settings(args)
    import asyncio

    dsn = settings.database_url or await asyncio.to_thread(db.start_embedded, settings.data_dir)
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    return settings, pool


def _read_password(prompt: str = "Password: ") -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _cert(path: str):
    from gateway.audit.signing import load_certificate

    return load_certificate(Path(path).read_bytes())


async def _verify(args) -> int:
    from gateway.audit import live
    from gateway.audit.verify import verify_path

    if not args.cert:
        print("gateway: --cert (the gateway certificate, PEM) is required", file=sys.stderr)
        return 2
    cert = _cert(args.cert)
    if args.database:
        _, pool = await _pool(args)
        try:
            rep = await live.verify_database(pool, cert)
        finally:
            await pool.close()
    else:
        if not args.path:
            print("gateway: give an archive file, a directory, a bundle, or --database", file=sys.stderr)
            return 2
        rep = verify_path(Path(args.path), cert)
        from gateway.audit.tsa import check_checkpoints
        from gateway.audit.verify import load_files, parse_export

        try:
            stamped = [c for name, data in load_files(Path(args.path)) if name.endswith(".jsonl")
                       for c in parse_export(name, data).checkpoints if c.get("tsa_token")]
        except Exception:  # verify_path has already reported unreadable files
            stamped = []
        await check_checkpoints(rep, stamped)
    print(rep.summary())
    return 0 if rep.ok else 1


async def _export(args) -> int:
    from gateway.audit.export import export_next
    from gateway.audit.sealer import ChainSealer
    from gateway.audit.wiring import signer_from_settings
    from gateway.core.clock import SystemClock

    settings, pool = await _pool(args)
    try:
        if args.checkpoint:
            signer = signer_from_settings(settings)
            if signer is None:
                print("gateway: --checkpoint needs GATEWAY_AUDIT_KEY_PATH and GATEWAY_AUDIT_CERT_PATH", file=sys.stderr)
                return 2
            await ChainSealer(pool, clock=SystemClock(), signer=signer).seal_once(force_checkpoint=True)
        out = await export_next(pool, Path(args.out), now=_now(), through=args.through)
    finally:
        await pool.close()
    print(f"{out.path}: {out.events} events, seq {out.first_seq}..{out.last_seq}, sha256 {out.sha256}")
    return 0


async def _status(args) -> int:
    from gateway.audit import live

    _, pool = await _pool(args)
    try:
        st = await live.status(pool)
    finally:
        await pool.close()
    for k, v in st.__dict__.items():
        print(f"{k:28} {v}")
    return 0


async def _drop(args) -> int:
    from gateway.audit.export import drop_archived

    settings, pool = await _pool(args)
    try:
        n = await drop_archived(pool, through=args.through, now=_now(), retention_days=settings.audit_retention_days)
    finally:
        await pool.close()
    print(f"dropped {n} archived events up to seq {args.through} from the database")
    return 0


async def _users_add(args) -> int:
    from gateway.storage import users

    password = _read_password()
    _, pool = await _pool(args)
    try:
        u = await users.add(pool, username=args.username, password=password, role=users.Role(args.role),
                            agency=args.agency, now=_now(), actor=_actor())
    finally:
        await pool.close()
    print(f"user {u.username} added ({u.role.value}{' ' + u.agency if u.agency else ''})")
    return 0


async def _users_passwd(args) -> int:
    from gateway.storage import users

    password = _read_password("New password: ")
    _, pool = await _pool(args)
    try:
        await users.set_password(pool, args.username, password, now=_now(), actor=_actor())
    finally:
        await pool.close()
    print(f"password of {args.username} changed")
    return 0


async def _users_disable(args) -> int:
    from gateway.storage import users

    _, pool = await _pool(args)
    try:
        await users.set_disabled(pool, args.username, not args.enable, now=_now(), actor=_actor())
    finally:
        await pool.close()
    print(f"user {args.username} {'enabled' if args.enable else 'disabled'}")
    return 0


async def _users_token(args) -> int:
    from gateway.storage import users

    _, pool = await _pool(args)
    try:
        token = await users.issue_token(pool, args.username, args.label, now=_now(), actor=_actor())
    finally:
        await pool.close()
    print(token)
    print("store it now: it is not shown again (the gateway keeps only its SHA-256)", file=sys.stderr)
    return 0


def add_commands(sub, common) -> None:
    a = sub.add_parser("audit", help="tamper-evident audit log").add_subparsers(dest="audit_command", required=True)
    v = a.add_parser("verify", help="verify archive files, an evidence bundle or the live database")
    common(v)
    v.add_argument("path", nargs="?", help="archive file, directory of archives, or evidence bundle (.zip)")
    v.add_argument("--cert", help="the gateway certificate (PEM or DER)")
    v.add_argument("--database", action="store_true", help="verify the chain in the database")
    v.set_defaults(func=_verify)
    e = a.add_parser("export", help="export the next closed range (up to a checkpoint) to a file")
    common(e)
    e.add_argument("--out", required=True, help="archive directory")
    e.add_argument("--through", type=int, help="checkpoint seq to end at (default: the latest)")
    e.add_argument("--checkpoint", action="store_true", help="sign a checkpoint at the head first")
    e.set_defaults(func=_export)
    s = a.add_parser("status", help="chain head, unsealed events, last checkpoint, archives")
    common(s)
    s.set_defaults(func=_status)
    d = a.add_parser("drop", help="delete an exported range from the database (respects retention)")
    common(d)
    d.add_argument("--through", type=int, required=True, help="last seq of an exported archive")
    d.set_defaults(func=_drop)

    u = sub.add_parser("users", help="console users and staff API tokens").add_subparsers(
        dest="users_command", required=True)
    ua = u.add_parser("add", help="add a user (password from the prompt or stdin)")
    common(ua)
    ua.add_argument("username")
    ua.add_argument("--role", required=True, choices=["agency", "operator", "auditor", "admin"])
    ua.add_argument("--agency", help="agency code (agency users only)")
    ua.set_defaults(func=_users_add)
    up = u.add_parser("passwd", help="set a user's password (prompt or stdin)")
    common(up)
    up.add_argument("username")
    up.set_defaults(func=_users_passwd)
    ud = u.add_parser("disable", help="disable (or --enable) a user")
    common(ud)
    ud.add_argument("username")
    ud.add_argument("--enable", action="store_true")
    ud.set_defaults(func=_users_disable)
    ut = u.add_parser("token", help="issue an API token for a staff user (printed once)")
    common(ut)
    ut.add_argument("username")
    ut.add_argument("--label", default="api")
    ut.set_defaults(func=_users_token)
