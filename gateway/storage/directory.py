"""The agency directory in PostgreSQL: versioned entries, history, and the change notification.

Each agency is stored as its directory-file entry (``Agency.to_dict()``: digests, never
tokens) with a few columns copied out for searching. A change is one transaction
(:func:`apply`): it takes the directory lock, checks the whole directory that would result
(links, kinds, codes: :meth:`Directory.from_dict`), writes a new version, one history row per
agency added, changed or removed (before and after), the entries, the audit event
``directory.changed`` and a ``NOTIFY gateway_directory``, which PostgreSQL delivers only at
commit: a process reloads a directory that is whole, never half an import.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.directory import Directory
from gateway.storage import Connection, Executor, audit
from gateway.storage.db import queries

CHANNEL = "gateway_directory"
#: Kept from the agency's entry when a change does not name them: an import (a CSV carries no
#: credentials) never drops an agency's tokens, certificates or e-CMS admission (URL key digests,
#: source networks) by leaving a column out.
CREDENTIALS = ("token_sha256", "cert_fingerprints", "certificates", "ecms_admission")
#: Changes listed in full in the audit event; a larger import lists codes only (before and after
#: of every agency are in ``agency_history`` under the version the event names).
AUDIT_DETAIL_LIMIT = 50


@dataclass(frozen=True)
class Change:
    code: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def kind(self) -> str:
        return "added" if self.before is None else "removed" if self.after is None else "changed"


@dataclass(frozen=True)
class Diff:
    changes: tuple[Change, ...]

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    def summary(self) -> dict[str, int]:
        return {k: self.count(k) for k in ("added", "changed", "removed")}


def entries_of(directory: Directory) -> dict[str, dict[str, Any]]:
    return {a.code: a.to_dict() for a in directory.all()}


def digest_of(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """The same digest as :meth:`Directory.digest` (order-independent content)."""
    rows = [entries[c] for c in sorted(entries)]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()


def diff(before: Mapping[str, dict[str, Any]], after: Mapping[str, dict[str, Any]]) -> Diff:
    codes = sorted(set(before) | set(after))
    return Diff(tuple(Change(c, before.get(c), after.get(c)) for c in codes if before.get(c) != after.get(c)))


async def current_version(db: Executor) -> int:
    value: int = await db.fetchval(queries["directory_current_version"])
    return value


async def entries(db: Executor, *, at: int | None = None) -> dict[str, dict[str, Any]]:
    """The directory's entries now, or as they were at version ``at``."""
    rows = (await db.fetch(queries["directory_entries"]) if at is None
            else await db.fetch(queries["directory_entries_at"], at))
    return {r["code"]: r["entry"] for r in rows}


async def load(db: Connection) -> Directory | None:
    """The directory in force (None if the database holds none yet), read in one snapshot."""
    async with db.transaction(isolation="repeatable_read", readonly=True):
        version = await current_version(db)
        if version == 0:
            return None
        found = await entries(db)
    return Directory.from_dict({"agencies": list(found.values())}, version=version)


async def load_at(db: Executor, version: int) -> Directory:
    return Directory.from_dict({"agencies": list((await entries(db, at=version)).values())}, version=version)


async def apply(conn: Connection, new: Mapping[str, dict[str, Any]], *, at: dt.datetime, actor: str,
                reason: str, source_sha256: str | None = None, only: bool = True) -> tuple[int, Diff]:
    """Make the directory ``new`` (``only``: agencies not in it are removed; else ``new`` only adds
    and changes). Checks the resulting whole directory first: a :class:`ConfigError` naming the
    agency and field leaves everything as it was. Returns (version, diff); version 0 if nothing changed.
    Runs in its own transaction (or the caller's)."""
    async with conn.transaction():
        await conn.execute(queries["directory_lock"])
        before = await entries(conn)
        after = dict(new) if only else {**before, **new}
        for code, entry in new.items():
            kept = {k: before[code][k] for k in CREDENTIALS if code in before and k in before[code] and k not in entry}
            if kept:
                after[code] = {**entry, **kept}
        result = Directory.from_dict({"agencies": list(after.values())})  # the whole, checked
        after = entries_of(result)  # normalised: what a reload would read back
        changes = diff(before, after)
        if not changes.changes:
            return 0, changes
        version = await current_version(conn) + 1
        sha = result.digest()
        await conn.execute(queries["directory_insert_version"], version, at, actor, reason, sha, source_sha256,
                           len(after), len(changes.changes))
        await conn.execute(queries["directory_insert_history"], version, [c.code for c in changes.changes],
                           [c.before for c in changes.changes], [c.after for c in changes.changes])
        removed = [c.code for c in changes.changes if c.after is None]
        if removed:
            await conn.execute(queries["directory_delete"], removed)
        upserts = [c for c in changes.changes if c.after is not None]
        await conn.execute(queries["directory_upsert"], version, [c.code for c in upserts],
                           [c.after for c in upserts])
        previous = await conn.fetchval(queries["directory_version_sha"], version - 1)
        listed = changes.changes[:AUDIT_DETAIL_LIMIT]
        await audit.append(conn, at=at, actor=actor, kind="directory.changed", details={
            "version": version, "reason": reason, "sha256": sha, "previous_sha256": previous,
            "agencies": len(after), **changes.summary(),
            "changes": [{"code": c.code, "change": c.kind, "before": c.before, "after": c.after} for c in listed],
            "changes_listed": len(listed)})
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(version))
    return version, changes


async def sync_from_start(conn: Connection, directory: Directory, *, at: dt.datetime, actor: str) -> int:
    """At start-up: seed an empty database with the configured directory, or import it when it
    differs both from the database and from the last one a start-up imported (a file edited since).
    A directory changed by API or CLI since the last start stays in force. Returns the version applied (0: none)."""
    source = directory.digest()
    async with conn.transaction():
        await conn.execute(queries["directory_lock"])
        last_source = await conn.fetchval(queries["directory_last_source"])
        if last_source == source:
            return 0
        version, _ = await apply(conn, entries_of(directory), at=at, actor=actor,
                                 reason="start-up: the configured directory file", source_sha256=source)
        return version


async def history(db: Executor, code: str, *, limit: int = 100) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["directory_history_of"], code, limit)]


async def versions(db: Executor, *, limit: int = 50) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(queries["directory_versions_list"], limit)]


async def route_changes(db: Executor, after: int, upto: int) -> list[dict[str, Any]]:
    """Agencies whose route changed in versions (``after``, ``upto``]: version, code, entries before and after."""
    return [dict(r) for r in await db.fetch(queries["directory_route_changes"], after, upto)]


@dataclass(frozen=True)
class RouteNotice:
    """A notice from the gateway to an agency that its route changed, over one route."""

    sender: str
    message_id: str
    subject: str
    received: bytes
    forwarded: bytes
    at: dt.datetime
    delivery_id: uuid.UUID
    recipient: str
    route_kind: str
    pinned_route: dict[str, Any] | None
    status: str
    expires_at: dt.datetime
    audit: dict[str, Any]


async def insert_route_notice(db: Executor, n: RouteNotice) -> bool:
    """Store the notice with its delivery and audit event; False if it was stored before (by any process)."""
    pk = await db.fetchval(queries["insert_route_notice"], n.sender, n.message_id, n.subject,
                           hashlib.sha256(n.received).digest(), n.received, n.forwarded, n.at, n.delivery_id,
                           n.recipient, n.route_kind, n.pinned_route, n.status, n.expires_at, n.audit)
    return pk is not None
