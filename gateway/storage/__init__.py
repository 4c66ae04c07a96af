"""Storage, one module per table family: messages, deliveries, destinations, receipts, audit.

Each function takes an asyncpg executor (a pool, or a connection inside a
transaction when the caller composes several steps into one transaction) and
runs named queries from ``gateway/storage/sql/queries.sql``. Records are frozen
dataclasses built with ``from_row``; statuses are Enums mirroring the
database's enum types. Driver errors are turned into gateway errors at the
service boundary, not here.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

#: A connection, or the proxy a pool hands out (the same to a caller).
Connection = asyncpg.Connection | PoolConnectionProxy
#: Where a query runs: a pool (its own transaction), or a connection inside the caller's transaction.
Executor = asyncpg.Pool | Connection
