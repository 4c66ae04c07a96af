"""The group-commit insert is planned once per connection, not on every call.

A ``LANGUAGE sql`` function's body is parsed and planned on every call: for insert_messages
(five CTEs, three inserts, the e-CMS resend guard) that was 0.6 ms of PostgreSQL CPU per
group commit, measured with empty arrays, more than the letters' own rows at the gateway's
usual 1-4 letters per commit. As PL/pgSQL with a generic plan it is planned once.
"""

import asyncpg


async def test_insert_messages_keeps_one_generic_plan(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("""SELECT l.lanname, p.proconfig FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                                     WHERE p.proname = 'insert_messages'""")
        assert row["lanname"] == "plpgsql"
        assert "plan_cache_mode=force_generic_plan" in (row["proconfig"] or [])
        # and an empty batch is still an empty answer
        assert await conn.fetch("SELECT * FROM insert_messages('{}'::new_message[], '{}'::new_delivery[])") == []
    finally:
        await conn.close()
