"""People and staff credentials: console users (argon2 password hashes) and API tokens.

Roles (``user_role``): ``agency`` (an agency's own letters; the user carries the
agency code), ``operator`` (requeue, dead letters, directory, queues),
``auditor`` (reads everything, changes nothing) and ``admin``. Passwords are
hashed with argon2id (argon2-cffi defaults); API tokens are random, shown once
and stored as SHA-256. Neither ever reaches a log or the audit log; changes to
users are audit events (``user.added``, ``user.password_changed``,
``user.disabled``) in the same transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import hashlib
import secrets
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.core.errors import Conflict, GatewayError, NotFound
from gateway.storage import Executor, audit
from gateway.storage.db import queries

_HASHER = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing the same.
_DUMMY = _HASHER.hash("not a password")


class Role(str, enum.Enum):
    """Mirrors the database enum ``user_role``."""

    AGENCY = "agency"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    agency: str | None
    """Agency code, for agency users only."""
    disabled: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(row["username"], Role(row["role"]), row["agency"], row["disabled"])


def check_password_strength(password: str) -> None:
    if len(password) < 10:
        raise GatewayError("a password needs at least 10 characters", code="user.weak_password",
                           field="password")


async def add(pool: asyncpg.Pool, *, username: str, password: str, role: Role, agency: str | None,
              now: dt.datetime, actor: str) -> User:
    check_password_strength(password)
    if (role is Role.AGENCY) != (agency is not None):
        raise GatewayError("agency users need an agency code, other roles none", code="user.agency",
                           field="agency")
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(queries["user_insert"], username, _HASHER.hash(password), role.value,
                                   agency, now)
        if done is None:
            raise Conflict(f"user {username} exists", code="user.exists", field="username")
        await audit.append(conn, at=now, actor=actor, kind="user.added",
                           details={"username": username, "role": role.value, "agency": agency})
    return User(username, role, agency, False)


async def set_password(pool: asyncpg.Pool, username: str, password: str, *, now: dt.datetime,
                       actor: str) -> None:
    check_password_strength(password)
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(queries["user_set_password"], username, _HASHER.hash(password), now) is None:
            raise NotFound(f"no user {username}", code="user.not_found", field="username")
        await audit.append(conn, at=now, actor=actor, kind="user.password_changed",
                           details={"username": username})


async def set_disabled(pool: asyncpg.Pool, username: str, disabled: bool, *, now: dt.datetime,
                       actor: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(queries["user_set_disabled"], username, disabled, now) is None:
            raise NotFound(f"no user {username}", code="user.not_found", field="username")
        await audit.append(conn, at=now, actor=actor, kind="user.disabled" if disabled else "user.enabled",
                           details={"username": username})


async def get(db: Executor, username: str) -> User | None:
    row = await db.fetchrow(queries["user_get"], username)
    return None if row is None else User.from_row(row)


async def authenticate_password(pool: asyncpg.Pool, username: str, password: str) -> User | None:
    """The user if the password is right and the account enabled; ``None`` otherwise (same timing)."""
    row = await pool.fetchrow(queries["user_get"], username)
    try:  # argon2 takes tens of milliseconds of CPU on purpose: not on the event loop
        await asyncio.to_thread(_HASHER.verify, row["password_hash"] if row else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    if _HASHER.check_needs_rehash(row["password_hash"]):
        await pool.execute(queries["user_set_password"], username,
                           await asyncio.to_thread(_HASHER.hash, password), dt.datetime.now(dt.UTC))
    return User.from_row(row)


async def issue_token(pool: asyncpg.Pool, username: str, label: str, *, now: dt.datetime, actor: str) -> str:
    """A new API token for a user; returned once, stored as SHA-256."""
    token = "sgw_" + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchrow(queries["user_get"], username) is None:
            raise NotFound(f"no user {username}", code="user.not_found", field="username")
        await conn.execute(queries["api_token_insert"], hashlib.sha256(token.encode()).digest(), username,
                           label, now)
        await audit.append(conn, at=now, actor=actor, kind="user.token_issued",
                           details={"username": username, "label": label})
    return token


async def user_for_token(db: Executor, token: str) -> User | None:
    row = await db.fetchrow(queries["api_token_user"], hashlib.sha256(token.encode()).digest())
    if row is None or row["disabled"]:
        return None
    return User.from_row(row)
