"""Staff users of every role on a fuzzed gateway, with their API tokens (as tests/audit/conftest.py makes them).

The fuzzers call each route as the role it is for, and as the others: an answer to the
wrong role is a documented 401 or 403, never a 5xx.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from gateway.storage import users
from tests.support import CMI

PASSWORD = "รหัสผ่านยาวพอ-123"
#: username -> (role, agency). ``clerk`` is an agency user of Chiang Mai (a recipient of the seeded letters).
STAFF = {"operator": (users.Role.OPERATOR, None), "auditor": (users.Role.AUDITOR, None),
         "admin": (users.Role.ADMIN, None), "clerk": (users.Role.AGENCY, CMI)}


async def staff_tokens(pool: asyncpg.Pool) -> dict[str, str]:
    """Add the staff users (once per database) and issue one API token each: username -> token."""
    now = dt.datetime.now(dt.UTC)
    tokens = {}
    for name, (role, agency) in STAFF.items():
        if await users.get(pool, name) is None:
            await users.add(pool, username=name, password=PASSWORD, role=role, agency=agency, now=now,
                            actor="fuzz")
        tokens[name] = await users.issue_token(pool, name, "fuzz", now=now, actor="fuzz")
    return tokens
