"""``gateway audit ...`` and ``gateway users ...``: thin commands over :mod:`gateway.audit` and
:mod:`gateway.storage.users`.

Passwords are read from a terminal prompt (twice) or, when stdin is not a
terminal, from the first line of stdin; never from argv, never logged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
import zipfile
from pathlib import Path

import aiohttp
from cryptography import x509

from gateway.audit import ers, live
from gateway.audit.evidence import build_bundle
from gateway.audit.export import drop_archived, export_next
from gateway.audit.ltv_check import check_bundle_at
from gateway.audit.renewal import RenewalError, RenewalPolicy
from gateway.audit.renewal import renew as run_renewal
from gateway.audit.sealer import ChainSealer
from gateway.audit.signing import load_certificate
from gateway.audit.tsa import check_checkpoints, http_digest_stamper
from gateway.audit.verify import Problem, load_files, parse_export, verify_path
from gateway.audit.wiring import signer_from_settings
from gateway.cli import labels
from gateway.cli.common import Progress, actor, certificate_file, now, open_pool
from gateway.core.clock import BANGKOK, SystemClock
from gateway.storage import users
from pki.ers import parse_weak_hashes, strong_hash
from pki.thaidate import thai_date, thai_time


def _read_password(prompt: str = "Password: ") -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _cert(path: str) -> x509.Certificate:
    return certificate_file(path, load_certificate)


async def verify(args: argparse.Namespace) -> int:
    if not args.cert:
        print("gateway: --cert (the gateway certificate, PEM) is required", file=sys.stderr)
        return 2
    cert = _cert(args.cert)
    try:
        at = _day(args.at) if getattr(args, "at", None) else None
    except ValueError:
        print(f"gateway: --at {args.at!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    try:
        weak = parse_weak_hashes(getattr(args, "weak_hashes", "") or "")
    except ValueError as exc:
        print(f"gateway: --weak-hashes: {exc}", file=sys.stderr)
        return 2
    er_verifier = (ers.bundle_verifier(at, [_cert(p) for p in getattr(args, "tsa_root", [])] + [cert], weak=weak)
                   if at is not None else None)
    if args.database:
        _, pool = await open_pool(args)
        try:
            rep = await live.verify_database(pool, cert, progress=Progress("ตรวจสายบันทึก (verifying the chain)"))
            for pk in getattr(args, "letter", None) or []:
                bundle = await build_bundle(pool, pk, certificate=cert)
                if bundle is None:
                    rep.problems.append(Problem(None, "format", f"letter {pk} is not in the database"))
                elif at is not None:
                    one = await check_bundle_at(bundle, cert, at=at, er_verifier=er_verifier)
                    rep.problems += one.problems
                    rep.notes += [f"letter {pk}: {n}" for n in one.notes]
        finally:
            await pool.close()
    else:
        if not args.path:
            print("gateway: give an archive file, a directory, a bundle, or --database", file=sys.stderr)
            return 2
        path = Path(args.path)
        if at is not None and path.is_file() and zipfile.is_zipfile(path):
            rep = await check_bundle_at(path.read_bytes(), cert, at=at, er_verifier=er_verifier)
        else:
            rep = verify_path(path, cert)
            if at is not None:
                rep.notes.append("archive files carry each letter's validation report by name only (signed); "
                                 "judge a letter --at a date from its evidence bundle or --database --letter")
        try:
            stamped = [c for name, data in load_files(Path(args.path)) if name.endswith(".jsonl")
                       for c in parse_export(name, data).checkpoints if c.get("tsa_token")]
        except Exception:  # verify_path has already reported unreadable files
            stamped = []
        await check_checkpoints(rep, stamped)
    print(rep.summary())
    return 0 if rep.ok else 1


def _day(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` as the start of that day, UTC (the verifier's now)."""
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)


async def export(args: argparse.Namespace) -> int:
    settings, pool = await open_pool(args)
    try:
        if args.checkpoint:
            signer = signer_from_settings(settings)
            if signer is None:
                print("gateway: --checkpoint needs GATEWAY_AUDIT_KEY_PATH and GATEWAY_AUDIT_CERT_PATH",
                      file=sys.stderr)
                return 2
            await ChainSealer(pool, clock=SystemClock(), signer=signer).seal_once(force_checkpoint=True)
        out = await export_next(pool, Path(args.out), now=now(), through=args.through,
                                progress=Progress("ส่งออกบันทึก (exporting)"))
    finally:
        await pool.close()
    print(f"ส่งออกแล้ว (exported) {out.path}: {out.events:,} เหตุการณ์ (events), ลำดับ (seq) "
          f"{out.first_seq}..{out.last_seq}, sha256 {out.sha256}")
    return 0


async def status(args: argparse.Namespace) -> int:
    _, pool = await open_pool(args)
    try:
        st = await live.status(pool)
    finally:
        await pool.close()
    for label, value in status_lines(st):
        print(f"{label:<44} {value}")
    return 0


#: ``gateway audit status``: each field of :class:`live.ChainStatus`, Thai first, English in brackets.
STATUS_LABELS = {
    "head_seq": "ลำดับล่าสุดที่ผนึกแล้ว (chain head seq)",
    "count": "เหตุการณ์ในสาย (events chained)",
    "unsealed": "ยังไม่ผนึก (unsealed events)",
    "sealed_at": "ผนึกล่าสุดเมื่อ (sealed at)",
    "last_checkpoint_seq": "จุดตรวจล่าสุด (last checkpoint seq)",
    "last_checkpoint_at": "ลงนามจุดตรวจเมื่อ (checkpoint signed at)",
    "last_checkpoint_timestamped": "ประทับเวลาแล้ว (time-stamped)",
    "archived_through": "ส่งออกถึงลำดับ (archived through)",
    "dropped_through": "ลบจากฐานข้อมูลถึงลำดับ (dropped through)",
}


