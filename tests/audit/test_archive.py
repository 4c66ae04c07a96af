"""Archive files: deterministic bytes, links between files, tampering named offline; dropping ranges."""

import datetime as dt
import json

import pytest

from gateway.audit import live
from gateway.audit.export import AuditError, drop_archived, export_next, write_range
from gateway.audit.verify import verify_files, verify_path
from tests.audit.keys import TestSigner
from tests.audit.test_chain import add

NOW = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)


async def two_archives(pool, sealer, out):
    await add(pool, 8)
    await sealer.seal_until(8)
    await sealer.seal_once(force_checkpoint=True)
    first = await export_next(pool, out, now=NOW)
    await add(pool, 7, kind="later")
    await sealer.seal_until(15)
    await sealer.seal_once(force_checkpoint=True)
    second = await export_next(pool, out, now=NOW)
    return first, second


async def test_same_range_same_bytes_and_files_link(pool, sealer, signer, workdir):
    first, second = await two_archives(pool, sealer, workdir / "a")
    assert (first.first_seq, first.last_seq, second.first_seq, second.last_seq) == (1, 8, 9, 15)
    async with pool.acquire() as conn:
        again = await write_range(conn, workdir / "b", after=0, through=8)
    assert again.path.read_bytes() == first.path.read_bytes()
    head = json.loads(second.path.read_bytes().splitlines()[0])
    foot = json.loads(first.path.read_bytes().splitlines()[-1])
    assert (head["prev_seq"], head["prev_hash"]) == (foot["last_seq"], foot["last_hash"])
    rep = verify_path(workdir / "a", signer.certificate)
    assert rep.ok, rep.summary()
    assert rep.events == 15 and rep.checkpoints >= 2
    # Thai survives the round trip as UTF-8, not escapes
    assert "ทดสอบ".encode() in first.path.read_bytes()


def _lines(path):
    return path.read_bytes().splitlines()


def _edit(lines, seq, fn):
    out = []
    for line in lines:
        obj = json.loads(line)
        if obj.get("type") == "event" and obj["seq"] == seq:
            fn(obj)
            line = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        out.append(line)
    return out


def _index(lines, seq):
    return next(i for i, line in enumerate(lines) if json.loads(line).get("seq") == seq
                and json.loads(line)["type"] == "event")


def edit(lines):
    return _edit(lines, 5, lambda o: o["details"].update(i=1000))


def delete(lines):
    del lines[_index(lines, 5)]
    return lines


def reorder(lines):
    i, j = _index(lines, 4), _index(lines, 5)
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def insert(lines):
    new = json.loads(lines[_index(lines, 5)])
    new.update(seq=100, actor="mallory")
    lines.insert(_index(lines, 5) + 1, json.dumps(new, ensure_ascii=False).encode())
    return lines


def forge_checkpoint(lines):
    out = []
    for line in lines:
        obj = json.loads(line)
        if obj["type"] == "checkpoint":
            obj["count"] += 1
            line = json.dumps(obj).encode()
        out.append(line)
    return out


CASES = [("edit", edit, {(5, "edited")}), ("delete", delete, {(5, "deleted")}),
         ("reorder", reorder, {(4, "reordered")}), ("insert", insert, {(100, "inserted")}),
         ("forged checkpoint", forge_checkpoint, {(8, "checkpoint")})]


@pytest.mark.parametrize("name,tamper,expected", CASES, ids=[c[0] for c in CASES])
async def test_tampered_archive_is_named(pool, sealer, signer, workdir, name, tamper, expected):
    first, _ = await two_archives(pool, sealer, workdir / "a")
    lines = tamper(_lines(first.path))
    rep = verify_files([(first.path.name, b"\n".join(lines) + b"\n")], signer.certificate)
    assert not rep.ok
    assert expected <= rep.codes(), rep.summary()


async def test_missing_middle_file_breaks_the_link(pool, sealer, signer, workdir):
    first, second = await two_archives(pool, sealer, workdir / "a")
    await add(pool, 3)
    await sealer.seal_until(18)
    await sealer.seal_once(force_checkpoint=True)
    await export_next(pool, workdir / "a", now=NOW)
    second.path.unlink()
    rep = verify_path(workdir / "a", signer.certificate)
    assert any(p.code == "link" for p in rep.problems), rep.summary()


async def test_wrong_certificate_fails_every_checkpoint(pool, sealer, workdir):

    first, _ = await two_archives(pool, sealer, workdir / "a")
    rep = verify_path(first.path, TestSigner().certificate)
    assert not rep.ok and all(p.code in ("checkpoint", "uncovered") for p in rep.problems)


async def test_drop_after_export_keeps_the_live_chain_verifiable(pool, sealer, signer, workdir):
    first, _ = await two_archives(pool, sealer, workdir / "a")
    with pytest.raises(AuditError):
        await drop_archived(pool, through=8, now=NOW, retention_days=100_000)  # retention not reached
    with pytest.raises(AuditError):
        await drop_archived(pool, through=7, now=NOW, retention_days=1)  # not an archive end
    assert await drop_archived(pool, through=8, now=NOW, retention_days=1) == 8
    assert await pool.fetchval("SELECT min(seq) FROM audit_events") == 9
    rep = await live.verify_database(pool, signer.certificate)
    assert rep.ok, rep.summary()
    assert rep.first_seq == 9
