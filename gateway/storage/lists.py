"""Distribution lists, each letter's frozen expansion of them, and a letter's progress over its deliveries.

Queries: ``sql/queries_lists.sql``; tables: migration 0010.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from gateway.core.errors import ConfigError
from gateway.core.lists import DistributionList, Rule
from gateway.storage import Executor
from gateway.storage.db import encode_json, queries
from gateway.storage.deliveries import DeliveryStatus


def _from_row(row: asyncpg.Record) -> DistributionList:
    rule = None if row["rule"] is None else Rule(**json.loads(row["rule"]))
    members = None if row["members"] is None else tuple(row["members"])
    return DistributionList(name=row["name"], name_th=row["name_th"], members=members, rule=rule,
                            ecms_code=row["ecms_code"])


async def upsert(db: Executor, lists: Sequence[DistributionList], *, at: dt.datetime) -> None:
    """Create or update ``lists`` (one statement; a list whose definition did not change keeps its
    ``updated_at``). Lists not named are left as they are. An e-CMS code another list already has:
    :class:`ConfigError` ``config.invalid`` naming the entry, and nothing changes."""
    taken = {x.ecms_code: x.name for x in await all_lists(db) if x.ecms_code is not None}
    for i, x in enumerate(lists):
        owner = taken.get(x.ecms_code or "", x.name)
        if owner != x.name and not any(y.name == owner and y.ecms_code != x.ecms_code for y in lists):
            raise ConfigError(f"lists[{i}].ecms_code {x.ecms_code} belongs to list {owner}",
                              field=f"lists[{i}].ecms_code")
    try:
        await _upsert(db, lists, at)
    except asyncpg.UniqueViolationError:  # taken meanwhile, or moved between two lists in one go
        raise ConfigError("an ecms_code of these lists belongs to another list",
                          field="lists") from None


async def _upsert(db: Executor, lists: Sequence[DistributionList], at: dt.datetime) -> None:
    await db.execute(queries["upsert_lists"], [x.name for x in lists], [x.name_th for x in lists],
                     [None if x.rule is None else encode_json(x.rule.to_dict()) for x in lists],
                     [None if x.members is None else encode_json(list(x.members)) for x in lists],
                     [x.ecms_code for x in lists], at)


async def get_many(db: Executor, keys: Sequence[str]) -> dict[str, DistributionList]:
    """The lists among ``keys`` that exist, by the key that named them: a list's name, or its e-CMS
    pseudo-organization code (``99xxx``, which is how an e-CMS letter names a list)."""
    wanted = set(keys)
    out: dict[str, DistributionList] = {}
    for r in await db.fetch(queries["get_lists"], list(wanted)):
        lst = _from_row(r)
        out.update({k: lst for k in (lst.name, lst.ecms_code) if k in wanted})
    return out


async def by_ecms_codes(db: Executor, codes: Sequence[str]) -> dict[str, DistributionList]:
    """The lists behind e-CMS pseudo-organization codes, by code."""
    return {r["ecms_code"]: _from_row(r) for r in await db.fetch(queries["get_lists_by_ecms_code"], list(codes))}


async def all_lists(db: Executor) -> list[DistributionList]:
    return [_from_row(r) for r in await db.fetch(queries["all_lists"])]


def source(pool: asyncpg.Pool) -> Callable[[Sequence[str]], Awaitable[Mapping[str, DistributionList]]]:
    """What :class:`gateway.intake.checks.Intake` takes as ``lists``: names -> the lists that exist."""
    async def look_up(names: Sequence[str]) -> Mapping[str, DistributionList]:
        return await get_many(pool, names)
    return look_up


@dataclass(frozen=True)
class Expansion:
    """One list as a letter froze it at acceptance."""

    list_name: str
    directory_version: int
    member_count: int
    members_sha256: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Expansion:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})


async def record_expansions(db: Executor, message_pk: int, expansions: Sequence[Expansion]) -> None:
    """Record a letter's expansions (call inside the transaction that inserts the letter)."""
    if not expansions:
        return
    versions = {e.directory_version for e in expansions}
    if len(versions) != 1:
        raise ValueError("one letter's lists are expanded against one directory version")
    await db.execute(queries["insert_list_expansions"], message_pk, [e.list_name for e in expansions],
                     versions.pop(), [e.member_count for e in expansions], [e.members_sha256 for e in expansions])


async def expansions(db: Executor, message_pk: int) -> list[Expansion]:
    return [Expansion.from_row(r) for r in await db.fetch(queries["list_expansions"], message_pk)]


@dataclass(frozen=True)
class Progress:
    """How a letter's deliveries stand (e.g. 6,912 of 8,000 delivered, 41 in an inbox, 3 dead)."""

    total: int
    by_status: Mapping[str, int]
    """Count per :class:`DeliveryStatus` value, every status present (0 when none)."""
    answers: Mapping[str, int]
    """Recipients (not withdrawn) by their registry's latest answer (``accepted`` = registered, with
    a registry number; ``received``, ``rejected``, ``invalid``, ...); only kinds that occur."""

    def to_dict(self) -> dict[str, object]:
        return {"total": self.total, "by_status": dict(self.by_status), "answers": dict(self.answers)}


async def progress(db: Executor, message_pk: int) -> Progress:
    """Summary counts of the letter's deliveries by status, and of its recipients by registry answer."""
    counts = {s.value: 0 for s in DeliveryStatus}
    for r in await db.fetch(queries["delivery_progress"], message_pk):
        counts[r["status"]] = r["n"]
    answers = {r["kind"]: r["n"] for r in await db.fetch(queries["registry_answers"], message_pk)}
    return Progress(total=sum(counts.values()), by_status=counts, answers=answers)


@dataclass(frozen=True)
class RecipientState:
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: dt.datetime | None
    id: uuid.UUID

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RecipientState:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RecipientsPage:
    items: tuple[RecipientState, ...]
    next_after: str | None
    """Pass as ``after`` for the next page; ``None``: this was the last."""


async def recipients_page(db: Executor, message_pk: int, after: str | None = None,
                          limit: int = 100) -> RecipientsPage:
    """One page of the letter's deliveries ordered by recipient code (keyset paging: stable while
    statuses change)."""
    limit = max(1, min(limit, 1000))
    rows = await db.fetch(queries["recipients_page"], message_pk, after, limit + 1)
    items = tuple(RecipientState.from_row(r) for r in rows[:limit])
    return RecipientsPage(items=items, next_after=items[-1].recipient if len(rows) > limit else None)
