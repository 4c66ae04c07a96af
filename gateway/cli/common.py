"""What every command group shares: settings from the flags, the database, who is acting.

Imported only by the command modules (never by :mod:`gateway.cli.main`), so it may
load the storage layer without slowing ``gateway --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from gateway.core.errors import ConfigError, GatewayError, Unavailable
from gateway.core.settings import Settings
from gateway.storage import db

T = TypeVar("T")

#: Flags that override ``GATEWAY_*`` settings when given (see ``main.add_common_options``).
SETTING_FLAGS = ("host", "port", "data_dir", "directory_path", "database_url", "pki_dir")


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings from the environment, with the flags the command was given on top."""
    overrides = {}
    for name in SETTING_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings.from_env(**overrides)


async def database_url(settings: Settings) -> str:
    """The configured database, or the embedded server in the data directory (started if need be)."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(db.start_embedded, settings.data_dir)


async def connect(args: argparse.Namespace) -> tuple[Settings, asyncpg.Pool]:
    """Settings and a small pool (commands run one statement at a time).

    A database that cannot be reached is ``unavailable.database`` (exit 69, try again); one that refuses
    the credentials or does not exist is ``config.database`` (exit 78): one line each, never a traceback.
    """
    settings = settings_from(args)
    dsn = await database_url(settings)
    where = _where(dsn)
    try:
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError,
            asyncpg.InvalidCatalogNameError) as exc:
        raise ConfigError(f"the database at {where} refused the connection: {exc}", code="config.invalid",
                          field="--database-url") from None
    except (*db.TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot reach the database at {where}: {exc or type(exc).__name__}",
                          code="unavailable.database", field="--database-url") from None
    return settings, pool


def _where(dsn: str) -> str:
    """The database's address without its password, for error messages."""
    parts = urlsplit(dsn)  # netloc, not .port: a replicated pair names several hosts (h1:5432,h2:5433)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    return f"{hosts}{parts.path}" if parts.scheme else "the configured database"


async def open_pool(args: argparse.Namespace) -> tuple[Settings, asyncpg.Pool]:
    """Like :func:`connect`, with the schema brought up to date first."""
    settings, pool = await connect(args)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    return settings, pool


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def actor() -> str:
    """Who runs the command, as audit events name them."""
    return f"cli:{getpass.getuser()}"


def certificate_file(path: str, load: Callable[[bytes], T]) -> T:
    """``load`` of the file's bytes; a file that is not a certificate is ``certificate.invalid`` (one line,
    exit 65), not the parser's ASN.1 message."""
    data = Path(path).read_bytes()
    try:
        return load(data)
    except (ValueError, IndexError):
        raise GatewayError(f"{path} is not a certificate (PEM or DER)", code="certificate.invalid",
                           field="--cert") from None


class Progress:
    """One line of progress on stderr for long work (imports, exports, verification), redrawn in place;
    only when standard output is a terminal (a person watching), never into a pipe, a file or a log."""

    def __init__(self, label: str, total: int = 0, *, live: bool | None = None) -> None:
        self.label, self.total, self.shown = label, max(total, 0), -1
        self.live = sys.stdout.isatty() and sys.stderr.isatty() if live is None else live

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(total, 0)
        if not self.live:
            return
        pct = min(100, done * 100 // self.total) if self.total else 100
        if pct != self.shown:
            self.shown = pct
            print(f"\r{self.label} [{'#' * (pct // 4):<25}] {pct:3d}% {done:,}/{self.total:,}", end="",
                  file=sys.stderr, flush=True)
            if pct == 100:
                print(file=sys.stderr, flush=True)
