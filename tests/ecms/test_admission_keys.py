"""URL keys and source networks: the directory's rules (pure), the ``gateway ecms-key`` CLI against real
PostgreSQL, hostile keys on a real listener, and a key that appears nowhere it must not: logs, /metrics,
the audit log and every stored row, error answers, console pages and the directory API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re

import aiohttp
import pytest

from gateway.cli.main import main as cli
from gateway.core import appkeys as keys
from gateway.core.admission import (
    Caller,
    EcmsAdmission,
    KeyThrottle,
    Listener,
    Mode,
    SecretOverPlainHttp,
    admission_from_dict,
    check_letter_transport,
    describe_admission,
    new_url_key,
    redact_path,
    with_key_revoked,
    with_networks,
    with_new_key,
)
from gateway.core.directory import Directory, read_directory_file
from gateway.core.ecmswire import soap
from gateway.core.errors import AuthError, ConfigError, NotFound
from gateway.http.directory_api import view
from gateway.storage import directory as store
from gateway.storage import users
from tests.ecms.admission_world import ECMS_AGENCY, keyed, letter, post, start_world
from tests.ecms.helpers import body_child, errors, request

T0 = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
BASE = {"code": "20001", "name_th": "สำนักงานปลัดกระทรวงศึกษาธิการ", "name_en": "OPS MOE"}
OTHER = {"code": "20002", "name_th": "กรมสามัญศึกษา", "name_en": "Dept"}


def _directory(*entries: dict) -> Directory:
    return Directory.from_dict({"agencies": list(entries)})


# ---------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(("raw", "field"), [
    ({"modes": ["carrier-pigeon"]}, "ecms_admission.modes"),
    ({"modes": ["network"], "networks": ["10.0.0.1/8"]}, "ecms_admission.networks[0]"),
    ({"modes": ["network"], "networks": ["0.0.0.0/0"]}, "ecms_admission.networks[0]"),
    ({"modes": ["network"], "networks": ["ที่ทำการ"]}, "ecms_admission.networks[0]"),
    ({"keys": [{"sha256": "abc", "issued_at": "2026-01-01T00:00:00+00:00"}]}, "ecms_admission.keys[0].sha256"),
    ({"keys": [{"sha256": "a" * 64}]}, "ecms_admission.keys[0].issued_at"),
    ({"keys": [{"sha256": "a" * 64, "issued_at": "2026-01-01"}]}, "ecms_admission.keys[0].issued_at"),
    ({"keys": "x"}, "ecms_admission"),
    ({"key": []}, "ecms_admission.key"),
    ("url_key", "ecms_admission"),
])
def test_a_bad_admission_entry_names_its_field(raw, field):
    with pytest.raises(ConfigError) as exc:
        admission_from_dict(raw, "ecms_admission", "20001")
    assert exc.value.field == field


def test_an_entry_round_trips_and_the_directory_finds_the_agency_by_key_and_by_network():
    key, adm = with_new_key(None, T0)
    adm = with_networks(adm, ["10.20.0.0/16", "2001:db8::/32"], "20001")
    d = _directory({**BASE, "ecms_admission": adm.to_dict()},
                   {**OTHER, "ecms_admission": with_networks(None, ["10.20.30.0/24"], "20002").to_dict()})
    again = Directory.from_dict(d.to_dict())
    assert again.get("20001").ecms_admission == adm and key not in json.dumps(d.to_dict())
    found = again.admission.agency_for_key(key, T0)
    assert found is not None and found[0] == "20001" and found[1].id == adm.keys[0].id
    assert again.admission.agency_for_address("10.20.1.2") == "20001"
    assert again.admission.agency_for_address("10.20.30.4") == "20002"  # the longest prefix wins
    assert again.admission.agency_for_address("::ffff:10.20.1.2") == "20001"  # IPv4 mapped into IPv6
    assert again.admission.agency_for_address("2001:db8::5") == "20001"
    assert again.admission.agency_for_address("10.21.0.1") is None
    assert again.admission.agency_for_address("not an address") is None


def test_only_the_modes_named_admit_and_an_inactive_agency_never():
    key, adm = with_new_key(None, T0)
    adm = EcmsAdmission(modes=(), keys=adm.keys, networks=with_networks(None, ["10.0.0.0/8"], "x").networks)
    d = _directory({**BASE, "ecms_admission": adm.to_dict()})
    assert d.admission.agency_for_key(key, T0) is None and d.admission.agency_for_address("10.1.1.1") is None
    key, on = with_new_key(None, T0)
    d = _directory({**BASE, "active": False, "ecms_admission": with_networks(on, ["10.0.0.0/8"], "x").to_dict()})
    assert d.admission.agency_for_key(key, T0) is None and d.admission.agency_for_address("10.1.1.1") is None


def test_one_network_for_two_agencies_is_refused():
    net = with_networks(None, ["10.20.0.0/16"], "x").to_dict()
    with pytest.raises(ConfigError) as exc:
        _directory({**BASE, "ecms_admission": net}, {**OTHER, "ecms_admission": net})
    assert exc.value.field == "ecms_admission.networks" and "20001" in str(exc.value)


def test_rotation_overlaps_and_revocation_is_immediate():
    first, adm = with_new_key(None, T0)
    second, adm = with_new_key(adm, T0 + dt.timedelta(days=30), retire_others_at=T0 + dt.timedelta(days=37))
    d = _directory({**BASE, "ecms_admission": adm.to_dict()})
    day = dt.timedelta(days=1)
    assert d.admission.agency_for_key(first, T0 + 36 * day) is not None
    assert d.admission.agency_for_key(first, T0 + 37 * day) is None
    assert d.admission.agency_for_key(second, T0 + 400 * day) is not None
    adm = with_key_revoked(adm, adm.keys[1].id, T0 + 31 * day)
    d = _directory({**BASE, "ecms_admission": adm.to_dict()})
    assert d.admission.agency_for_key(second, T0 + 31 * day) is None
    with pytest.raises(NotFound):
        with_key_revoked(adm, "00000000", T0)


@pytest.mark.parametrize("hostile", ["", "x", "a" * 100_000, "../../etc/passwd", "ก" * 43, "\x00" * 43,
                                     "%00" * 20, " " * 43, "Bearer abc", "\ud800" * 43])
def test_hostile_keys_are_unknown_without_error(hostile):
    key, adm = with_new_key(None, T0)
    d = _directory({**BASE, "ecms_admission": adm.to_dict()})
    assert d.admission.agency_for_key(hostile, T0) is None


def test_keys_are_256_bit_and_stored_as_digests():
    seen = {new_url_key(T0)[0] for _ in range(50)}
    assert len(seen) == 50 and all(re.fullmatch(r"[A-Za-z0-9_-]{43}", k) for k in seen)
    key, record = new_url_key(T0)
    assert key not in json.dumps(record.to_dict()) and record.id == record.sha256[:8]


def test_redact_path():
    assert redact_path("/ecms/abcDEF_123-xyz/ecms-ws01/service2") == "/ecms/***/ecms-ws01/service2"
    assert redact_path("/ecms-ws01/service2") == "/ecms-ws01/service2"
    assert redact_path("/v1/inbox") == "/v1/inbox"


def test_the_throttle_counts_unknown_keys_per_address_in_a_window():
    now = [0.0]
    t = KeyThrottle(limit=2, window_s=60, now=lambda: now[0])
    t.check("10.0.0.1")
    assert t.missed("10.0.0.1") is False and t.missed("10.0.0.1") is True
    with pytest.raises(AuthError) as exc:
        t.check("10.0.0.1")
    assert exc.value.code == "auth.too_many_attempts"
    t.check("10.0.0.2")  # another address is not slowed down
    now[0] = 61
    t.check("10.0.0.1")


def test_secret_letters_only_over_the_legacy_plain_http():
    plain = Caller("20001", Mode.NETWORK, Listener.LEGACY, tls=False, peer="10.1.2.3")
    for secrecy in ("confidential", "secret"):
        with pytest.raises(SecretOverPlainHttp) as exc:
            check_letter_transport(plain, secrecy)
        assert exc.value.code == "policy.secret_over_plain_http"
    check_letter_transport(plain, "normal")
    check_letter_transport(Caller("20001", Mode.URL_KEY, Listener.LEGACY, tls=True), "secret")
    check_letter_transport(Caller("20001", Mode.TOKEN, Listener.MAIN, tls=False), "secret")  # a development set-up
    check_letter_transport(None, "secret")
    assert "10.1.2.3" in plain.note() and plain.facts()["transport"] == "http"
    assert describe_admission(plain.facts()) == plain.note() and describe_admission({}) is None


def test_only_admins_see_the_admission_in_the_directory_api():
    _, adm = with_new_key(None, T0)
    agency = _directory({**BASE, "ecms_admission": adm.to_dict()}).get("20001")
    assert "ecms_admission" in view(agency, "admin")
    for role in ("agency", "operator", "auditor"):
        assert "ecms_admission" not in view(agency, role)


# ---------------------------------------------------------------------------- the CLI, real PostgreSQL


async def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli, list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_ecms_key_cli_issues_once_rotates_revokes_and_keeps_admission_across_imports(database_url, pool,
                                                                                            capsys):
    example = read_directory_file("config/directory.example.json")
    entries = {a.code: a.to_dict() for a in Directory.from_dict(example).all()}
    async with pool.acquire() as conn:
        await store.apply(conn, entries, at=T0, actor="test", reason="seed")
    db = ("--database-url", database_url)
    code, out, err = await _cli(capsys, "ecms-key", "issue", ECMS_AGENCY, *db, "--base-url", "https://gw.example")
    key = out.strip()
    assert code == 0 and re.fullmatch(r"[A-Za-z0-9_-]{43}", key), (out, err)
    assert f"https://gw.example/ecms/{key}/ecms-ws01/service2" in err and "shown once" in err

    code, out, err = await _cli(capsys, "ecms-key", "rotate", ECMS_AGENCY, *db, "--overlap-days", "3")
    new_key = out.strip()
    assert code == 0 and new_key != key
    code, out, _ = await _cli(capsys, "ecms-key", "networks", ECMS_AGENCY, "10.20.0.0/16", *db)
    code, listing, _ = await _cli(capsys, "ecms-key", "list", ECMS_AGENCY, *db)
    assert key not in listing and new_key not in listing and "10.20.0.0/16" in listing
    assert "url_key" in listing and "network" in listing and listing.count(" key ") == 2
    assert "retires" in listing and re.search(r"25[6-9][0-9]", listing)  # Buddhist-era dates

    entry = (await store.entries(pool))[ECMS_AGENCY]
    first_id = entry["ecms_admission"]["keys"][0]["id"]
    code, _, _ = await _cli(capsys, "ecms-key", "revoke", ECMS_AGENCY, first_id, *db)
    assert code == 0
    code, _, err = await _cli(capsys, "ecms-key", "revoke", ECMS_AGENCY, "ffffffff", *db)
    assert code == 66 and "not_found" in err and "key_id" in err
    code, _, err = await _cli(capsys, "ecms-key", "networks", ECMS_AGENCY, "10.0.0.1/8", *db)
    assert code == 78 and "CIDR" in err

    d = Directory.from_dict({"agencies": list((await store.entries(pool)).values())})
    assert d.admission.agency_for_key(key, dt.datetime.now(dt.UTC)) is None  # revoked
    assert d.admission.agency_for_key(new_key, dt.datetime.now(dt.UTC))[0] == ECMS_AGENCY

    # an import that carries no admission (a CSV, the example file) keeps it, like the credentials
    async with pool.acquire() as conn:
        await store.apply(conn, {ECMS_AGENCY: entries[ECMS_AGENCY] | {"name_en": "renamed"}}, at=T0, actor="test",
                          reason="import", only=False)
    kept = (await store.entries(pool))[ECMS_AGENCY]
    assert kept["name_en"] == "renamed" and len(kept["ecms_admission"]["keys"]) == 2

    # every change is a directory version with an audit event; neither holds a key
    events = await pool.fetch("SELECT details::text AS d FROM audit_events WHERE kind = 'directory.changed'")
    assert len(events) >= 5
    assert not any(key in e["d"] or new_key in e["d"] for e in events)


# ---------------------------------------------------------------------------- a key appears nowhere


@pytest.fixture
async def world(database_url, workdir, dev_pki):
    w, runner = await start_world(database_url, workdir, dev_pki, throttle=KeyThrottle(limit=2))
    yield w
    await runner.cleanup()


async def test_hostile_keys_in_the_path_are_refused_as_unknown(world):
    for hostile in ("a" * 4000, "%00" * 30, "%E0%B8%81" * 20, "..%2F..%2Fetc", "%F0%9F%98%80", "%ff%fe" * 10):
        status, body = await post(keyed(world.main_url, hostile), request(_pull_op()), ssl_context=world.main_ssl())
        assert status == 200 and errors(body) == ["ECMS-200"], (hostile, body[:300])


def _pull_op():
    return soap.U.CorrespondenceLetterInboundRequest()


async def test_an_issued_key_is_never_logged_counted_audited_stored_echoed_or_shown(world, capfd, caplog):
    key = await world.issue_key(ECMS_AGENCY)
    https = world.main_ssl()
    answers = []
    status, body = await post(keyed(world.main_url, key), letter(), ssl_context=https)
    assert errors(body) == [], body[:400]
    pid = body_child(body).findtext("ProcessID")
    answers.append(body)
    for url, data, ctx in (
            (keyed(world.main_url, key), letter(sender="11008"), https),        # a refusal of the letter
            (keyed(world.main_url, key), b"<not-xml", https),                   # not e-CMS at all
            (keyed(world.main_url, key), request(_pull_op()), https),           # a pull
            (keyed(world.legacy_http, key), letter(), False),                   # in clear: refused, operator warned
            (keyed(world.main_url, key + "x"), request(_pull_op()), https),    # near misses, then slowed down
            (keyed(world.main_url, key[:-1]), request(_pull_op()), https),
            (keyed(world.main_url, key[::-1]), request(_pull_op()), https)):
        _, body = await post(url, data, ssl_context=ctx)
        answers.append(body)
    assert [errors(a) for a in answers[1:2]] == [["ECMS-201"]]

    # the admin's views: the directory API, console pages
    pool = world.pool
    await users.add(pool, username="admin", password="รหัสผ่านยาวพอ-123", role=users.Role.ADMIN, agency=None,
                    now=dt.datetime.now(dt.UTC), actor="test")
    token = await users.issue_token(pool, "admin", "test", now=dt.datetime.now(dt.UTC), actor="test")
    pk = await pool.fetchval("SELECT pk FROM messages WHERE message_id = $1", pid)
    pages = []
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(world.main_url + f"/v1/directory/agencies/{ECMS_AGENCY}", ssl=https,
                            headers={"Authorization": f"Bearer {token}"}) as r:
            pages.append(await r.text())
            assert "ecms_admission" in pages[-1]
        async with http.get(world.main_url + "/metrics", ssl=https) as r:
            pages.append(await r.text())
            assert "gateway_messages_accepted" in pages[-1]
        async with http.get(world.main_url + "/console/login", ssl=https) as r:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)
        async with http.post(world.main_url + "/console/login", ssl=https, allow_redirects=False,
                             data={"username": "admin", "password": "รหัสผ่านยาวพอ-123", "csrf": csrf}) as r:
            assert r.status in (302, 303), r.status
        for path in (f"/console/letters/{pk}", "/console/letters", f"/console/directory/{ECMS_AGENCY}",
                     "/console/directory", "/console/audit", "/v1/audit/events?limit=500"):
            async with http.get(world.main_url + path, ssl=https,
                                headers={"Authorization": f"Bearer {token}"} if path.startswith("/v1") else {}) as r:
                assert r.status == 200, (path, r.status)
                pages.append(await r.text())
        assert any("url_key" in p for p in pages[-6:]), "the letter's page or the audit log shows its mode"
        key_id = world.app[keys.DIRECTORY].get(ECMS_AGENCY).ecms_admission.keys[0].id
        assert key_id in pages[-4], "an admin sees the agency's key ids on its page"
    await users.add(pool, username="operator", password="รหัสผ่านยาวพอ-123", role=users.Role.OPERATOR, agency=None,
                    now=dt.datetime.now(dt.UTC), actor="test")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(world.main_url + "/console/login", ssl=https) as r:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)
        async with http.post(world.main_url + "/console/login", ssl=https, allow_redirects=False,
                             data={"username": "operator", "password": "รหัสผ่านยาวพอ-123", "csrf": csrf}) as r:
            assert r.status in (302, 303), r.status
        async with http.get(world.main_url + f"/console/directory/{ECMS_AGENCY}", ssl=https) as r:
            page = await r.text()
            assert r.status == 200 and ECMS_AGENCY in page
            assert key_id not in page and "e-CMS admission" not in page, "only admins see the admission"

    # every stored row, as text and as hex (bytea)
    stored = []
    for t in await pool.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                              "AND table_type = 'BASE TABLE'"):
        stored += [r["t"] for r in await pool.fetch(f'SELECT t::text AS t FROM "{t["table_name"]}" t')]
    stored_text = "\n".join(stored)
    assert pid in stored_text  # the search reaches the letter

    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "unknown URL key" in logs and "plain HTTP" in logs and "slowed down" in logs  # the logs were read
    for where, text in (("logs", logs), ("answers", b"".join(answers).decode("utf-8", "replace")),
                        ("pages", "\n".join(pages)), ("stored rows", stored_text)):
        assert key not in text, where
        assert key.encode().hex() not in text, where
