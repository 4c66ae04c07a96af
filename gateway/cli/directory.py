"""``gateway directory ...``: show, export, diff, import and set the directory in PostgreSQL.

An import first prints what it would change (added, changed, removed, with the route changes
named, since a route redirects an agency's letters) and applies only with ``--yes``; a file
with bad rows names every row and field and changes nothing. Every applied change is a new
directory version and an audit event, in force in every running gateway process within a
second (``LISTEN/NOTIFY``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli import labels
from gateway.cli.common import Progress, actor, now, open_pool
from gateway.core.certexpiry import certificate_entry
from gateway.core.directory import Directory, agency_from_dict
from gateway.core.directory_io import read_csv, read_organization_list, write_csv
from gateway.core.errors import ConfigError, NotFound
from gateway.core.lists import DistributionList, check_against, lists_from_dict
from gateway.storage import directory as store
from gateway.storage import lists as lists_store


def read_file(path: str) -> dict[str, dict[str, Any]]:
    """Entries from a directory JSON file, a CSV export or an e-CMS GetOrganizationList answer."""
    raw = Path(path).read_bytes()
    if path.endswith(".csv"):
        text = raw.decode("utf-8-sig")
        return read_csv(text, progress=Progress(f"อ่าน {Path(path).name}", text.count("\n") - 1))
    if raw.lstrip().startswith(b"<"):
        return read_organization_list(raw)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is neither CSV, XML nor JSON: {exc}", field="file") from None
    return {a.code: a.to_dict() for a in Directory.from_dict(data).all()}


def _route(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    route = dict(entry.get("route") or {})
    kind = route.pop("kind", "pull")
    return kind + (" " + " ".join(f"{k}={v}" for k, v in sorted(route.items())) if route else "")


def print_diff(changes: store.Diff, *, limit: int = 50) -> None:
    s = changes.summary()
    print(f"เพิ่ม (added) {s['added']}, แก้ไข (changed) {s['changed']}, ลบ (removed) {s['removed']}")
    for c in changes.changes[:limit]:
        name = (c.after or c.before or {}).get("name_th", "")
        line = f"  {c.kind:<8} {c.code} {name}"
        if _route(c.before) != _route(c.after) and c.before is not None and c.after is not None:
            line += f"  ROUTE {_route(c.before)} -> {_route(c.after)}"
        print(line)
    if len(changes.changes) > limit:
        print(f"  ... and {len(changes.changes) - limit} more")


async def directory_show(args: argparse.Namespace) -> int:
    _, pool = await open_pool(args)
    try:
        found = await store.entries(pool, at=args.at)
        entry = found.get(args.code)
        if entry is None:
            raise NotFound(f"agency {args.code} is not in the directory" + (f" at version {args.at}" if args.at
                                                                             else ""), code="agency.not_found")
        history = await store.history(pool, args.code) if args.history else None
    finally:
        await pool.close()
    if args.json:
        doc = entry if history is None else {**entry, "history": [
            {"version": h["version"], "at": h["at"].isoformat(), "actor": h["actor"], "reason": h["reason"]}
            for h in history]}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    print("\n".join(describe(entry)))
    if history is not None:
        print("ประวัติ (history):")
        for h in history:
            print(f"  ฉบับที่ (version) {h['version']}  {labels.when(h['at'])}  {h['actor']}: {h['reason']}")
    return 0


def describe(entry: dict[str, Any]) -> list[str]:
    """An agency's entry as a person reads it: Thai labels first, codes beside, Buddhist-era dates."""
    route = dict(entry.get("route") or {})
    kind = route.pop("kind", "pull")
    rows = [("รหัส (code)", entry["code"]),
            ("ชื่อ (name)", f"{entry.get('name_th', '')} / {entry.get('name_en', '')}"),
            ("ประเภท (kind)", labels.kind(entry.get("kind"))),
            ("สังกัด (parent)", entry.get("parent") or "-"),
            ("จังหวัด (province)", entry.get("province") or "-"),
            ("ช่องทางรับหนังสือ (route)", " ".join([labels.route(kind)]
                                                   + [f"{k}={v}" for k, v in sorted(route.items())]))]
    if entry.get("active") is False:
        rows.append(("สถานะ (status)", "ปิดใช้งาน (inactive)"))
    for i, c in enumerate(entry.get("certificates") or []):
        until = dt.datetime.fromisoformat(c["not_after"]) if c.get("not_after") else None
        retired = f", เลิกใช้ (retired) {labels.when(dt.datetime.fromisoformat(c['retired_at']))}" \
            if c.get("retired_at") else ""
        rows.append((f"ใบรับรอง (certificate) {i + 1}",
                     f"{c['sha256'][:16]}… {','.join(c.get('usage') or [])}, ใช้ได้ถึง (until) "
                     f"{labels.when(until)}{retired}"))
    wide = max(labels.width(k) for k, _ in rows)
    return [f"{labels.pad(k + ':', wide + 1)} {v}" for k, v in rows]


