"""The directory in PostgreSQL: versions, history, imports that apply all or nothing, and a change
made by another OS process in force here within a second, without a restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from gateway.core import appkeys as keys
from gateway.core.directory import Directory
from gateway.core.directory_io import ImportRefused, read_csv, write_csv
from gateway.storage import directory as store
from tests.support import CMI, KKN, ROOT, directory_dict

pytestmark = pytest.mark.asyncio


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", "directory", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


async def test_start_up_seeds_the_database_and_a_change_is_a_version_with_history(make_client, pool, clock):
    await make_client()
    assert await store.current_version(pool) == 1
    entries = await store.entries(pool)
    assert entries[CMI]["name_th"] == "ศาลากลางจังหวัดเชียงใหม่"
    changed = {CMI: {**entries[CMI], "name_th": "ศาลากลางจังหวัดเชียงใหม่ (ใหม่)"}}
    async with pool.acquire() as conn:
        version, diff = await store.apply(conn, changed, at=clock.now(), actor="admin:somchai", only=False,
                                          reason="ชื่อใหม่")
    assert version == 2 and diff.summary() == {"added": 0, "changed": 1, "removed": 0}
    # the past is still there: version 1 had the old name, version 2 the new one
    assert (await store.entries(pool, at=1))[CMI]["name_th"] == "ศาลากลางจังหวัดเชียงใหม่"
    assert (await store.entries(pool, at=2))[CMI]["name_th"].endswith("(ใหม่)")
    history = await store.history(pool, CMI)
    assert [h["version"] for h in history] == [2, 1] and history[0]["actor"] == "admin:somchai"
    assert history[0]["before"]["name_th"] == "ศาลากลางจังหวัดเชียงใหม่"
    event = await pool.fetchrow("SELECT actor, details FROM audit_events WHERE kind = 'directory.changed' "
                                "ORDER BY seq DESC LIMIT 1")
    assert event["actor"] == "admin:somchai" and event["details"]["version"] == 2
    assert event["details"]["changes"][0]["before"]["name_th"] == "ศาลากลางจังหวัดเชียงใหม่"
    # a restart with the same directory file keeps the change made since (the database is in force)
    client = await make_client()
    assert client.app[keys.DIRECTORY][CMI].name_th.endswith("(ใหม่)")
    assert await store.current_version(pool) == 2


async def test_a_change_that_would_break_the_directory_changes_nothing(make_client, pool, clock):
    await make_client()
    entries = await store.entries(pool)
    broken = {KKN: {**entries[KKN], "parent": "9999999999"}}
    async with pool.acquire() as conn:
        with pytest.raises(Exception, match="parent 9999999999"):
            await store.apply(conn, broken, at=clock.now(), actor="admin", reason="x", only=False)
    assert await store.current_version(pool) == 1 and await store.entries(pool) == entries


async def test_a_csv_with_bad_rows_names_every_row_and_field():
    text = write_csv(Directory.from_dict(directory_dict()).all())
    lines = text.splitlines()
    lines[2] = lines[2].replace(",pull,", ",teleport,")
    lines[4] = lines[4].split(",", 1)[0] + ",," + lines[4].split(",", 2)[2]  # no Thai name
    lines.append("12345,ทดสอบ,Test,ministry,,5,,pull,,,,,no,yes")  # province of one digit
    with pytest.raises(ImportRefused) as refused:
        read_csv("\n".join(lines) + "\n")
    found = [(e.row, e.field) for e in refused.value.errors]
    assert (3, "route.kind") in found and (5, "name_th") in found and (len(lines), "province") in found
    assert "row 3" in str(refused.value)
    # the export reads back as it was written (credentials do not travel in CSV)
    expected = {a.code: a.to_dict() for a in Directory.from_dict(directory_dict()).all()}
    assert read_csv(text) == {c: {k: v for k, v in e.items() if k != "token_sha256"} for c, e in expected.items()}


async def test_a_change_made_by_another_os_process_is_in_force_here_within_a_second(make_client, database_url,
                                                                                     pool):
    client = await make_client()
    directory = client.app[keys.DIRECTORY]
    assert directory.version == 1
    bad = _cli(database_url, "set", CMI, "province=5x")
    assert bad.returncode == 78 and "province" in bad.stderr, bad.stderr
    run = _cli(database_url, "set", CMI, "name_en=Chiang Mai Provincial Hall (renamed)", "--reason", "test")
    done = time.monotonic()
    assert run.returncode == 0, run.stderr
    while directory.get(CMI).name_en != "Chiang Mai Provincial Hall (renamed)":
        assert time.monotonic() - done < 1.0, "not in force within a second"
        await asyncio.sleep(0.02)
    assert directory.version == 2
    event = await pool.fetchrow("SELECT actor, details FROM audit_events WHERE kind = 'directory.changed' "
                                "ORDER BY seq DESC LIMIT 1")
    assert event["actor"].startswith("cli:") and event["details"]["reason"] == "test"


async def test_import_shows_the_diff_and_applies_only_with_yes(make_client, database_url, pool, workdir):
    await make_client()
    data = directory_dict()
    data["agencies"] = [dict(a, route={"kind": "push", "url": "https://cmi.example/in"}) if a["code"] == CMI
                        else a for a in data["agencies"]]
    data["lists"] = [{"name": "halls", "name_th": "ศาลากลางจังหวัด", "rule": {"kind": "provincial_administration"}}]
    path = workdir / "new.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    shown = _cli(database_url, "import", str(path))
    assert shown.returncode == 0 and "ROUTE pull -> push url=https://cmi.example/in" in shown.stdout, shown
    assert await store.current_version(pool) == 1
    applied = _cli(database_url, "import", str(path), "--yes")
    assert applied.returncode == 0 and await store.current_version(pool) == 2, applied.stderr
    assert await pool.fetchval("SELECT name_th FROM distribution_lists WHERE name = 'halls'") == "ศาลากลางจังหวัด"
    exported = _cli(database_url, "export", "--at", "1")
    assert json.loads(exported.stdout)["version"] == 1
    assert "history" not in _cli(database_url, "show", CMI, "--history").stderr


async def test_certificates_are_registered_from_their_pem_and_retired_by_cli(make_client, database_url, dev_pki,
                                                                             pool):
    client = await make_client()
    directory = client.app[keys.DIRECTORY]
    pem = dev_pki.agencies[CMI].signing_cert
    wrong = _cli(database_url, "cert-add", KKN, str(pem))
    assert wrong.returncode != 0 and "certificate" in wrong.stderr, wrong.stderr  # it names another agency
    added = _cli(database_url, "cert-add", CMI, str(pem), "--usage", "signing")
    assert added.returncode == 0, added.stderr
    [cert] = (await store.entries(pool))[CMI]["certificates"]
    assert cert["usage"] == ["signing"] and cert["not_after"] and "retired_at" not in cert
    assert (await store.entries(pool))[CMI]["token_sha256"]  # the agency's other credentials are kept
    deadline = time.monotonic() + 1.0
    while cert["sha256"] not in directory.get(CMI).pinned:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    retired = _cli(database_url, "cert-retire", CMI, cert["sha256"])
    assert retired.returncode == 0, retired.stderr
    deadline = time.monotonic() + 1.0
    while cert["sha256"] in directory.get(CMI).pinned:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
