"""A database built from the migrations equals one built from schema.sql."""

import asyncpg

from gateway.storage import db

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
    # the audit chain depends on functions (audit_next_seq) and on column storage choices
    "functions": """SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
                    WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
                      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
                    ORDER BY 1, 2""",
    "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
                   WHERE NOT tgisinternal ORDER BY 1, 2""",
    "storage": """SELECT c.relname, a.attname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
                  ORDER BY 1, 2""",
    "sequences": """SELECT sequencename, data_type::text FROM pg_sequences WHERE schemaname = 'public'
                    ORDER BY 1""",
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