async def directory_export(args: argparse.Namespace) -> int:
    _, pool = await open_pool(args)
    try:
        version = args.at or await store.current_version(pool)
        directory = await store.load_at(pool, version)
    finally:
        await pool.close()
    text = (write_csv(directory.all()) if args.format == "csv"
            else json.dumps({"version": version, **directory.to_dict()}, ensure_ascii=False, indent=1) + "\n")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{len(directory)} agencies (version {version}) -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _plan(args: argparse.Namespace, new: dict[str, dict[str, Any]]) -> int:
    settings, pool = await open_pool(args)
    try:
        async with pool.acquire() as conn:
            before = await store.entries(conn)
            after = dict(new) if args.replace else {**before, **new}
            result = Directory.from_dict({"agencies": list(after.values())})  # the result must be whole
            lists = _lists_of(args.file)
            check_against(lists, result)
            changes = store.diff(before, after)
            print_diff(changes)
            if lists:
                print(f"รายชื่อส่งเวียน (distribution lists): {', '.join(lst.name for lst in lists)}")
            if not getattr(args, "yes", False):
                if changes.changes and args.run.endswith("import"):
                    print("nothing applied: run again with --yes to apply", file=sys.stderr)
                return 0
            async with conn.transaction():  # the agencies and the lists together, or nothing
                version, _ = await store.apply(conn, new, at=now(), actor=actor(), only=args.replace,
                                               reason=getattr(args, "reason", None) or f"import of {args.file}")
                if lists:
                    await lists_store.upsert(conn, lists, at=now())
    finally:
        await pool.close()
    print(f"applied as directory version {version}" if version else "nothing to change", file=sys.stderr)
    return 0


def _lists_of(path: str) -> tuple[DistributionList, ...]:
    """The ``"lists"`` section of a directory JSON file (CSV and e-CMS answers carry none)."""
    raw = Path(path).read_bytes()
    if path.endswith(".csv") or raw.lstrip().startswith(b"<"):
        return ()
    data = json.loads(raw)
    return lists_from_dict(data) if isinstance(data, dict) else ()


async def directory_diff(args: argparse.Namespace) -> int:
    args.yes = False
    return await _plan(args, read_file(args.file))


async def directory_import(args: argparse.Namespace) -> int:
    return await _plan(args, read_file(args.file))


def _set(entry: dict[str, Any], assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"{assignment!r} must be field=value", field="assignment")
    if key.startswith("route."):
        entry.setdefault("route", {})[key.removeprefix("route.")] = value
    elif key.startswith("contact."):
        entry.setdefault("contact", {})[key.removeprefix("contact.")] = value
    elif key in ("active", "generated"):
        entry[key] = value.lower() in ("1", "true", "yes")
    elif key in ("name_th", "name_en", "kind", "parent", "province", "district"):
        entry[key] = value or None
    else:
        raise ConfigError(f"{key} cannot be set here", field=key)


async def directory_set(args: argparse.Namespace) -> int:
    settings, pool = await open_pool(args)
    try:
        async with pool.acquire() as conn:
            entry = dict((await store.entries(conn)).get(args.code) or {"code": args.code})
            if args.route_kind:
                entry["route"] = {"kind": args.route_kind}
            for assignment in args.assignments:
                _set(entry, assignment)
            agency_from_dict(entry, args.code)
            version, changes = await store.apply(conn, {args.code: entry}, at=now(), actor=actor(), only=False,
                                                 reason=args.reason or f"set {args.code}")
    finally:
        await pool.close()
    print_diff(changes)
    print(f"applied as directory version {version}" if version else "nothing to change", file=sys.stderr)
    return 0


async def directory_cert_add(args: argparse.Namespace) -> int:
    """Register a certificate for an agency (read from its PEM): during a rotation old and new are both
    accepted until the old one is retired."""
    entry_cert = certificate_entry(Path(args.pem).read_bytes(), args.usage.split(","), agency=args.code)
    return await _change_certificates(args, lambda certs: [c for c in certs if c["sha256"] != entry_cert.sha256]
                                      + [entry_cert.to_dict()], f"certificate {entry_cert.sha256[:16]} registered")


async def directory_cert_retire(args: argparse.Namespace) -> int:
    """Retire a registered certificate (after its successor is in use): refused from now on."""
    sha = args.sha256.lower().replace(":", "")

    def retire(certs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not any(c["sha256"] == sha for c in certs):
            raise NotFound(f"agency {args.code} has no certificate {sha}", code="agency.not_found", field="sha256")
        return [dict(c, retired_at=now().isoformat()) if c["sha256"] == sha else c for c in certs]
    return await _change_certificates(args, retire, f"certificate {sha[:16]} retired")


async def _change_certificates(args: argparse.Namespace, change: Any, what: str) -> int:
    _, pool = await open_pool(args)
    try:
        async with pool.acquire() as conn:
            entry = (await store.entries(conn)).get(args.code)
            if entry is None:
                raise NotFound(f"agency {args.code} is not in the directory", code="agency.not_found", field="code")
            entry = dict(entry, certificates=change(list(entry.get("certificates") or [])))
            version, changes = await store.apply(conn, {args.code: entry}, at=now(), actor=actor(), only=False,
                                                 reason=args.reason or f"{args.code}: {what}")
    finally:
        await pool.close()
    print(f"{what}; directory version {version}", file=sys.stderr)
    return 0