def _human(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "ใช่ (yes)" if value else "ไม่ (no)"
    if isinstance(value, dt.datetime):
        local = value.astimezone(BANGKOK)
        return f"{thai_date(local)} {thai_time(local)} น. ({value.isoformat(timespec='seconds')})"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def status_lines(st: live.ChainStatus) -> list[tuple[str, str]]:
    """Every field, labelled (a field added to ChainStatus later shows under its own name)."""
    return [(STATUS_LABELS.get(k, k), _human(v)) for k, v in st.__dict__.items()]


async def drop(args: argparse.Namespace) -> int:
    settings, pool = await open_pool(args)
    try:
        n = await drop_archived(pool, through=args.through, now=now(),
                                retention_days=settings.audit_retention_days)
    finally:
        await pool.close()
    print(f"ลบจากฐานข้อมูลแล้ว (dropped) {n:,} เหตุการณ์ที่ส่งออกแล้ว (archived events) ถึงลำดับ (up to seq) "
          f"{args.through}")
    return 0


async def users_add(args: argparse.Namespace) -> int:
    password = _read_password()
    _, pool = await open_pool(args)
    try:
        u = await users.add(pool, username=args.username, password=password, role=users.Role(args.role),
                            agency=args.agency, now=now(), actor=actor())
    finally:
        await pool.close()
    print(f"เพิ่มผู้ใช้แล้ว (user added): {u.username} {labels.coded(labels.ROLE, u.role.value)}"
          + (f" หน่วยงาน (agency) {u.agency}" if u.agency else ""))
    return 0


async def users_passwd(args: argparse.Namespace) -> int:
    password = _read_password("New password: ")
    _, pool = await open_pool(args)
    try:
        await users.set_password(pool, args.username, password, now=now(), actor=actor())
    finally:
        await pool.close()
    print(f"เปลี่ยนรหัสผ่านแล้ว (password changed): {args.username}")
    return 0


async def users_disable(args: argparse.Namespace) -> int:
    _, pool = await open_pool(args)
    try:
        await users.set_disabled(pool, args.username, not args.enable, now=now(), actor=actor())
    finally:
        await pool.close()
    print(f"{'เปิดใช้' if args.enable else 'ระงับ'}ผู้ใช้แล้ว (user {'enabled' if args.enable else 'disabled'}): "
          f"{args.username}")
    return 0


async def users_token(args: argparse.Namespace) -> int:
    _, pool = await open_pool(args)
    try:
        token = await users.issue_token(pool, args.username, args.label, now=now(), actor=actor())
    finally:
        await pool.close()
    print(token)
    print("เก็บไว้ตอนนี้ จะไม่แสดงอีก (store it now: it is not shown again; the gateway keeps only its SHA-256)",
          file=sys.stderr)
    return 0


# ---- gateway audit renew: RFC 4998 Evidence Records (gateway.audit.renewal) ----

async def renew(args: argparse.Namespace) -> int:
    """Hash-tree renewal of every record in a weak hash, then time-stamp renewal of every tip due."""
    settings, pool = await open_pool(args)
    if not settings.audit_tsa_url:
        await pool.close()
        print("gateway: renewal needs a time-stamping authority (GATEWAY_AUDIT_TSA_URL)", file=sys.stderr)
        return 2
    weak = parse_weak_hashes(settings.weak_hashes)
    policy = RenewalPolicy(weak=weak, alg=strong_hash(settings.er_hash, weak), chunk=args.chunk,
                           margin=dt.timedelta(days=settings.er_renew_days))
    tty = sys.stderr.isatty()
    shown = {"open": False}  # a progress line not ended yet
    names = {"hash-tree": "ต่ออายุต้นไม้แฮช / hash-tree renewal", "timestamp": "ต่ออายุตราเวลา / time-stamp renewal"}

    def progress(phase: str, done: int, total: int) -> None:
        # a person at a terminal sees one line redrawn; a pipe or a file gets nothing unless asked
        if tty:
            pct = f" {100 * done // total}%" if total else ""
            # the line ends when its phase is done, so a log line or the next phase starts on its own
            shown["open"] = done < total
            print(f"\r{names[phase]}: {done}/{total}{pct}", end="" if shown["open"] else "\n", file=sys.stderr,
                  flush=True)
        elif args.progress:
            print(f"{phase} {done}/{total}", file=sys.stderr, flush=True)

    try:
        async with aiohttp.ClientSession() as session:
            report = await run_renewal(pool, clock=SystemClock(), stamper=http_digest_stamper(
                session, settings.audit_tsa_url), policy=policy, progress=progress)
    except RenewalError as exc:
        if shown["open"]:
            print(file=sys.stderr)
        print(f"gateway: {exc} (what was committed stands; run again to resume)", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    if shown["open"]:
        print(file=sys.stderr)
    rate = report.bytes_hashed / 1e6 / report.seconds if report.seconds else 0.0
    resumed = f", resumed after item {report.resumed_after}" if report.resumed_after else ""
    print(f"ต่ออายุแล้ว / renewed: {report.rehashed} records re-hashed with {policy.alg} "
          f"({report.bytes_hashed / 1e6:.1f} MB, {rate:.1f} MB/s), {report.tips_renewed} time-stamps renewed, "
          f"{report.tokens} tokens, {report.seconds:.1f} s{resumed}")
    return 0
