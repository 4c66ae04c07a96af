"""A database built from the migrations equals one built from schema.sql."""

import asyncpg

from gateway import db

CATALOG = {
    "columns": """SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = 'public'
                  ORDER BY table_name, column_name""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "enums": """SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
                ORDER BY 1, 3""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "migrations": "SELECT version, name FROM gateway_migrations ORDER BY version",
}


async def _catalog(dsn):
    conn = await asyncpg.connect(dsn)
    try:
        return {k: [tuple(r) for r in await conn.fetch(q)] for k, q in CATALOG.items()}
    finally:
        await conn.close()


async def test_migrations_and_schema_agree(empty_database_url, database_url):
    conn = await asyncpg.connect(empty_database_url)
    try:
        await db.create_from_schema(conn)
    finally:
        await conn.close()
    from_schema = await _catalog(empty_database_url)
    from_migrations = await _catalog(database_url)  # the template is built by migrate()
    assert from_schema["columns"], "schema.sql built nothing"
    for key in CATALOG:
        assert from_schema[key] == from_migrations[key], key


async def test_migrate_is_idempotent(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        assert await db.migrate(conn) == []
        assert await db.pending_migrations(conn) == []
    finally:
        await conn.close()


def test_every_named_query_is_unique_and_nonempty():
    assert len(db.queries) > 10
    assert all(q.strip() for q in db.queries.values())
