"""What every command group shares: settings from the flags, the database, who is acting.

Imported only by the command modules (never by :mod:`gateway.cli.main`), so it may
load the storage layer without slowing ``gateway --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass

import asyncpg

from gateway.core.settings import Settings
from gateway.storage import db

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
    """Settings and a small pool (commands run one statement at a time)."""
    settings = settings_from(args)
    pool = await db.create_pool(await database_url(settings), min_size=1, max_size=2)
    return settings, pool


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
