"""The hostile corpus (conformance/hostile) replayed against a real gateway: for every entry
the expected status and stable code (and field), never a 5xx, and nothing stored.

The gateway is the real app (create_app) on a real PostgreSQL, served on loopback, and the
requests go through the corpus runner itself, so what passes here is what the conformance
kit checks against a deployed gateway. Twice: with unsigned letters accepted (the corpus's
profile) and with signatures required (production's default).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import pytest_asyncio

from conformance.hostile import runner
from gateway.storage import users
from tests.fuzz.conftest import MAX_BODY_BYTES, start_gateway
from tests.support import CMI, ROOT, TOKENS

STAFF_PASSWORD = "รหัสผ่านยาวพอ-123"

ENTRIES = runner.entries()
NAMES = [e["name"] for e in ENTRIES]


def test_corpus_files_are_what_the_generator_writes():
    done = subprocess.run([sys.executable, "-m", "conformance.hostile.make_corpus", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_corpus_covers_the_issue_and_stays_small():
    assert len(ENTRIES) >= 60
    codes = {e["expect"]["code"] for e in ENTRIES}
    for code in ("envelope.not_xml", "envelope.dtd_forbidden", "envelope.schema_invalid", "envelope.pi_forbidden",
                 "attachment.base64_invalid", "attachment.digest_mismatch",
                 "envelope.unknown_recipient", "auth.wrong_sender", "policy.top_secret", "envelope.too_large",
                 "request.too_large", "request.unsupported_media_type", "auth.required", "auth.invalid_token",
                 "request.invalid"):
        assert code in codes, code
    # beyond the envelope: query strings, JSON and form bodies, the console, headers
    assert any("?" in e["endpoint"] for e in ENTRIES) and any(e["endpoint"].startswith("/console") for e in ENTRIES)
    assert any(e["expect"].get("request_id") == "new" for e in ENTRIES)
    files = [p for p in (ROOT / "conformance" / "hostile").rglob("*") if p.is_file()]
    assert max(p.stat().st_size for p in files) < 1_000_000


async def _staff_of(gw) -> runner.Staff:
    """An auditor and an operator (API tokens; the auditor's console login) for the entries beyond
    the native API. Both gateways of the module share one database: the users are made once."""
    now, tokens = dt.datetime.now(dt.UTC), {}
    for name, role in (("corpus-auditor", users.Role.AUDITOR), ("corpus-operator", users.Role.OPERATOR)):
        if await users.get(gw.pool, name) is None:
            await users.add(gw.pool, username=name, password=STAFF_PASSWORD, role=role, agency=None, now=now,
                            actor="test")
        tokens[name] = await users.issue_token(gw.pool, name, "corpus", now=now, actor="test")
    return runner.Staff(auditor_token=tokens["corpus-auditor"], operator_token=tokens["corpus-operator"],
                        console_auditor=("corpus-auditor", STAFF_PASSWORD))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staff(gateway) -> runner.Staff:
    return await _staff_of(gateway)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def signed_staff(signed_gateway) -> runner.Staff:
    return await _staff_of(signed_gateway)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def signed_gateway(module_database_url, tmp_path_factory, dev_pki):
    gw = await start_gateway(module_database_url, tmp_path_factory.mktemp("gw-signed"), dev_pki.directory,
                             require_signature=True)
    yield gw
    await gw.pool.close()
    await gw.client.close()


async def _replay_and_check(gw, name: str, *, signatures_required: bool, staff: runner.Staff) -> None:
    entry = next(e for e in ENTRIES if e["name"] == name)
    before = await gw.rows()
    answer = await runner.replay(entry, gw.url, token=gw.token, other_token=TOKENS[CMI],
                                 max_body_bytes=MAX_BODY_BYTES, staff=staff)
    assert answer is not None, f"{name}: not sent (credentials missing)"
    problem = runner.check(entry, answer, signatures_required=signatures_required)
    assert problem is None, f"{name}: {problem}"
    assert await gw.rows() == before, f"{name} left rows behind"


@pytest.mark.parametrize("name", NAMES)
async def test_entry_is_refused_with_its_code_and_stores_nothing(gateway, staff, name):
    await _replay_and_check(gateway, name, signatures_required=False, staff=staff)


@pytest.mark.parametrize("name", NAMES)
async def test_entry_with_signatures_required(signed_gateway, signed_staff, name):
    await _replay_and_check(signed_gateway, name, signatures_required=True, staff=signed_staff)


async def test_the_valid_letter_the_header_cases_send_is_accepted(gateway):
    # The header entries reuse inputs/valid-letter.xml: it must be refused only for its headers.
    entry = dict(next(e for e in ENTRIES if e["name"] == "content-type-text-plain"), content_type="application/xml")
    answer = await runner.replay(entry, gateway.url, token=gateway.token)
    assert answer.status in (200, 202), answer.body[:300]  # 200: this module accepted it already
    assert await gateway.pool.fetchval("SELECT count(*) FROM messages WHERE message_id = 'hostile-0001'") == 1
