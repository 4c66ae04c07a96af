"""``gateway ecms-key ...``: URL keys and source networks of an agency's e-CMS client.

``issue`` prints a new key once, with the URL the agency's client is to use; only its SHA-256
digest is kept, in the agency's directory entry (``ecms_admission``). ``rotate`` issues a new key
and retires the others after an overlap (``--overlap-days``), so the agency changes its URL
without a gap; ``revoke`` refuses a key at once; ``list`` shows the keys (never a key itself: it
is not kept) and the source networks; ``networks`` sets the source networks the legacy listener
admits the agency from. Every change is a new directory version and an audit event
(``directory.changed``), in force in every running gateway process within a second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable

import asyncpg

from gateway.cli.common import actor, now, open_pool
from gateway.core.admission import (
    EcmsAdmission,
    admission_from_dict,
    with_key_revoked,
    with_networks,
    with_new_key,
)
from gateway.core.errors import NotFound
from gateway.ecms.settings import ECMS_PATH
from gateway.storage import directory as store
from pki.thaidate import thai_date, thai_time


async def change_admission(pool: asyncpg.Pool, code: str, change: Callable[[EcmsAdmission | None], EcmsAdmission],
                           *, at: dt.datetime, who: str, reason: str) -> int:
    """Apply ``change`` to agency ``code``'s admission: a new directory version (returned) and its audit event."""
    async with pool.acquire() as conn:
        entry = (await store.entries(conn)).get(code)
        if entry is None:
            raise NotFound(f"agency {code} is not in the directory", code="agency.not_found", field="code")
        raw = entry.get("ecms_admission")
        current = admission_from_dict(raw, "ecms_admission", code) if raw is not None else None
        version, _ = await store.apply(conn, {code: dict(entry, ecms_admission=change(current).to_dict())}, at=at,
                                       actor=who, reason=reason, only=False)
    return version


def _url(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/ecms/{key}{ECMS_PATH}"


async def _issue(args: argparse.Namespace, retire_after: dt.timedelta | None) -> int:
    settings, pool = await open_pool(args)
    issued: list[str] = []
    at = now()

    def change(current: EcmsAdmission | None) -> EcmsAdmission:
        key, adm = with_new_key(current, at, retire_others_at=at + retire_after if retire_after is not None else None)
        issued.append(key)
        return adm

    what = "rotated" if retire_after is not None else "issued"
    try:
        version = await change_admission(pool, args.code, change, at=at, who=actor(),
                                         reason=args.reason or f"{args.code}: e-CMS URL key {what}")
    finally:
        await pool.close()
    key = issued[-1]
    print(key)  # standard output: the key alone, for a script to pass on
    print(f"กุญแจใหม่ของ {args.code} (แสดงครั้งเดียว ไม่มีการเก็บไว้): new URL key of {args.code}, shown once and kept "
          f"nowhere; directory version {version}\n  URL (HTTPS only): {_url(args.base_url or settings.base_url, key)}",
          file=sys.stderr)
    if retire_after is not None:
        print(f"  the previous keys stay valid until {thai_date(at + retire_after)} {thai_time(at + retire_after)} น.",
              file=sys.stderr)
    return 0


async def key_issue(args: argparse.Namespace) -> int:
    """Issue a URL key for an agency (and allow the URL-key mode); the key is printed once."""
    return await _issue(args, None)


async def key_rotate(args: argparse.Namespace) -> int:
    """Issue a new key; the agency's other keys retire after the overlap."""
    return await _issue(args, dt.timedelta(days=args.overlap_days))


async def key_revoke(args: argparse.Namespace) -> int:
    """Refuse one key (by its id, from ``list``) from now on."""
    _, pool = await open_pool(args)
    at = now()
    try:
        version = await change_admission(pool, args.code, lambda adm: with_key_revoked(adm, args.key_id, at), at=at,
                                         who=actor(), reason=args.reason or f"{args.code}: e-CMS URL key revoked")
    finally:
        await pool.close()
    print(f"key {args.key_id} of {args.code} revoked; directory version {version}", file=sys.stderr)
    return 0


async def key_networks(args: argparse.Namespace) -> int:
    """Set the agency's source networks (none: the legacy listener no longer admits it by network)."""
    _, pool = await open_pool(args)
    try:
        version = await change_admission(pool, args.code, lambda adm: with_networks(adm, args.networks, args.code),
                                         at=now(), who=actor(),
                                         reason=args.reason or f"{args.code}: e-CMS source networks set")
    finally:
        await pool.close()
    print(f"source networks of {args.code}: {', '.join(args.networks) or '(none)'}; directory version {version}",
          file=sys.stderr)
    return 0


async def key_list(args: argparse.Namespace) -> int:
    """The agency's admission: modes, keys (id, issued, retired) and source networks."""
    _, pool = await open_pool(args)
    try:
        entry = (await store.entries(pool)).get(args.code)
    finally:
        await pool.close()
    if entry is None:
        raise NotFound(f"agency {args.code} is not in the directory", code="agency.not_found", field="code")
    raw = entry.get("ecms_admission")
    adm = admission_from_dict(raw, "ecms_admission", args.code) if raw is not None else EcmsAdmission()
    at = now()
    print(f"{args.code}  modes (ช่องทางที่อนุญาต): {', '.join(adm.modes) or '-'}")
    for k in adm.keys:
        state = "ใช้ได้ valid" if k.accepted(at) else "เลิกใช้ retired"
        retired = f"  retires {thai_date(k.retired_at)} {thai_time(k.retired_at)}" if k.retired_at else ""
        print(f"  key {k.id}  issued {thai_date(k.issued_at)} {thai_time(k.issued_at)}{retired}  {state}")
    for n in adm.networks:
        print(f"  network {n}")
    return 0
